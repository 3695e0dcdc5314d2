"""Latency of the provider clients against the sandboxes on loopback.

Runs the sandbox calendar and the Slack sandbox on 127.0.0.1 with one federation, then
calls pmbot's own clients (bot/providers/) as a person would through the tools: events.list
over the demo week, freeBusy.query for three people, events.insert with an attendee, and
chat.postMessage with a user token (with its permalink). Prints p50/p95 per call; the last
line is one JSON object with the figures.

    python bench/providers.py            # 300 calls of each
    python bench/providers.py --quick    # 50 calls of each
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.providers.google_calendar import GoogleCalendarClient  # noqa: E402
from bot.providers.slack_user import SlackUserClient  # noqa: E402
from bot.vault.ports import ProviderToken  # noqa: E402
from sandbox.calendar import CalendarService  # noqa: E402
from sandbox.federation import ConnectedAccount, Federation  # noqa: E402
from sandbox.slack import SlackSandbox, default_seed  # noqa: E402


def _token(federation: Federation, account: ConnectedAccount, prefix: str) -> ProviderToken:
    return ProviderToken(
        access_token=federation.issue(account, prefix=prefix),
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        scopes=account.scopes,
    )


async def _timed(n: int, call: Callable[[int], Awaitable[Any]]) -> list[float]:
    out = []
    for i in range(n):
        began = time.perf_counter()
        await call(i)
        out.append((time.perf_counter() - began) * 1000)
    return out


async def main(n: int) -> dict[str, dict[str, float]]:
    federation = Federation()
    google = ConnectedAccount(
        "auth0|alice",
        "google-oauth2",
        "alice@example.com",
        frozenset(
            {
                "https://www.googleapis.com/auth/calendar.events",
                "https://www.googleapis.com/auth/calendar.freebusy",
            }
        ),
    )
    slack = ConnectedAccount(
        "auth0|alice", "sign-in-with-slack", "U0ALICE", frozenset({"chat:write"})
    )
    federation.connect(google)
    federation.connect(slack)
    calendar = CalendarService(federation=federation)
    workspace = SlackSandbox(
        seed=default_seed(),
        signing_secret="bench",
        bot_token="xoxb-bench",
        events_url="http://127.0.0.1:9/slack/events",
        federation=federation,
    )
    from slack_sdk.web.async_client import AsyncWebClient

    async with (
        calendar.serve() as cal_base,
        workspace.serve() as slack_base,
        aiohttp.ClientSession() as http,
    ):
        cal = GoogleCalendarClient(base_url=cal_base + "calendar/v3/", session=http, timeout=10)
        bot = AsyncWebClient(token="xoxb-bench", base_url=slack_base + "api/", session=http)
        as_user = SlackUserClient(base_url=slack_base + "api/", session=http, timeout=10, bot=bot)
        gtoken, stoken = _token(federation, google, "ya29."), _token(federation, slack, "xoxp-")
        now = datetime.now(UTC)
        week = {"time_min": now, "time_max": now + timedelta(days=7)}
        people = ["bob@example.com", "carol@example.com", "dave@example.com"]
        far = now + timedelta(days=60)
        figures: dict[str, list[float]] = {
            "events.list": await _timed(n, lambda i: cal.list_events(gtoken, **week)),
            "freeBusy.query": await _timed(
                n, lambda i: cal.free_busy(gtoken, emails=people, **week)
            ),
            "events.insert": await _timed(
                n,
                lambda i: cal.insert_event(
                    gtoken,
                    summary=f"bench {i}",
                    start=far + timedelta(hours=i),
                    end=far + timedelta(hours=i, minutes=30),
                    attendees=["bob@example.com"],
                    request_id=f"bench-{i}",
                ),
            ),
            "chat.postMessage as user (+permalink)": await _timed(
                n, lambda i: as_user.post_message(stoken, channel="C0GENERAL", text=f"bench {i}")
            ),
        }
    summary = {}
    for name, samples in figures.items():
        samples.sort()
        p50 = statistics.median(samples)
        p95 = samples[int(len(samples) * 0.95) - 1]
        summary[name] = {"p50_ms": round(p50, 2), "p95_ms": round(p95, 2), "calls": len(samples)}
        print(f"{name:40s} p50 {p50:7.2f} ms   p95 {p95:7.2f} ms   ({len(samples)} calls)")
    return summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(50 if args.quick else 300))))
