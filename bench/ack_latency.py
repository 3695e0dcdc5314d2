"""Ack latency and duplicate side effects of `pmbot serve` under a steady event rate.

Starts the Slack sandbox (as the Web API the bot replies to) and `pmbot serve` as a
separate process on loopback, then sends signed `message.im` events at a fixed rate; every
event is delivered 3 times (the original and two Slack-style retries with
`X-Slack-Retry-Num`). Prints p50/p99 ack latency and the number of duplicate replies the
bot posted. The last line is one JSON object with the figures.

    python bench/ack_latency.py            # 100 events/s for 30 s
    python bench/ack_latency.py --quick    # 100 events/s for 8 s
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import multiprocessing
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sandbox.slack import SlackSandbox, default_seed  # noqa: E402

SECRET = "bench-signing-secret"
TOKEN = "xoxb-bench-token"
DELIVERIES = 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _signed(body: bytes) -> dict[str, str]:
    ts = str(int(time.time()))
    sig = hmac.new(SECRET.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256)
    return {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": "v0=" + sig.hexdigest(),
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def _wait_healthy(http: aiohttp.ClientSession, url: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            async with http.get(url) as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise SystemExit(f"pmbot did not become healthy at {url}")


def link_user(path: str) -> None:
    import sqlite3
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO slack_links (team_id, slack_user_id, sub, email, name, permissions,"
            " permissions_expire_at, linked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                "T0SANDBOX",
                "U0ALICE",
                "auth0|alice",
                "alice@example.com",
                "Alice",
                '["read:projects"]',
                (now + timedelta(days=1)).isoformat(),
                now.isoformat(),
            ),
        )


def _sandbox_main(bot_port: int, sandbox_port: int) -> None:
    async def main() -> None:
        sandbox = SlackSandbox(
            seed=default_seed(),
            signing_secret=SECRET,
            bot_token=TOKEN,
            events_url=f"http://127.0.0.1:{bot_port}/slack/events",
            public_url=f"http://127.0.0.1:{sandbox_port}/",
        )
        runner = web.AppRunner(sandbox.app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", sandbox_port).start()
        await asyncio.Event().wait()

    asyncio.run(main())


def start_sandbox(bot_port: int, sandbox_port: int) -> multiprocessing.Process:
    """The Slack sandbox in a process of its own, so it does not slow the sender."""
    proc = multiprocessing.Process(target=_sandbox_main, args=(bot_port, sandbox_port), daemon=True)
    proc.start()
    return proc


def start_bot(bot_port: int, sandbox_port: int) -> subprocess.Popen[bytes]:
    """`pmbot serve` in its own process, replying to the sandbox's Web API."""
    workdir = tempfile.mkdtemp(prefix="pmbot-bench-")
    env = {
        **os.environ,
        "PMBOT_MODE": "production",
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": f"http://127.0.0.1:{sandbox_port}/api/",
        "DATABASE_URL": f"sqlite:///{workdir}/bench.sqlite3",
        "LOG_LEVEL": "WARNING",
        # Linking is not exercised here; these satisfy production settings.
        "AUTH0_DOMAIN": "127.0.0.1:9",
        "AUTH0_PROTOCOL": "http",
        "AUTH0_CLIENT_ID": "bench",
        "AUTH0_CLIENT_SECRET": "bench-secret",
        "TOKEN_ENCRYPTION_KEYS": "bench:" + base64.b64encode(b"b" * 32).decode(),
    }
    subprocess.run(
        [sys.executable, "-m", "bot.cli", "migrate"],
        cwd=REPO,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    # The benchmark's user is linked (a stored link row), so each event gets a real reply.
    link_user(f"{workdir}/bench.sqlite3")
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--port", str(bot_port)], cwd=REPO, env=env
    )


async def _bot_replies(http: aiohttp.ClientSession, sandbox_url: str, channel: str) -> int:
    async with http.get(
        f"{sandbox_url}/ui/messages", params={"channel": channel, "user": "U0ALICE"}
    ) as resp:
        doc = await resp.json()
    return len([m for m in doc["messages"] if m.get("bot_id") or m.get("user") == "U0PMBOT"])


