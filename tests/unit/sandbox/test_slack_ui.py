"""The sandbox's JSON API (ui/...), the page's assets, and mounting under /sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from sandbox.slack import SANDBOX_KEY, SlackSandbox, default_seed
from tests.fakes.slack import (
    BOT_TOKEN,
    SIGNING_SECRET,
    Receiver,
    running_sandbox,
    serve,
)


@dataclass
class Env:
    sandbox: SlackSandbox
    base: str
    receiver: Receiver
    http: aiohttp.ClientSession

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.http.get(self.base + path) as resp:
            return resp.status, await resp.json()

    async def post(self, path: str, body: Any) -> tuple[int, Any]:
        async with self.http.post(self.base + path, json=body) as resp:
            return resp.status, await resp.json()

    async def post_raw(self, path: str, data: bytes) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        async with self.http.post(self.base + path, data=data, headers=headers) as resp:
            return resp.status, await resp.json()


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    receiver = Receiver()
    async with (
        running_sandbox(receiver, retry_timeout=0.3) as (sandbox, base),
        aiohttp.ClientSession() as http,
    ):
        yield Env(sandbox, base, receiver, http)


async def test_workspace_lists_team_users_channels(env: Env) -> None:
    status, body = await env.get("ui/workspace")
    assert status == 200
    assert body["team"] == {"id": "T0SANDBOX", "name": "Sandbox", "domain": "sandbox"}
    assert body["bot"] == {
        "user_id": "U0PMBOT",
        "bot_id": "B0PMBOT",
        "app_id": "A0PMBOT",
        "name": "pmbot",
    }
    names = {u["name"]: u for u in body["users"]}
    assert set(names) == {"alice", "bob", "carol", "dave", "pmbot"}
    assert names["pmbot"]["is_bot"] is True
    channels = {c["name"]: c["members"] for c in body["channels"]}
    assert channels["apollo"] == ["U0ALICE", "U0BOB", "U0PMBOT"]
    assert "U0DAVE" not in channels["random"]
    assert len(channels["general"]) == 5


async def test_post_and_read_messages(env: Env) -> None:
    status, posted = await env.post(
        "ui/messages",
        {"user": "U0ALICE", "channel": "C0APOLLO", "text": "@pmbot status?", "wait": True},
    )
    assert status == 200
    assert posted["deliveries"][0]["status"] == 200
    status, _ = await env.post(
        "ui/messages",
        {"user": "U0BOB", "channel": "C0APOLLO", "text": "me too", "thread_ts": posted["ts"]},
    )
    assert status == 200
    status, body = await env.get("ui/messages?channel=C0APOLLO&user=U0BOB")
    assert status == 200
    assert body["channel"]["name"] == "apollo"
    texts = [(m["text"], m.get("thread_ts")) for m in body["messages"]]
    assert texts == [("<@U0PMBOT> status?", posted["ts"]), ("me too", posted["ts"])]


async def test_dm_by_user_id(env: Env) -> None:
    status, posted = await env.post(
        "ui/messages", {"user": "U0CAROL", "channel": "U0PMBOT", "text": "hi", "wait": True}
    )
    assert status == 200
    status, body = await env.get("ui/messages?channel=U0PMBOT&user=U0CAROL")
    assert body["channel"]["id"] == posted["channel"]
    assert body["channel"]["is_im"] is True
    assert [m["text"] for m in body["messages"]] == ["hi"]
    # Nobody else can read carol's DM with the bot.
    status, err = await env.get(f"ui/messages?channel={posted['channel']}&user=U0ALICE")
    assert (status, err["error"]) == (400, "channel_not_found")
    status, body = await env.get("ui/workspace?user=U0CAROL")
    assert [d["id"] for d in body["dms"]] == [posted["channel"]]


@pytest.mark.parametrize(
    ("path", "body", "error"),
    [
        ("ui/messages", {"user": "U0ALICE", "channel": "C0APOLLO"}, "missing_field"),
        ("ui/messages", {"user": "U0ALICE", "channel": "C0APOLLO", "text": 5}, "invalid_field"),
        ("ui/messages", {"user": "U0NOBODY", "channel": "C0APOLLO", "text": "x"}, "user_not_found"),
        ("ui/messages", {"user": "U0DAVE", "channel": "C0APOLLO", "text": "x"}, "not_in_channel"),
        (
            "ui/messages",
            {"user": "U0PMBOT", "channel": "C0APOLLO", "text": "x"},
            "cannot_act_as_bot",
        ),
        ("ui/messages", {"user": "U0ALICE", "channel": "C0NOPE", "text": "x"}, "channel_not_found"),
        (
            "ui/messages",
            {"user": "U0ALICE", "channel": "C0APOLLO", "text": "x", "thread_ts": "1.2"},
            "thread_not_found",
        ),
        (
            "ui/messages",
            {"user": "U0ALICE", "channel": "C0APOLLO", "text": "x" * 40_001},
            "msg_too_long",
        ),
        (
            "ui/messages",
            {"user": "U0ALICE", "channel": "C0APOLLO", "text": "x", "wait": "y"},
            "invalid_field",
        ),
        ("ui/messages", [1, 2], "invalid_json"),
        (
            "ui/commands",
            {"user": "U0ALICE", "channel": "C0APOLLO", "command": "pm"},
            "invalid_command",
        ),
        (
            "ui/commands",
            {"user": "U0ALICE", "channel": "C0APOLLO", "command": "/pm", "text": ["x"]},
            "invalid_field",
        ),
        (
            "ui/actions",
            {"user": "U0ALICE", "channel": "C0APOLLO", "message_ts": "1.1", "action_id": "a"},
            "message_not_found",
        ),
        ("ui/actions", {"user": "U0ALICE", "view": "home", "action_id": "a"}, "view_not_found"),
        ("ui/home", {}, "missing_field"),
        ("ui/faults", {"method": "not a method"}, "invalid_method"),
        ("ui/faults", {"method": "chat.postMessage", "times": 0}, "invalid_times"),
        ("ui/faults", {"method": "chat.postMessage", "retry_after": "soon"}, "invalid_field"),
    ],
)
async def test_bad_input_is_a_400_with_an_error(env: Env, path: str, body: Any, error: str) -> None:
    status, answer = await env.post(path, body)
    assert status == 400
    assert answer["error"] == error


async def test_malformed_json_and_bad_queries_are_400(env: Env) -> None:
    status, answer = await env.post_raw("ui/messages", b"{not json")
    assert (status, answer["error"]) == (400, "invalid_json")
    status, answer = await env.get("ui/messages")
    assert (status, answer["error"]) == (400, "missing_field")
    status, answer = await env.get("ui/messages?channel=C0APOLLO&user=U0NOBODY")
    assert (status, answer["error"]) == (400, "user_not_found")
    status, answer = await env.get("ui/home")
    assert status == 400
    status, answer = await env.get("ui/deliveries?since=abc")
    assert status == 400


async def test_commands_actions_home_and_deliveries(env: Env) -> None:
    env.receiver.reply = lambda got: web.json_response({"text": "ok"})
    status, result = await env.post(
        "ui/commands",
        {"user": "U0ALICE", "channel": "C0APOLLO", "command": "/pm", "text": "help"},
    )
    assert status == 200
    assert result["response"]["text"] == "ok"
    client = AsyncWebClient(token=BOT_TOKEN, base_url=env.base + "api/")
    buttons = [
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": "link",
                    "text": {"type": "plain_text", "text": "Link account"},
                }
            ],
        }
    ]
    msg = await client.chat_postMessage(channel="C0APOLLO", text="link?", blocks=buttons)
    status, clicked = await env.post(
        "ui/actions",
        {"user": "U0BOB", "channel": "C0APOLLO", "message_ts": msg["ts"], "action_id": "link"},
    )
    assert status == 200
    assert clicked["delivery"]["name"] == "link"
    await client.views_publish(user_id="U0BOB", view={"type": "home", "blocks": buttons})
    status, home = await env.get("ui/home?user=U0BOB")
    assert home["view"]["blocks"][0]["elements"][0]["action_id"] == "link"
    status, clicked = await env.post(
        "ui/actions", {"user": "U0BOB", "view": "home", "action_id": "link"}
    )
    assert status == 200
    status, opened = await env.post("ui/home", {"user": "U0BOB", "wait": True})
    assert opened["view"]["type"] == "home"
    status, log = await env.get("ui/deliveries")
    kinds = [(d["kind"], d["name"]) for d in log["deliveries"]]
    assert kinds == [
        ("command", "/pm"),
        ("interaction", "link"),
        ("interaction", "link"),
        ("event", "app_home_opened"),
    ]
    status, later = await env.get(f"ui/deliveries?since={log['deliveries'][1]['seq']}")
    assert len(later["deliveries"]) == 2


async def test_faults_through_the_json_api(env: Env) -> None:
    status, body = await env.post(
        "ui/faults", {"method": "users.info", "times": 2, "retry_after": 3}
    )
    assert status == 200
    assert body["faults"] == {"users.info": {"remaining": 2, "retry_after": 3}}
    client = AsyncWebClient(token=BOT_TOKEN, base_url=env.base + "api/")
    for _ in range(2):
        with pytest.raises(SlackApiError) as err:
            await client.users_info(user="U0ALICE")
        assert err.value.response.status_code == 429
    assert (await client.users_info(user="U0ALICE"))["ok"]
    status, body = await env.get("ui/faults")
    assert body["faults"] == {}
    status, calls = await env.get("ui/calls")
    assert [c["error"] for c in calls["calls"]] == ["ratelimited", "ratelimited", None]


async def test_page_and_assets_are_served(env: Env) -> None:
    async with env.http.get(env.base) as resp:
        assert resp.status == 200
        html = await resp.text()
    for needle in ('id="user-select"', 'id="composer"', 'id="send"', 'src="static/app.js"'):
        assert needle in html
    # Relative URLs only, and no external CDN.
    assert 'src="/' not in html and 'href="/' not in html and "http" not in html
    async with env.http.get(env.base + "static/app.js") as resp:
        assert resp.status == 200
        js = await resp.text()
    for needle in ("testid", "actionId", "Only visible to you", "ui/messages"):
        assert needle in js
    assert "fetch('/" not in js and 'fetch("/' not in js
    async with env.http.get(env.base + "static/app.css") as resp:
        assert resp.status == 200


async def test_mounted_under_a_prefix() -> None:
    receiver = Receiver()
    async with serve(receiver.app()) as bot_base:
        sandbox = SlackSandbox(
            seed=default_seed(),
            signing_secret=SIGNING_SECRET,
            bot_token=BOT_TOKEN,
            events_url=bot_base + "slack/events",
            retry_timeout=0.3,
        )
        sub = sandbox.app()
        assert sub[SANDBOX_KEY] is sandbox
        outer = web.Application()
        outer.add_subapp("/sandbox/", sub)
        async with serve(outer) as base, aiohttp.ClientSession() as http:
            async with http.get(base + "sandbox", allow_redirects=False) as resp:
                assert resp.status == 302
                assert resp.headers["Location"] == "/sandbox/"
            async with http.get(base + "sandbox/") as resp:
                assert resp.status == 200
            async with http.get(base + "sandbox/static/app.js") as resp:
                assert resp.status == 200
            client = AsyncWebClient(token=BOT_TOKEN, base_url=base + "sandbox/api/")
            assert (await client.auth_test())["ok"]
            # The base URL was learnt from the requests: response URLs point under /sandbox/.
            assert sandbox.public_url == base + "sandbox/"
            result = await sandbox.run_command("U0ALICE", "C0GENERAL", "/pm", "help")
            assert result["response_url"].startswith(base + "sandbox/response/")


@pytest.mark.parametrize(
    "path", ["ui/messages", "ui/commands", "ui/actions", "ui/home", "ui/faults"]
)
async def test_garbage_bodies_never_cause_a_500(env: Env, path: str) -> None:
    garbage: list[Any] = [
        None,
        "text",
        5,
        [],
        {"user": 1},
        {"user": "U0ALICE", "channel": ["C0APOLLO"], "text": {}},
        {"user": "U0ALICE", "channel": "C0APOLLO", "command": None, "action_id": 3},
        {"method": "chat.postMessage", "times": True, "retry_after": 1.5},
    ]
    for body in garbage:
        status, answer = await env.post(path, body)
        assert status in (200, 400), (body, answer)
        if status == 400:
            assert isinstance(answer["error"], str)
        else:
            # Only a valid request may succeed: ui/home ignores fields it does not use.
            assert path == "ui/home" and body["user"] == "U0ALICE"
