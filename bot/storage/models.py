"""SQLAlchemy models of pmbot's own tables (the authorization engine has its own, in
``authz.embedded.tables``; Alembic migrates both)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ProcessedEvent(Base):
    """A Slack delivery already handled: its key is the ``event_id`` (events API) or a
    digest of the payload (commands, interactions). Inserting the row is the claim: a
    redelivery finds it and causes no second side effect."""

    __tablename__ = "processed_events"

    event_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )


class LinkRequest(Base):
    """A one-time account-linking request: its id is the OAuth ``state``.

    Bound to one Slack user; expires after ``LINK_TTL``; ``started_at`` and ``consumed_at``
    make each step single-use (set by conditional updates). After the callback verified an
    identity (``verified_at``), it is kept here, refresh token encrypted, until the Slack
    user confirms it in Slack (by ``confirm_by``); ``finished_at`` and ``outcome``
    (``linked``, ``cancelled``, ``expired``) end it once."""

    __tablename__ = "link_requests"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    slack_user_id: Mapped[str] = mapped_column(String(32))
    code_verifier_enc: Mapped[str] = mapped_column(Text)
    nonce: Mapped[str] = mapped_column(String(64))
    browser_binding: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    consumed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    sub: Mapped[str | None] = mapped_column(String(255), nullable=True)
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    email_verified: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    refresh_token_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    permissions: Mapped[str | None] = mapped_column(Text, nullable=True)
    permissions_expire_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    confirm_by: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # The response_urls of the /pm prompts that showed this link (encrypted JSON list):
    # once the link is used they are replaced, so no stale button is left behind.
    prompt_urls_enc: Mapped[str | None] = mapped_column(Text, nullable=True)


class SlackLink(Base):
    """A Slack user bound to an Auth0 identity, one-to-one within a workspace.

    ``membership`` is ``member`` for a full member of the workspace (who gets the FGA
    ``workspace#member`` tuple), ``guest`` for a multi- or single-channel guest and
    ``external`` for a Slack Connect user of another organisation (neither gets it)."""

    __tablename__ = "slack_links"
    __table_args__ = (UniqueConstraint("team_id", "sub", name="uq_slack_links_team_sub"),)

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    slack_user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    sub: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    refresh_token_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    permissions: Mapped[str] = mapped_column(Text, default="[]")
    permissions_expire_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    linked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    membership: Mapped[str] = mapped_column(String(16), default="member", server_default="member")


class FgaOutbox(Base):
    """An authorization tuple change waiting to reach the engine. Written in the same
    transaction as the rows it mirrors, drained in ``id`` order until the engine has
    acknowledged it (``done_at``), so a crash between the two never leaves them apart."""

    __tablename__ = "fga_outbox"
    __table_args__ = (Index("ix_fga_outbox_pending", "done_at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    operation: Mapped[str] = mapped_column(String(8))  # write | delete
    user: Mapped[str] = mapped_column(String(512))
    relation: Mapped[str] = mapped_column(String(50))
    object: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(300), nullable=True)
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
