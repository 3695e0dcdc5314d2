"""The transactional outbox of authorization tuples.

A service that changes who may do what adds the tuple changes with :func:`stage` in the
same database transaction as its rows; after the commit it calls :meth:`Outbox.drain`,
so the change is in the engine (and the decision cache forgotten) before the next
request. A change that could not be delivered (the engine down, a crash right after the
commit) stays pending and is delivered by the scheduled drain, in order, until the engine
acknowledges it. Writes and deletes are idempotent at the engine, so delivering one twice
is harmless. On PostgreSQL concurrent drains skip each other's rows
(``FOR UPDATE SKIP LOCKED``); SQLite serialises writers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from authz.ports import Authorizer, AuthzError, AuthzValidationError, TupleKey
from bot.storage.db import Database
from bot.storage.models import FgaOutbox

log = logging.getLogger(__name__)

WRITE = "write"
DELETE = "delete"


def stage(
    session: AsyncSession,
    *,
    writes: Sequence[TupleKey] = (),
    deletes: Sequence[TupleKey] = (),
) -> None:
    """Add tuple changes to the caller's transaction (deletes first, then writes)."""
    now = datetime.now(UTC)
    for operation, keys in ((DELETE, deletes), (WRITE, writes)):
        for key in keys:
            session.add(
                FgaOutbox(
                    operation=operation,
                    user=key.user,
                    relation=key.relation,
                    object=key.object,
                    created_at=now,
                    attempts=0,
                )
            )


class Outbox:
    def __init__(self, *, db: Database, authorizer: Authorizer, batch: int = 100) -> None:
        self._db = db
        self._authz = authorizer
        self._batch = batch

    async def drain(self) -> int:
        """Deliver pending changes in order; returns how many were delivered. Stops at the
        first change the engine cannot take now (it is retried later); a change the
        engine refuses as invalid is set aside with its error (it would never succeed)."""
        delivered = 0
        while True:
            async with self._db.session() as session:
                query = (
                    select(FgaOutbox)
                    .where(FgaOutbox.done_at.is_(None))
                    .order_by(FgaOutbox.id)
                    .limit(self._batch)
                )
                if self._db.dialect == "postgresql":
                    query = query.with_for_update(skip_locked=True)
                rows = list(await session.scalars(query))
                if not rows:
                    return delivered
                for row in rows:
                    key = TupleKey(user=row.user, relation=row.relation, object=row.object)
                    row.attempts += 1
                    try:
                        if row.operation == WRITE:
                            await self._authz.write([key])
                        else:
                            await self._authz.delete([key])
                    except AuthzValidationError as exc:
                        log.error("authorization refused a tuple change: %s", exc.message)
                        row.last_error = exc.message[:300]
                        row.done_at = datetime.now(UTC)
                        continue
                    except AuthzError as exc:
                        row.last_error = str(exc)[:300]
                        log.warning("tuple changes wait for the authorization engine: %s", exc)
                        return delivered
                    row.done_at = datetime.now(UTC)
                    row.last_error = None
                    delivered += 1

    async def pending(self) -> int:
        async with self._db.session() as session:
            rows = await session.scalars(select(FgaOutbox.id).where(FgaOutbox.done_at.is_(None)))
            return len(list(rows))

    async def sweep(self, older_than: timedelta = timedelta(days=7)) -> int:
        """Forget delivered changes after a while (the engine holds the truth)."""
        cutoff = datetime.now(UTC) - older_than
        async with self._db.session() as session:
            result = await session.execute(
                delete(FgaOutbox).where(FgaOutbox.done_at.is_not(None), FgaOutbox.done_at < cutoff)
            )
        return int(getattr(result, "rowcount", 0) or 0)
