"""The sandbox against a real slack_bolt AsyncApp: signatures, payload shapes and replies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from sandbox.slack import SlackSandbox, default_seed
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET, serve

APPROVAL: list[dict[str, Any]] = [
    {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "action_id": "approve",
                "text": {"type": "plain_text", "text": "Approve"},
                "value": "apr-9",
            }
        ],
    }
]


def build_bolt(api_url: str) -> AsyncApp:
    app = AsyncApp(
        token=BOT_TOKEN,
        signing_secret=SIGNING_SECRET,
        client=AsyncWebClient(token=BOT_TOKEN, base_url=api_url),
    )

    @app.event("app_mention")
    async def mention(event: dict[str, Any], say: Any) -> None:
        await say(text=f"hello <@{event['user']}>", thread_ts=event["ts"])

    @app.event("message")
    async def direct(event: dict[str, Any], say: Any) -> None:
        await say(text="Approve?", blocks=APPROVAL)

    @app.command("/pm")
    async def command(ack: Any, respond: Any, command: dict[str, Any]) -> None:
        await ack(text=f"working on {command['text']}")
        await respond(text="done", response_type="in_channel")

    @app.action("approve")
    async def approve(ack: Any, respond: Any, body: dict[str, Any]) -> None:
        await ack()
        value = body["actions"][0]["value"]
        await respond(text=f"Approved {value} by {body['user']['name']}", replace_original=True)

    @app.event("app_home_opened")
    async def home(event: dict[str, Any], client: AsyncWebClient) -> None:
        await client.views_publish(
            user_id=event["user"],
            view={
                "type": "home",
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*Home*"}}],
            },
        )

    return app


@dataclass
class Env:
    sandbox: SlackSandbox


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    sandbox = SlackSandbox(
        seed=default_seed(),
        signing_secret=SIGNING_SECRET,
        bot_token=BOT_TOKEN,
        events_url="http://127.0.0.1:9/not-yet",
        retry_timeout=2.0,
    )
    async with serve(sandbox.app()) as base:
        sandbox.public_url = base
        bolt = build_bolt(base + "api/")

        async def events(request: web.Request) -> web.Response:
            return await to_aiohttp_response(
                await bolt.async_dispatch(await to_bolt_request(request))
            )

        bot = web.Application()
        bot.router.add_post("/slack/events", events)
        async with serve(bot) as bot_base:
            sandbox.events_url = bot_base + "slack/events"
            yield Env(sandbox)


async def test_mention_gets_a_threaded_answer(env: Env) -> None:
    posted = await env.sandbox.post_message("U0ALICE", "C0APOLLO", "@pmbot hi")
    assert posted["deliveries"][0]["status"] == 200
    answer = await env.sandbox.wait_for_message(
        "C0APOLLO", match=lambda m: m.get("user") == "U0PMBOT"
    )
    assert answer["text"] == "hello <@U0ALICE>"
    assert answer["thread_ts"] == posted["ts"]


async def test_dm_then_button_then_response_url(env: Env) -> None:
    await env.sandbox.post_message("U0BOB", "U0PMBOT", "delete apollo")
    prompt = await env.sandbox.wait_for_message(
        "U0PMBOT", viewer="U0BOB", match=lambda m: m.get("user") == "U0PMBOT"
    )
    clicked = await env.sandbox.click_button("U0BOB", "U0PMBOT", prompt["ts"], "approve")
    assert clicked["delivery"]["status"] == 200
    done = await env.sandbox.wait_for_message(
        "U0PMBOT", viewer="U0BOB", match=lambda m: m["text"].startswith("Approved")
    )
    assert done["text"] == "Approved apr-9 by bob"
    assert done["ts"] == prompt["ts"], "replace_original edits the prompt in place"


async def test_slash_command_ack_and_respond(env: Env) -> None:
    result = await env.sandbox.run_command("U0ALICE", "C0GENERAL", "/pm", "tasks")
    assert result["response"]["text"] == "working on tasks"
    assert result["response"]["visible_to"] == "U0ALICE"
    public = await env.sandbox.wait_for_message(
        "C0GENERAL", viewer="U0BOB", match=lambda m: m["text"] == "done"
    )
    assert public["user"] == "U0PMBOT"


async def test_app_home(env: Env) -> None:
    await env.sandbox.open_home("U0CAROL")
    view = await env.sandbox.wait_for_home_view("U0CAROL")
    assert view["blocks"][0]["text"]["text"] == "*Home*"