async def run(rate: int, seconds: float, bot_port: int, sandbox_port: int) -> dict[str, Any]:
    bot_url = f"http://127.0.0.1:{bot_port}"
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    latencies: list[float] = []
    timeline: list[tuple[float, float]] = []
    statuses: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=200)
    if connector:
        async with aiohttp.ClientSession(connector=connector) as http:
            await _wait_healthy(http, f"{bot_url}/healthz")
            async with http.post(
                f"{sandbox_url}/api/conversations.open",
                headers={"Authorization": f"Bearer {TOKEN}"},
                data={"users": "U0ALICE"},
            ) as resp:
                channel = (await resp.json())["channel"]["id"]

            async def deliver(n: int, retry: int) -> None:
                event = {
                    "type": "message",
                    "channel": channel,
                    "channel_type": "im",
                    "user": "U0ALICE",
                    "text": f"bench {n}",
                    "ts": f"1800000000.{n:06d}",
                }
                body = json.dumps(
                    {
                        "token": "t",
                        "team_id": "T0SANDBOX",
                        "api_app_id": "A0PMBOT",
                        "type": "event_callback",
                        "event_id": f"EvBENCH{n:07d}",
                        "event_time": int(time.time()),
                        "event": event,
                    }
                ).encode()
                headers = _signed(body)
                if retry:
                    headers["X-Slack-Retry-Num"] = str(retry)
                    headers["X-Slack-Retry-Reason"] = "http_timeout"
                started = time.perf_counter()
                async with http.post(f"{bot_url}/slack/events", data=body, headers=headers) as r:
                    await r.read()
                    latencies.append((time.perf_counter() - started) * 1000)
                    timeline.append((started - start, latencies[-1]))
                    statuses[r.status] = statuses.get(r.status, 0) + 1

            total = int(rate * seconds)
            tasks: list[asyncio.Task[None]] = []
            start = time.perf_counter()
            for n in range(total):
                # Each event and its retries go out within the same second, spread evenly.
                for retry in range(DELIVERIES):
                    due = start + (n + retry * 0.33) / rate
                    delay = due - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    tasks.append(asyncio.create_task(deliver(n, retry)))
            await asyncio.gather(*tasks)
            sent_for = time.perf_counter() - start
            async with http.get(f"{bot_url}/metrics") as resp:
                server_metrics = await resp.text()
            # Let the bot finish replying to the last events; count its replies.
            deadline = time.monotonic() + 30
            replies = 0
            while time.monotonic() < deadline:
                replies = await _bot_replies(http, sandbox_url, channel)
                if replies >= total:
                    await asyncio.sleep(1.0)
                    replies = await _bot_replies(http, sandbox_url, channel)
                    break
                await asyncio.sleep(0.2)
    if os.environ.get("BENCH_TIMELINE"):
        for second in range(int(seconds) + 1):
            window = [lat for at, lat in timeline if second <= at < second + 1]
            if window:
                print(f"second {second}: n={len(window)} p99={_percentile(window, 0.99):.1f} ms")
    server_buckets = {
        m.group(1): int(m.group(2))
        for m in re.finditer(
            r'pmbot_slack_ack_seconds_bucket\{kind="event",le="([^"]+)"\} (\d+)', server_metrics
        )
    }
    server_total = server_buckets.get("+Inf", 0) or 1
    return {
        "server_acks_within_10ms": round(server_buckets.get("0.01", 0) / server_total, 4),
        "server_acks_within_100ms": round(server_buckets.get("0.1", 0) / server_total, 4),
        "events": total,
        "deliveries": len(latencies),
        "rate_per_s": rate,
        "seconds": round(sent_for, 2),
        "ack_p50_ms": round(statistics.median(latencies), 2),
        "ack_p99_ms": round(_percentile(latencies, 0.99), 2),
        "ack_max_ms": round(max(latencies), 2),
        "non_200": sum(v for k, v in statuses.items() if k != 200),
        "replies": replies,
        "missing_replies": max(0, total - replies),
        "duplicate_side_effects": max(0, replies - total),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=100, help="events per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--quick", action="store_true", help="8 seconds instead of 30")
    args = parser.parse_args()
    seconds = 8.0 if args.quick else args.seconds
    bot_port, sandbox_port = _free_port(), _free_port()
    sandbox = start_sandbox(bot_port, sandbox_port)
    proc = start_bot(bot_port, sandbox_port)
    try:
        figures = asyncio.run(run(args.rate, seconds, bot_port, sandbox_port))
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        sandbox.terminate()
        sandbox.join(timeout=10)
    print(f"events: {figures['events']} x {DELIVERIES} deliveries at {args.rate}/s")
    print(f"ack latency p50 {figures['ack_p50_ms']} ms, p99 {figures['ack_p99_ms']} ms")
    print(
        f"replies {figures['replies']}, duplicate side effects "
        f"{figures['duplicate_side_effects']}, missing {figures['missing_replies']}"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
