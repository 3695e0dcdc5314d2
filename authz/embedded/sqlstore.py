"""SQL persistence of the embedded authorization engine (SQLite or PostgreSQL).

The tables (:mod:`authz.embedded.tables`) are the source of truth: stores, immutable
authorization models, relationship tuples, and a changelog (``fga_changes``) that every
tuple write and delete appends to in the same transaction.

Writes to one store are serialised by locking the store's row first (a no-op ``UPDATE``:
a row lock on PostgreSQL, the database write lock on SQLite). Hence, within a store, change
ids are handed out in commit order, and a replica that has applied every change up to id
``n`` can catch up by reading the changes with ``id > n``: no change can appear later
below a position it has already passed.

Every database failure (connection refused, timeout, driver error) is raised as
:class:`~authz.ports.AuthzUnavailable`, so callers fail closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

from sqlalchemy import delete, func, insert, select, tuple_, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from authz.embedded.tables import fga_changes, fga_models, fga_stores, fga_tuples
from authz.ports import AuthzUnavailable, AuthzValidationError, ErrorCode, TupleKey

log = logging.getLogger(__name__)

WRITE: Final = "write"
DELETE: Final = "delete"
Operation = Literal["write", "delete"]

# Rows fetched per round trip when loading or following a store's tuples and changes.
_FETCH_BATCH: Final = 5000


class StoreNotFoundError(AuthzValidationError):
    """The store does not exist (OpenFGA's ``store_id_not_found``, HTTP 404)."""

    def __init__(self, store_id: str) -> None:
        super().__init__(ErrorCode.store_id_not_found, f"store '{store_id}' not found")
        self.store_id = store_id


@dataclass(frozen=True)
class StoreInfo:
    """A store. Stores are never renamed, so ``updated_at`` equals ``created_at``."""

    id: str
    name: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class TupleChange:
    """One entry of a store's changelog: ``id`` is its position (monotonic per store)."""

    id: int
    operation: Operation
    tuple_key: TupleKey
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class StoredTuple:
    tuple_key: TupleKey
    timestamp: datetime


def utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (SQLite hands back naive UTC values)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def now_utc() -> datetime:
    return datetime.now(UTC)


def _key(t: TupleKey) -> tuple[str, str, str]:
    return (t.object, t.relation, t.user)


class SqlStore:
    """Typed queries over the ``fga_*`` tables; every method is one transaction.

    ``timeout`` bounds each operation (seconds): a database that hangs is as unavailable as
    one that refuses connections.
    """

    def __init__(self, engine: AsyncEngine, *, timeout: float = 10.0) -> None:
        self.engine = engine
        self.timeout = timeout

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncConnection]:
        """One transaction, committed on success; database errors become AuthzUnavailable."""
        try:
            async with asyncio.timeout(self.timeout), self.engine.begin() as conn:
                yield conn
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            log.warning("authorization database error: %s", exc.__class__.__name__)
            raise AuthzUnavailable(
                f"the authorization database is unavailable ({exc.__class__.__name__})"
            ) from exc

    @staticmethod
    async def _lock_store(conn: AsyncConnection, store_id: str) -> None:
        """Serialises writers of ``store_id`` until the transaction ends (see module doc);
        raises :class:`StoreNotFoundError` if the store does not exist."""
        result = await conn.execute(
            update(fga_stores).where(fga_stores.c.id == store_id).values(name=fga_stores.c.name)
        )
        if result.rowcount == 0:
            raise StoreNotFoundError(store_id)

    # -- stores ---------------------------------------------------------------------------

    @staticmethod
    def _store(row: Sequence[object]) -> StoreInfo:
        created = row[2]
        assert isinstance(created, datetime)
        return StoreInfo(
            id=str(row[0]), name=str(row[1]), created_at=utc(created), updated_at=utc(created)
        )

    async def create_store(self, store_id: str, name: str) -> StoreInfo:
        created = now_utc()
        async with self._tx() as conn:
            await conn.execute(
                insert(fga_stores).values(id=store_id, name=name, created_at=created)
            )
        return StoreInfo(id=store_id, name=name, created_at=created, updated_at=created)

    async def find_or_create_store(self, name: str, new_id: str) -> tuple[StoreInfo, bool]:
        """The oldest store called ``name``, created with id ``new_id`` if there is none.

        Concurrent callers (several replicas starting at once) agree on one store: the
        lookup and the insert run under a lock that serialises them.
        """
        async with self._tx() as conn:
            if conn.dialect.name == "postgresql":
                await conn.exec_driver_sql("LOCK TABLE fga_stores IN SHARE ROW EXCLUSIVE MODE")
            else:
                # Any write takes SQLite's database lock, even one that matches no row.
                await conn.execute(
                    update(fga_stores)
                    .where(fga_stores.c.name == name)
                    .values(name=fga_stores.c.name)
                )
            row = (
                await conn.execute(
                    select(fga_stores.c.id, fga_stores.c.name, fga_stores.c.created_at)
                    .where(fga_stores.c.name == name)
                    .order_by(fga_stores.c.created_at, fga_stores.c.id)
                    .limit(1)
                )
            ).first()
            if row is not None:
                return self._store(row), False
            created = now_utc()
            await conn.execute(insert(fga_stores).values(id=new_id, name=name, created_at=created))
        return StoreInfo(id=new_id, name=name, created_at=created, updated_at=created), True

    async def get_store(self, store_id: str) -> StoreInfo | None:
        async with self._tx() as conn:
            row = (
                await conn.execute(
                    select(fga_stores.c.id, fga_stores.c.name, fga_stores.c.created_at).where(
                        fga_stores.c.id == store_id
                    )
                )
            ).first()
        return None if row is None else self._store(row)

    async def list_stores(self) -> list[StoreInfo]:
        async with self._tx() as conn:
            rows = (
                await conn.execute(
                    select(fga_stores.c.id, fga_stores.c.name, fga_stores.c.created_at).order_by(
                        fga_stores.c.created_at, fga_stores.c.id
                    )
                )
            ).all()
        return [self._store(r) for r in rows]

    async def delete_store(self, store_id: str) -> bool:
        """Deletes the store with its models, tuples and changelog; False if it was absent."""
        async with self._tx() as conn:
            found = await conn.execute(delete(fga_stores).where(fga_stores.c.id == store_id))
            for table in (fga_models, fga_tuples, fga_changes):
                await conn.execute(delete(table).where(table.c.store_id == store_id))
        return bool(found.rowcount)

    async def store_status(self, store_id: str) -> tuple[bool, str | None]:
        """Whether the store exists, and the id of its latest model (None if it has none)."""
        latest = (
            select(func.max(fga_models.c.id))
            .where(fga_models.c.store_id == fga_stores.c.id)
            .scalar_subquery()
        )
        async with self._tx() as conn:
            row = (
                await conn.execute(
                    select(fga_stores.c.id, latest).where(fga_stores.c.id == store_id)
                )
            ).first()
        if row is None:
            return False, None
        return True, None if row[1] is None else str(row[1])

    # -- models ---------------------------------------------------------------------------

    async def insert_model(self, store_id: str, model_id: str, model_json: str) -> None:
        async with self._tx() as conn:
            await self._lock_store(conn, store_id)
            await conn.execute(
                insert(fga_models).values(
                    id=model_id, store_id=store_id, model_json=model_json, created_at=now_utc()
                )
            )

    async def insert_model_unless_latest(
        self, store_id: str, model_id: str, model_json: str, same: Callable[[str], bool]
    ) -> tuple[str, bool]:
        """Inserts the model unless ``same(latest_json)`` says the latest one is equal.

        Returns ``(id, inserted)``: the new id, or the latest model's id when it was kept.
        Concurrent pushes of one model from several replicas insert it once.
        """
        async with self._tx() as conn:
            await self._lock_store(conn, store_id)
            row = (
                await conn.execute(
                    select(fga_models.c.id, fga_models.c.model_json)
                    .where(fga_models.c.store_id == store_id)
                    .order_by(fga_models.c.id.desc())
                    .limit(1)
                )
            ).first()
            if row is not None and same(str(row[1])):
                return str(row[0]), False
            await conn.execute(
                insert(fga_models).values(
                    id=model_id, store_id=store_id, model_json=model_json, created_at=now_utc()
                )
            )
        return model_id, True

    async def get_model(self, store_id: str, model_id: str) -> str | None:
        async with self._tx() as conn:
            value = (
                await conn.execute(
                    select(fga_models.c.model_json).where(
                        fga_models.c.store_id == store_id, fga_models.c.id == model_id
                    )
                )
            ).scalar()
        return None if value is None else str(value)

    async def list_models(self, store_id: str) -> list[tuple[str, str]]:
        """``(id, json)`` of every model of the store, newest first (ULIDs sort by time)."""
        async with self._tx() as conn:
            rows = (
                await conn.execute(
                    select(fga_models.c.id, fga_models.c.model_json)
                    .where(fga_models.c.store_id == store_id)
                    .order_by(fga_models.c.id.desc())
                )
            ).all()
        return [(str(r[0]), str(r[1])) for r in rows]

    # -- tuples ---------------------------------------------------------------------------

    async def apply(
        self,
        store_id: str,
        writes: Sequence[TupleKey],
        deletes: Sequence[TupleKey],
        *,
        on_duplicate: Literal["ignore", "error"] = "ignore",
        on_missing: Literal["ignore", "error"] = "ignore",
    ) -> int:
        """Writes and deletes tuples in one transaction and appends what actually changed to
        the changelog; returns the number of changes.

        Writing an existing tuple or deleting a missing one is skipped (``ignore``) or fails
        the whole request with ``write_failed_due_to_invalid_input`` (``error``, OpenFGA's
        default). Raises :class:`StoreNotFoundError` for an unknown store.
        """
        async with self._tx() as conn:
            await self._lock_store(conn, store_id)
            keys = [_key(t) for t in (*writes, *deletes)]
            existing: set[tuple[str, str, str]] = set()
            if keys:
                rows = await conn.execute(
                    select(fga_tuples.c.object, fga_tuples.c.relation, fga_tuples.c.user).where(
                        fga_tuples.c.store_id == store_id,
                        tuple_(fga_tuples.c.object, fga_tuples.c.relation, fga_tuples.c.user).in_(
                            keys
                        ),
                    )
                )
                existing = {(str(o), str(r), str(u)) for o, r, u in rows}
            to_write = [t for t in writes if _key(t) not in existing]
            to_delete = [t for t in deletes if _key(t) in existing]
            if on_duplicate == "error" and len(to_write) < len(writes):
                t = next(t for t in writes if _key(t) in existing)
                raise AuthzValidationError(
                    ErrorCode.write_failed_due_to_invalid_input,
                    f"cannot write a tuple which already exists: user: '{t.user}', relation: "
                    f"'{t.relation}', object: '{t.object}': tuple to be written already "
                    "existed or the tuple to be deleted did not exist",
                )
            if on_missing == "error" and len(to_delete) < len(deletes):
                t = next(t for t in deletes if _key(t) not in existing)
                raise AuthzValidationError(
                    ErrorCode.write_failed_due_to_invalid_input,
                    f"cannot delete a tuple which does not exist: user: '{t.user}', relation: "
                    f"'{t.relation}', object: '{t.object}': invalid write input",
                )
            now = now_utc()
            if to_delete:
                await conn.execute(
                    delete(fga_tuples).where(
                        fga_tuples.c.store_id == store_id,
                        tuple_(fga_tuples.c.object, fga_tuples.c.relation, fga_tuples.c.user).in_(
                            [_key(t) for t in to_delete]
                        ),
                    )
                )
            if to_write:
                await conn.execute(
                    insert(fga_tuples),
                    [
                        {
                            "store_id": store_id,
                            "object": t.object,
                            "relation": t.relation,
                            "user": t.user,
                            "created_at": now,
                        }
                        for t in to_write
                    ],
                )
            changes = [(DELETE, t) for t in to_delete] + [(WRITE, t) for t in to_write]
            if changes:
                await conn.execute(
                    insert(fga_changes),
                    [
                        {
                            "store_id": store_id,
                            "op": op,
                            "object": t.object,
                            "relation": t.relation,
                            "user": t.user,
                            "created_at": now,
                        }
                        for op, t in changes
                    ],
                )
        return len(changes)

    async def read_tuples(
        self,
        store_id: str,
        *,
        user: str | None,
        relation: str | None,
        object_type: str | None,
        object_id: str | None,
        after: tuple[str, str, str] | None,
        limit: int,
    ) -> list[StoredTuple]:
        """Tuples matching the filters, ordered by (object, relation, user), strictly after
        the key ``after`` (keyset pagination)."""
        query = select(
            fga_tuples.c.object, fga_tuples.c.relation, fga_tuples.c.user, fga_tuples.c.created_at
        ).where(fga_tuples.c.store_id == store_id)
        if object_type is not None and object_id:
            query = query.where(fga_tuples.c.object == f"{object_type}:{object_id}")
        elif object_type is not None:
            prefix = f"{object_type}:"
            # substr + equality, not LIKE: LIKE is case-insensitive on SQLite.
            query = query.where(func.substr(fga_tuples.c.object, 1, len(prefix)) == prefix)
        if relation is not None:
            query = query.where(fga_tuples.c.relation == relation)
        if user is not None:
            query = query.where(fga_tuples.c.user == user)
        if after is not None:
            query = query.where(
                tuple_(fga_tuples.c.object, fga_tuples.c.relation, fga_tuples.c.user)
                > tuple_(*after)
            )
        query = query.order_by(fga_tuples.c.object, fga_tuples.c.relation, fga_tuples.c.user)
        async with self._tx() as conn:
            rows = (await conn.execute(query.limit(limit))).all()
        return [
            StoredTuple(TupleKey(user=str(u), relation=str(r), object=str(o)), utc(ts))
            for o, r, u, ts in rows
        ]

    async def snapshot(self, store_id: str) -> tuple[int, list[TupleKey]]:
        """``(position, tuples)``: every tuple of the store, and a changelog position from
        which following the changes converges to the current state.

        The position is read before the tuples. The tuples may already include changes
        after it; replaying those changes is harmless since writes and deletes are
        idempotent and the last change of each tuple is the one the snapshot reflects.
        """
        async with self._tx() as conn:
            position = (
                await conn.execute(
                    select(func.max(fga_changes.c.id)).where(fga_changes.c.store_id == store_id)
                )
            ).scalar()
            tuples: list[TupleKey] = []
            after: tuple[str, str, str] | None = None
            cols = (fga_tuples.c.object, fga_tuples.c.relation, fga_tuples.c.user)
            while True:
                query = select(*cols).where(fga_tuples.c.store_id == store_id)
                if after is not None:
                    query = query.where(tuple_(*cols) > tuple_(*after))
                rows = (await conn.execute(query.order_by(*cols).limit(_FETCH_BATCH))).all()
                tuples.extend(
                    TupleKey(user=str(u), relation=str(r), object=str(o)) for o, r, u in rows
                )
                if len(rows) < _FETCH_BATCH:
                    break
                last = rows[-1]
                after = (str(last[0]), str(last[1]), str(last[2]))
        return int(position or 0), tuples

    async def changes_after(
        self, store_id: str, position: int, *, type: str | None = None, limit: int = _FETCH_BATCH
    ) -> list[TupleChange]:
        """Up to ``limit`` changes of the store with ``id > position``, oldest first;
        ``type`` keeps only the changes of objects of that type."""
        query = select(
            fga_changes.c.id,
            fga_changes.c.op,
            fga_changes.c.object,
            fga_changes.c.relation,
            fga_changes.c.user,
            fga_changes.c.created_at,
        ).where(fga_changes.c.store_id == store_id, fga_changes.c.id > position)
        if type is not None:
            prefix = f"{type}:"
            query = query.where(func.substr(fga_changes.c.object, 1, len(prefix)) == prefix)
        query = query.order_by(fga_changes.c.id).limit(limit)
        async with self._tx() as conn:
            rows = (await conn.execute(query)).all()
        return [
            TupleChange(
                id=int(i),
                operation=WRITE if op == WRITE else DELETE,
                tuple_key=TupleKey(user=str(u), relation=str(r), object=str(o)),
                timestamp=utc(ts),
            )
            for i, op, o, r, u, ts in rows
        ]

    async def all_changes_after(self, store_id: str, position: int) -> list[TupleChange]:
        """Every change after ``position`` (several round trips if there are many)."""
        out: list[TupleChange] = []
        while True:
            batch = await self.changes_after(store_id, position)
            out.extend(batch)
            if len(batch) < _FETCH_BATCH:
                return out
            position = batch[-1].id
