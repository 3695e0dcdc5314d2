"""Time of a Token Vault exchange, cold and warm, against the dev identity provider.

Runs the real pmbot web app and its Token Vault client (a fresh SQLite database, the dev
identity provider and the Slack sandbox on loopback ports), links alice through the real
flow and connects her Google Calendar, then asks for her calendar token:

* cold: the cached token is dropped first, so each call reads her link, decrypts the
  refresh token and makes the exchange at the provider (auth0-python in a thread pool);
* warm: the token is in the in-memory cache.

Prints p50/p95/max of each in milliseconds and the exchanges the provider answered; the
last line is one JSON object.

    python bench/token_vault.py [--rounds 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.storage.migrate import upgrade_async  # noqa: E402
from bot.vault.ports import Connection  # noqa: E402
from sandbox.federation import ConnectedAccount  # noqa: E402
from tests.support import TEAM, running_bot  # noqa: E402

CALENDAR = frozenset(
    {
        "https://www.googleapis.com/auth/calendar.events",
        "https://www.googleapis.com/auth/calendar.freebusy",
    }
)


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3),
    }


async def main(rounds: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{folder}/bench.sqlite3"
        await upgrade_async(url)
        async with running_bot(url) as bot:
            await bot.link("U0ALICE", "alice@example.com")
            alice = await bot.deps.identity.require(TEAM, "U0ALICE")
            bot.idp.federation.connect(
                ConnectedAccount(alice.sub, "google-oauth2", "alice@example.com", CALENDAR)
            )
            vault = bot.deps.vault
            await vault.access_token(alice, Connection.GOOGLE_CALENDAR)  # warm-up
            before = bot.idp.token_vault.exchanges
            cold: list[float] = []
            for _ in range(rounds):
                vault.invalidate(alice, Connection.GOOGLE_CALENDAR)
                start = time.perf_counter()
                await vault.access_token(alice, Connection.GOOGLE_CALENDAR)
                cold.append(time.perf_counter() - start)
            cold_exchanges = bot.idp.token_vault.exchanges - before
            warm: list[float] = []
            for _ in range(rounds):
                start = time.perf_counter()
                await vault.access_token(alice, Connection.GOOGLE_CALENDAR)
                warm.append(time.perf_counter() - start)
            warm_exchanges = bot.idp.token_vault.exchanges - before - cold_exchanges
    return {
        "rounds": rounds,
        "cold": summary(cold),
        "warm": summary(warm),
        "cold_exchanges": cold_exchanges,
        "warm_exchanges": warm_exchanges,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    result = asyncio.run(main(args.rounds))
    for kind in ("cold", "warm"):
        figures = result[kind]
        assert isinstance(figures, dict)
        print(
            f"{kind}: p50 {figures['p50_ms']} ms, p95 {figures['p95_ms']} ms, "
            f"max {figures['max_ms']} ms"
        )
    print(
        f"exchanges at the provider: {result['cold_exchanges']} cold, "
        f"{result['warm_exchanges']} warm ({result['rounds']} calls each)"
    )
    print(json.dumps(result))
