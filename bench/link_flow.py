"""Time from clicking a `/pm link` URL to the confirmed link, in the embedded default.

Runs pmbot exactly as `make run` does (sandbox mode: local Slack workspace and dev identity
provider on pmbot's own port, SQLite) and acts like a person with a browser, over HTTP:
`/pm link` in #general, open the link, continue (with the page's anti-forgery token), sign
in on the provider's page, follow the callback, wait for the DM that asks to confirm, press
*Link* there and wait until the DM says the account is linked. The person's own time (the
click on *Link*) is not in the figure: it stops at the question, and starts again at the
click. Each round unlinks again with `/pm unlink`. Prints p50/p95/max; the last line is
one JSON object.

    python bench/link_flow.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.server import serve  # noqa: E402
from bot.settings import load_settings  # noqa: E402

LINK = re.compile(r"(http://[^|>\"\s]+/auth/link/[A-Za-z0-9_-]+)")
TX = re.compile(r"name='tx' value='([^']+)'")
CSRF = re.compile(r"name=csrf value='([^']+)'")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _json(http: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> Any:
    async with http.request(method, url, **kw) as resp:
        return await resp.json()


async def one_round(http: aiohttp.ClientSession, base: str) -> float:
    sb = f"{base}/sandbox"
    await _json(
        http,
        "POST",
        f"{sb}/ui/commands",
        json={"user": "U0ALICE", "channel": "C0GENERAL", "command": "/pm", "text": "link"},
    )
    link = None
    for _ in range(200):
        doc = await _json(
            http, "GET", f"{sb}/ui/messages", params={"channel": "C0GENERAL", "user": "U0ALICE"}
        )
        found = LINK.findall(json.dumps(doc))
        if found:
            link = found[-1]
            break
        await asyncio.sleep(0.01)
    assert link, "no link prompt"
    dm = {"channel": "U0PMBOT", "user": "U0ALICE"}
    before = await _json(http, "GET", f"{sb}/ui/messages", params=dm)
    seen = len(before["messages"])
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as browser:
        started = time.perf_counter()  # the click on the link
        async with browser.get(link) as page:
            assert page.status == 200
            token = CSRF.search(await page.text())
        assert token
        async with browser.post(
            link, data={"csrf": token.group(1)}, headers={"Origin": base}, allow_redirects=False
        ) as cont:
            authorize = cont.headers["Location"]
        async with browser.get(authorize) as login:
            tx = TX.search(await login.text())
        assert tx
        form = {"tx": tx.group(1), "email": "alice@example.com", "password": "alice-password"}
        async with browser.post(
            f"{base}/idp/authorize/login", data=form, allow_redirects=False
        ) as signed:
            callback = signed.headers["Location"]
        async with browser.get(callback) as final:
            assert final.status == 200, await final.text()
        question = await _wait_for(http, sb, dm, seen, "link_confirm")
        asked = time.perf_counter()
    await _json(
        http,
        "POST",
        f"{sb}/ui/actions",
        json={**dm, "message_ts": question["ts"], "action_id": "link_confirm"},
    )
    pressed = time.perf_counter()
    await _wait_for(http, sb, dm, seen, "now linked")
    elapsed = (asked - started) + (time.perf_counter() - pressed)
    await _json(
        http,
        "POST",
        f"{sb}/ui/commands",
        json={"user": "U0ALICE", "channel": "C0GENERAL", "command": "/pm", "text": "unlink"},
    )
    await asyncio.sleep(0.2)
    return elapsed * 1000


async def _wait_for(
    http: aiohttp.ClientSession, sb: str, dm: dict[str, str], seen: int, needle: str
) -> dict[str, Any]:
    while True:
        doc = await _json(http, "GET", f"{sb}/ui/messages", params=dm)
        for message in doc["messages"][seen:]:
            if needle in json.dumps(message):
                found: dict[str, Any] = message
                return found
        await asyncio.sleep(0.005)


async def run(rounds: int) -> dict[str, Any]:
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="pmbot-link-")
    settings = load_settings(
        PMBOT_MODE="sandbox",
        PMBOT_PORT=port,
        DATABASE_URL=f"sqlite:///{workdir}/link.sqlite3",
        LOG_LEVEL="WARNING",
    )
    stop = asyncio.Event()
    server = asyncio.create_task(serve(settings, stop=stop))
    base = f"http://127.0.0.1:{port}"
    times: list[float] = []
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                try:
                    async with http.get(f"{base}/healthz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
            for _ in range(rounds):
                times.append(await one_round(http, base))
    finally:
        stop.set()
        await server
    ordered = sorted(times)
    return {
        "rounds": rounds,
        "link_to_dm_p50_ms": round(statistics.median(ordered), 1),
        "link_to_dm_p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 1),
        "link_to_dm_max_ms": round(ordered[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    figures = asyncio.run(run(args.rounds))
    print(
        "link click to confirmed link (less the person's own click) over "
        f"{figures['rounds']} rounds: "
        f"p50 {figures['link_to_dm_p50_ms']} ms, p95 {figures['link_to_dm_p95_ms']} ms"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
