"""The ``connect_requests`` table: one-time links that connect a provider account."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.storage.models import Base


class ConnectRequest(Base):
    """A one-time request to connect a provider account (Google Calendar, Slack) through
    Auth0's Connected Accounts flow, bound to one Slack user and the identity linked to it.

    ``id`` is in the page URL given in Slack. Pressing *Continue* marks it ``started_at``
    (once, conditional update), binds it to that browser (``browser_binding``) and starts
    the flow with a fresh OAuth ``state`` (unique) and PKCE verifier; the callback finds
    it by ``state`` and ends it once (``finished_at``, ``outcome``: ``connected``,
    ``denied`` or ``failed``). ``resume_id`` names the request that waits for the account.
    The My Account API's ``auth_session`` and the verifier are stored encrypted."""

    __tablename__ = "connect_requests"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    slack_user_id: Mapped[str] = mapped_column(String(32))
    sub: Mapped[str] = mapped_column(String(255))
    connection: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[str] = mapped_column(Text)
    resume_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    browser_binding: Mapped[str | None] = mapped_column(String(64), nullable=True)
    state: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    auth_session_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    code_verifier_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
