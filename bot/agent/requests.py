"""Requests waiting for a connected account: what was asked (the tool call and its
arguments, and the asker's own words when the agent made it), by whom, where to answer,
until when. A request is resumed at most once (a conditional update claims it), and never
after it expired."""

from __future__ import annotations

import enum
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, Index, String, Text, update
from sqlalchemy.orm import Mapped, mapped_column

from bot.storage.db import Database
from bot.storage.models import Base

_REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{32}")
MAX_COMMAND_CHARS = 4000


class RequestStatus(enum.StrEnum):
    WAITING = "waiting"
    RESUMED = "resumed"


class AgentRequest(Base):
    __tablename__ = "agent_requests"
    __table_args__ = (Index("ix_agent_requests_user", "team_id", "slack_user_id"),)

    id: Mapped[str] = mapped_column(String(48), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32), nullable=False)
    slack_user_id: Mapped[str] = mapped_column(String(32), nullable=False)
    channel_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    thread_ts: Mapped[str | None] = mapped_column(String(32), nullable=True)
    tool: Mapped[str] = mapped_column(String(64), nullable=False)
    arguments: Mapped[str] = mapped_column(Text, nullable=False)
    command: Mapped[str | None] = mapped_column(Text, nullable=True)
    connection: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


@dataclass(frozen=True, kw_only=True)
class WaitingRequest:
    id: str
    team_id: str
    slack_user_id: str
    channel_id: str | None
    thread_ts: str | None
    tool: str
    arguments: dict[str, Any]
    command: str | None
    connection: str


def valid_request_id(value: str) -> bool:
    return bool(_REQUEST_ID.fullmatch(value))


class AgentRequests:
    def __init__(self, *, db: Database, ttl: timedelta) -> None:
        self._db = db
        self._ttl = ttl

    async def add(
        self,
        *,
        team_id: str,
        slack_user_id: str,
        channel_id: str | None,
        thread_ts: str | None,
        tool: str,
        arguments: dict[str, Any],
        command: str | None,
        connection: str,
    ) -> str:
        request_id = secrets.token_urlsafe(24)  # 32 characters
        now = datetime.now(UTC)
        async with self._db.session() as session:
            session.add(
                AgentRequest(
                    id=request_id,
                    team_id=team_id,
                    slack_user_id=slack_user_id,
                    channel_id=channel_id,
                    thread_ts=thread_ts,
                    tool=tool,
                    arguments=json.dumps(arguments, sort_keys=True, default=str),
                    command=command[:MAX_COMMAND_CHARS] if command is not None else None,
                    connection=connection,
                    status=RequestStatus.WAITING.value,
                    created_at=now,
                    expires_at=now + self._ttl,
                )
            )
        return request_id

    async def claim(self, request_id: str) -> WaitingRequest | None:
        """The waiting, unexpired request ``request_id``, marked resumed (once: a second
        claim, from this replica or another, gets None)."""
        if not valid_request_id(request_id):
            return None
        now = datetime.now(UTC)
        async with self._db.session() as session:
            result = await session.execute(
                update(AgentRequest)
                .where(
                    AgentRequest.id == request_id,
                    AgentRequest.status == RequestStatus.WAITING.value,
                    AgentRequest.expires_at > now,
                )
                .values(status=RequestStatus.RESUMED.value)
            )
            if getattr(result, "rowcount", 0) != 1:
                return None
            row = await session.get(AgentRequest, request_id)
            assert row is not None
            try:
                arguments = json.loads(row.arguments)
            except ValueError:
                arguments = {}
            return WaitingRequest(
                id=row.id,
                team_id=row.team_id,
                slack_user_id=row.slack_user_id,
                channel_id=row.channel_id,
                thread_ts=row.thread_ts,
                tool=row.tool,
                arguments=arguments if isinstance(arguments, dict) else {},
                command=row.command,
                connection=row.connection,
            )
