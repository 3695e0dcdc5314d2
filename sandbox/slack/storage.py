"""The sandbox workspace in SQL: DMs, messages (ephemeral ones with their recipient) and App
Home views, so a restart keeps yesterday's conversations.

The tables live in the bot's own database (Alembic migrates them with the bot's, see
``migrations/env.py``); every row carries its workspace's ``team_id``. People and channels
come from the seed and are not stored; response URLs, injected faults and the delivery and
call logs are not stored either (a response URL ends with the process, like Slack's own end
after 30 minutes).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .changes import Changes, Snapshot
from .common import JsonDict
from .conversations import Conversation, StoredMessage

sandbox_metadata = MetaData(naming_convention={"pk": "pk_%(table_name)s"})

sandbox_conversations = Table(
    "sandbox_conversations",
    sandbox_metadata,
    Column("team_id", String(32), primary_key=True),
    Column("id", String(32), primary_key=True),
    Column("name", String(80), nullable=True),
    Column("is_im", Boolean, nullable=False),
    Column("members", Text, nullable=False),  # JSON array of user ids
    Column("created", BigInteger, nullable=False),  # epoch seconds
)

sandbox_messages = Table(
    "sandbox_messages",
    sandbox_metadata,
    Column("team_id", String(32), primary_key=True),
    Column("conversation_id", String(32), primary_key=True),
    Column("ts", String(32), primary_key=True),
    Column("thread_ts", String(32), nullable=True),
    Column("visible_to", String(32), nullable=True),  # the recipient of an ephemeral message
    Column("data", Text, nullable=False),  # the message as Slack returns it, JSON
)

sandbox_home_views = Table(
    "sandbox_home_views",
    sandbox_metadata,
    Column("team_id", String(32), primary_key=True),
    Column("user_id", String(32), primary_key=True),
    Column("view", Text, nullable=False),  # the published view, JSON
)


class SandboxStore:
    """Reads and writes one workspace's rows through an async SQLAlchemy engine."""

    def __init__(self, engine: AsyncEngine, team_id: str) -> None:
        self.engine = engine
        self.team_id = team_id

    async def load(self) -> Snapshot:
        team = self.team_id
        async with self.engine.connect() as conn:
            conv_rows = await conn.execute(
                sandbox_conversations.select()
                .where(sandbox_conversations.c.team_id == team)
                .order_by(sandbox_conversations.c.id)
            )
            conversations = [
                Conversation(
                    id=row.id,
                    name=row.name,
                    is_im=bool(row.is_im),
                    members=[str(m) for m in json.loads(row.members)],
                    created=int(row.created),
                )
                for row in conv_rows
            ]
            message_rows = await conn.execute(
                sandbox_messages.select()
                .where(sandbox_messages.c.team_id == team)
                .order_by(sandbox_messages.c.conversation_id, sandbox_messages.c.ts)
            )
            messages = [
                StoredMessage(_object(row.data), row.visible_to, row.conversation_id)
                for row in message_rows
            ]
            view_rows = await conn.execute(
                sandbox_home_views.select().where(sandbox_home_views.c.team_id == team)
            )
            views = {row.user_id: _object(row.view) for row in view_rows}
        return Snapshot(conversations, messages, views)

    async def save(self, changes: Changes) -> None:
        """Write the latest state of everything in ``changes`` in one transaction."""
        async with self.engine.begin() as conn:
            await self._save_conversations(conn, changes.conversations)
            await self._save_messages(conn, changes.messages)
            await self._save_views(conn, changes.home_views)

    async def _save_conversations(
        self, conn: AsyncConnection, conversations: dict[str, Conversation]
    ) -> None:
        if not conversations:
            return
        t = sandbox_conversations
        keys = [{"t": self.team_id, "k": cid} for cid in conversations]
        await conn.execute(
            t.delete().where(and_(t.c.team_id == bindparam("t"), t.c.id == bindparam("k"))), keys
        )
        rows = [
            {
                "team_id": self.team_id,
                "id": conv.id,
                "name": conv.name,
                "is_im": conv.is_im,
                "members": json.dumps(conv.members),
                "created": conv.created,
            }
            for conv in conversations.values()
        ]
        await conn.execute(t.insert(), rows)

    async def _save_messages(
        self, conn: AsyncConnection, messages: dict[tuple[str, str], StoredMessage | None]
    ) -> None:
        if not messages:
            return
        t = sandbox_messages
        keys = [{"t": self.team_id, "c": cid, "k": ts} for cid, ts in messages]
        await conn.execute(
            t.delete().where(
                and_(
                    t.c.team_id == bindparam("t"),
                    t.c.conversation_id == bindparam("c"),
                    t.c.ts == bindparam("k"),
                )
            ),
            keys,
        )
        rows = [
            {
                "team_id": self.team_id,
                "conversation_id": cid,
                "ts": ts,
                "thread_ts": m.data.get("thread_ts"),
                "visible_to": m.visible_to,
                "data": json.dumps(m.data, separators=(",", ":")),
            }
            for (cid, ts), m in messages.items()
            if m is not None
        ]
        if rows:
            await conn.execute(t.insert(), rows)

    async def _save_views(self, conn: AsyncConnection, views: dict[str, JsonDict]) -> None:
        if not views:
            return
        t = sandbox_home_views
        keys = [{"t": self.team_id, "k": uid} for uid in views]
        await conn.execute(
            t.delete().where(and_(t.c.team_id == bindparam("t"), t.c.user_id == bindparam("k"))),
            keys,
        )
        rows = [
            {"team_id": self.team_id, "user_id": uid, "view": json.dumps(view)}
            for uid, view in views.items()
        ]
        await conn.execute(t.insert(), rows)


def _object(text: str) -> JsonDict:
    value: Any = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("a stored sandbox row is not a JSON object")
    return value
