"""Approvals at scale: one sweep over 10,000 pending approvals, and one polling round over
1,000 active CIBA requests against the dev identity provider (over HTTP, through the real
CIBA client), on SQLite and on PostgreSQL.

The sweep's 10,000 approvals are a mix: 2,000 past their deadline (expired, each with its
audit entry), 3,000 half-way (their reminder marked due), the rest untouched. The figure
is the sweep's database work (``ApprovalsService.sweep``); the Slack messages it leaves to
update are sent by the render pass afterwards, not timed here. The polling round's 1,000
requests are all still pending on the provider, so each poll is one real CIBA grant
request answered ``authorization_pending`` and one conditional update.

    python bench/approvals.py [--postgres postgresql://postgres@127.0.0.1:5432/test]

The last line is one JSON object (``sweep_10k_ms_sqlite``, ``sweep_10k_ms_postgres``,
``poll_1k_ms_sqlite``, ``poll_1k_ms_postgres``, and the counts).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import insert

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from authz.factory import AuthzConfig, open_authorizer  # noqa: E402
from bot.approvals.actions import ProjectActions  # noqa: E402
from bot.approvals.ciba import Auth0CibaClient  # noqa: E402
from bot.approvals.models import Approval, ApprovalApprover  # noqa: E402
from bot.approvals.service import ApprovalsService  # noqa: E402
from bot.approvals.views import ApprovalView, Shown  # noqa: E402
from bot.audit import AuditLog  # noqa: E402
from bot.identity.auth0 import Auth0Client  # noqa: E402
from bot.identity.tokens import JwksCache, TokenVerifier  # noqa: E402
from bot.projects.service import ProjectsService  # noqa: E402
from bot.storage.db import Database  # noqa: E402
from bot.storage.migrate import upgrade_async  # noqa: E402
from sandbox.idp import DevIdentityProvider, IdpClient, default_users, serve  # noqa: E402

SWEEP_ROWS = 10_000
POLL_ROWS = 1_000
CLIENT = IdpClient(client_id="bench", client_secret="bench-secret", callback_urls=[])
AUDIENCE = "https://pmbot.bench/api"


class Unshown:
    """The render pass is not measured: nothing is shown anywhere."""

    async def show(self, view: ApprovalView) -> Shown:
        return Shown()


class NoPeople:
    async def resolve(self, ref: Any) -> Any:
        raise NotImplementedError

    async def today(self, slack_user_id: str, now: datetime) -> Any:
        return now.date()


@asynccontextmanager
async def database(dialect: str, pg_url: str) -> AsyncIterator[Database]:
    if dialect == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite+aiosqlite:///{folder}/bench.sqlite3"
            await upgrade_async(url)
            db = Database(url)
            try:
                yield db
            finally:
                await db.dispose()
        return
    import asyncpg

    name = f"pmbot_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(pg_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = "postgresql+asyncpg://" + pg_url.split("://", 1)[1].rsplit("/", 1)[0] + "/" + name
    try:
        await upgrade_async(url)
        db = Database(url)
        try:
            yield db
        finally:
            await db.dispose()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _row(n: int, now: datetime, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": f"{n:026x}",
        "team_id": "T0BENCH",
        "requester_slack_id": "U0BOB",
        "requester_sub": "auth0|bob",
        "action": "delete_project",
        "arguments": json.dumps({"project_id": f"p{n}"}),
        "target": f"project P{n}",
        "project_ids": json.dumps([f"p{n}"]),
        "status": "pending",
        "created_at": now - timedelta(minutes=1),
        "expires_at": now + timedelta(minutes=9),
        "remind_at": now + timedelta(minutes=4),
        "reminder": 0,
        "idempotency_key": f"{n:064x}",
        "version": 1,
        "updated_at": now,
        "dirty": False,
        "rendered_version": 1,
        "requester_channel": "D0BOB",
        "requester_ts": f"{n}.000100",
    }
    row.update(values)
    return row


async def bulk(db: Database, rows: list[dict[str, Any]]) -> None:
    async with db.session() as session:
        for start in range(0, len(rows), 2000):
            chunk = rows[start : start + 2000]
            await session.execute(insert(Approval), chunk)
            await session.execute(
                insert(ApprovalApprover),
                [
                    {"approval_id": r["id"], "slack_user_id": "U0ALICE", "sub": "auth0|alice"}
                    for r in chunk
                ],
            )


async def measure(
    dialect: str, pg_url: str, idp_url: str, idp: DevIdentityProvider
) -> dict[str, Any]:
    async with AsyncExitStack() as stack:
        db = await stack.enter_async_context(database(dialect, pg_url))
        authz = await stack.enter_async_context(
            open_authorizer(AuthzConfig(engine="embedded"), engine=db.engine)
        )
        http = await stack.enter_async_context(aiohttp.ClientSession())
        auth0 = Auth0Client(
            domain=idp_url.removeprefix("http://"),
            protocol="http",
            client_id=CLIENT.client_id,
            client_secret=CLIENT.client_secret,
            audience=AUDIENCE,
            timeout=10,
        )
        stack.callback(auth0.close)
        issuer = f"{idp_url}/"
        verifier = TokenVerifier(
            jwks=JwksCache(jwks_url=f"{idp_url}/.well-known/jwks.json", session=http),
            issuer=issuer,
            leeway=30,
        )
        ciba = Auth0CibaClient(auth0=auth0, verifier=verifier, issuer=issuer, max_workers=16)
        stack.callback(ciba.close)
        service = ApprovalsService(
            db=db,
            authz=authz,
            audit=AuditLog(db=db),
            ciba=ciba,
            notifier=Unshown(),
            executor=ProjectActions(
                ProjectsService(db=db, authorizer=authz, outbox=authz_outbox(), people=NoPeople())
            ),
            ttl=timedelta(minutes=10),
            poll_concurrency=16,
        )
        now = datetime.now(UTC)
        rows = []
        for n in range(SWEEP_ROWS):
            if n % 5 == 0:
                rows.append(_row(n, now, expires_at=now - timedelta(seconds=1)))
            elif n % 10 in (1, 3, 7):
                rows.append(_row(n, now, remind_at=now - timedelta(seconds=1)))
            else:
                rows.append(_row(n, now))
        await bulk(db, rows)
        started = time.perf_counter()
        swept = await service.sweep()
        sweep_ms = (time.perf_counter() - started) * 1000
        # The polling round: 1,000 CIBA requests started on the provider (not timed).
        idp.ciba.interval = 0
        sem = asyncio.Semaphore(16)

        async def start(n: int) -> str:
            async with sem:
                got = await ciba.start(
                    sub="auth0|alice",
                    binding_message=f"ABC-{n % 100:02d} bench",
                    requested_expiry=300,
                )
                return got.auth_req_id

        ids = await asyncio.gather(*(start(n) for n in range(POLL_ROWS)))
        base = SWEEP_ROWS + 1
        polling = [
            _row(
                base + n,
                now,
                status="confirming",
                approver_slack_id="U0ALICE",
                approver_sub="auth0|alice",
                auth_req_id=auth_req_id,
                binding_code="ABC-12",
                poll_interval=1,
                next_poll_at=now - timedelta(seconds=1),
            )
            for n, auth_req_id in enumerate(ids)
        ]
        await bulk(db, polling)
        started = time.perf_counter()
        polled = await service.poll_round()
        poll_ms = (time.perf_counter() - started) * 1000
        return {
            f"sweep_10k_ms_{dialect}": round(sweep_ms, 1),
            f"sweep_expired_{dialect}": swept.expired,
            f"sweep_reminders_{dialect}": swept.reminders,
            f"poll_1k_ms_{dialect}": round(poll_ms, 1),
            f"polled_{dialect}": polled,
        }


def authz_outbox() -> Any:
    class Never:
        async def drain(self) -> int:
            return 0

    return Never()


async def run(pg_url: str) -> dict[str, Any]:
    idp = DevIdentityProvider(
        issuer=None, users=default_users(), clients=[CLIENT], audience=AUDIENCE
    )
    figures: dict[str, Any] = {"sweep_rows": SWEEP_ROWS, "poll_rows": POLL_ROWS}
    async with serve(idp) as idp_url:
        for dialect in ("sqlite", "postgres"):
            figures.update(await measure(dialect, pg_url, idp_url, idp))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    figures = asyncio.run(run(args.postgres))
    for dialect in ("sqlite", "postgres"):
        print(
            f"{dialect}: sweep over {SWEEP_ROWS} pending approvals "
            f"{figures[f'sweep_10k_ms_{dialect}']} ms "
            f"({figures[f'sweep_expired_{dialect}']} expired, "
            f"{figures[f'sweep_reminders_{dialect}']} reminders due); "
            f"polling round over {figures[f'polled_{dialect}']} CIBA requests "
            f"{figures[f'poll_1k_ms_{dialect}']} ms"
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
