"""The audit log: who did what, to what, when, with which outcome and why.

Rows are appended and never updated or deleted by pmbot (no method here can): tool calls
of the agent and every transition of an approval are written here. Arguments are stored as
JSON after the caller removed anything secret (tokens never reach a tool's arguments).
"""

from __future__ import annotations

import enum
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Index, Integer, String, Text, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from bot.storage.db import Database
from bot.storage.models import Base

MAX_ARGUMENTS_CHARS = 4000


class AuditKind(enum.StrEnum):
    TOOL = "tool"  # a tool the agent or a plain command ran for someone
    APPROVAL = "approval"  # a transition of an approval request


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_team_at", "team_id", "at"),
        Index("ix_audit_log_project", "project_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    team_id: Mapped[str] = mapped_column(String(32), nullable=False)
    actor_sub: Mapped[str | None] = mapped_column(String(255), nullable=True)
    actor_slack_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    project_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    subject: Mapped[str | None] = mapped_column(String(64), nullable=True)
    arguments: Mapped[str] = mapped_column(Text, nullable=False)
    outcome: Mapped[str] = mapped_column(String(32), nullable=False)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


@dataclass(frozen=True, kw_only=True)
class AuditRecord:
    """One entry as read back (for ``/pm audit`` and the export)."""

    id: int
    at: datetime
    team_id: str
    actor_sub: str | None
    actor_slack_id: str | None
    kind: str
    action: str
    project_id: str | None
    subject: str | None
    arguments: dict[str, Any]
    outcome: str
    reason: str | None

    def as_json(self) -> str:
        doc = {
            "id": self.id,
            "at": self.at.astimezone(UTC).isoformat(),
            "team_id": self.team_id,
            "actor_sub": self.actor_sub,
            "actor_slack_id": self.actor_slack_id,
            "kind": self.kind,
            "action": self.action,
            "project_id": self.project_id,
            "subject": self.subject,
            "arguments": self.arguments,
            "outcome": self.outcome,
            "reason": self.reason,
        }
        return json.dumps(doc, ensure_ascii=False, sort_keys=True)


def _record(row: AuditEntry) -> AuditRecord:
    try:
        arguments = json.loads(row.arguments)
    except ValueError:
        arguments = {}
    at = row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC)
    return AuditRecord(
        id=row.id,
        at=at,
        team_id=row.team_id,
        actor_sub=row.actor_sub,
        actor_slack_id=row.actor_slack_id,
        kind=row.kind,
        action=row.action,
        project_id=row.project_id,
        subject=row.subject,
        arguments=arguments if isinstance(arguments, dict) else {},
        outcome=row.outcome,
        reason=row.reason,
    )


def _arguments_json(arguments: Mapping[str, Any]) -> str:
    text = json.dumps(dict(arguments), ensure_ascii=False, sort_keys=True, default=str)
    if len(text) > MAX_ARGUMENTS_CHARS:
        text = json.dumps({"truncated": text[:MAX_ARGUMENTS_CHARS]}, ensure_ascii=False)
    return text


class AuditLog:
    """Append-only. ``append`` writes in its own transaction, or in ``session`` when given,
    so a transition and its entry commit together."""

    def __init__(self, *, db: Database) -> None:
        self._db = db

    async def append(
        self,
        *,
        team_id: str,
        kind: AuditKind,
        action: str,
        outcome: str,
        actor_sub: str | None = None,
        actor_slack_id: str | None = None,
        project_id: str | None = None,
        subject: str | None = None,
        arguments: Mapping[str, Any] | None = None,
        reason: str | None = None,
        session: AsyncSession | None = None,
        at: datetime | None = None,
    ) -> None:
        row = AuditEntry(
            at=at or datetime.now(UTC),
            team_id=team_id,
            actor_sub=actor_sub,
            actor_slack_id=actor_slack_id,
            kind=kind.value,
            action=action[:64],
            project_id=project_id,
            subject=subject,
            arguments=_arguments_json(arguments or {}),
            outcome=outcome[:32],
            reason=reason,
        )
        if session is not None:
            session.add(row)
            return
        async with self._db.session() as own:
            own.add(row)

    async def entries(
        self,
        *,
        team_id: str | None = None,
        project_ids: list[str] | None = None,
        since: datetime | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[AuditRecord]:
        query = select(AuditEntry)
        if team_id is not None:
            query = query.where(AuditEntry.team_id == team_id)
        if project_ids is not None:
            query = query.where(AuditEntry.project_id.in_(project_ids))
        if since is not None:
            query = query.where(AuditEntry.at >= since)
        order = AuditEntry.id.desc() if newest_first else AuditEntry.id.asc()
        query = query.order_by(order)
        if limit is not None:
            query = query.limit(limit)
        async with self._db.session() as session:
            rows = (await session.execute(query)).scalars().all()
        return [_record(r) for r in rows]

    async def stream(self, *, since: datetime | None = None) -> AsyncIterator[AuditRecord]:
        """Every entry (since ``since``), oldest first, read in pages."""
        last = 0
        while True:
            query = select(AuditEntry).where(AuditEntry.id > last)
            if since is not None:
                query = query.where(AuditEntry.at >= since)
            query = query.order_by(AuditEntry.id.asc()).limit(1000)
            async with self._db.session() as session:
                rows = (await session.execute(query)).scalars().all()
            if not rows:
                return
            for row in rows:
                yield _record(row)
            last = rows[-1].id
