"""The sandbox's Web API emulator, driven by the real slack_sdk AsyncWebClient."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from sandbox.slack import SandboxSeed, SandboxUser, SlackSandbox
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET, Receiver, running_sandbox, serve

TS = re.compile(r"^\d{10}\.\d{6}$")
BUTTONS: list[dict[str, Any]] = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "*Delete* Apollo?"}},
    {
        "type": "actions",
        "block_id": "decide",
        "elements": [
            {
                "type": "button",
                "action_id": "approve",
                "text": {"type": "plain_text", "text": "Approve"},
                "value": "apr-1",
                "style": "primary",
            }
        ],
    },
]


@dataclass
class Env:
    sandbox: SlackSandbox
    base: str
    client: AsyncWebClient


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async with running_sandbox(Receiver()) as (sandbox, base):
        yield Env(sandbox, base, AsyncWebClient(token=BOT_TOKEN, base_url=base + "api/"))


async def test_auth_test_describes_the_bot(env: Env) -> None:
    resp = await env.client.auth_test()
    assert resp["user_id"] == "U0PMBOT"
    assert resp["bot_id"] == "B0PMBOT"
    assert resp["team_id"] == "T0SANDBOX"
    assert resp["team"] == "Sandbox"


async def test_wrong_or_missing_token_is_refused(env: Env) -> None:
    bad = AsyncWebClient(token="xoxb-wrong", base_url=env.base + "api/")
    with pytest.raises(SlackApiError) as err:
        await bad.auth_test()
    assert err.value.response["error"] == "invalid_auth"
    anonymous = AsyncWebClient(base_url=env.base + "api/")
    with pytest.raises(SlackApiError) as err:
        await anonymous.auth_test()
    assert err.value.response["error"] == "not_authed"


async def test_unknown_method(env: Env) -> None:
    with pytest.raises(SlackApiError) as err:
        await env.client.api_call("chat.fly")
    assert err.value.response["error"] == "unknown_method"


async def test_post_message_is_stored_with_increasing_ts(env: Env) -> None:
    first = await env.client.chat_postMessage(channel="C0APOLLO", text="hello")
    second = await env.client.chat_postMessage(channel="#apollo", text="again", blocks=BUTTONS)
    assert first["channel"] == second["channel"] == "C0APOLLO"
    assert TS.match(first["ts"]) and TS.match(second["ts"])
    assert float(second["ts"]) > float(first["ts"])
    assert second["message"]["bot_id"] == "B0PMBOT"
    stored = env.sandbox.messages("C0APOLLO")
    assert [m["text"] for m in stored] == ["hello", "again"]
    assert stored[1]["blocks"][1]["elements"][0]["action_id"] == "approve"
    # Slack fills in block ids the app leaves out.
    assert stored[1]["blocks"][0]["block_id"]


async def test_form_encoded_and_query_parameters_work_like_slack(env: Env) -> None:
    resp = await env.client.api_call(
        "chat.postMessage", data={"channel": "C0GENERAL", "text": "from a form"}
    )
    assert resp["ok"]
    info = await env.client.api_call("users.info", http_verb="GET", params={"user": "U0BOB"})
    assert info["user"]["profile"]["email"] == "bob@example.com"
    assert env.sandbox.messages("C0GENERAL")[0]["text"] == "from a form"


async def test_post_message_errors(env: Env) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"channel": "C0NOPE", "text": "x"}, "channel_not_found"),
        ({"channel": "C0APOLLO", "text": ""}, "no_text"),
        ({"channel": "C0APOLLO", "text": "x", "thread_ts": "1.000001"}, "thread_not_found"),
        ({"channel": "C0APOLLO", "text": "x", "blocks": [{"type": "header"}]}, "invalid_blocks"),
    ]
    for kwargs, error in cases:
        with pytest.raises(SlackApiError) as err:
            await env.client.api_call("chat.postMessage", json=kwargs)
        assert err.value.response["error"] == error, kwargs


async def test_threads(env: Env) -> None:
    parent = await env.client.chat_postMessage(channel="C0APOLLO", text="parent")
    reply = await env.client.chat_postMessage(
        channel="C0APOLLO", text="reply", thread_ts=parent["ts"]
    )
    # Replying to a reply lands in the same thread, as in Slack.
    nested = await env.client.chat_postMessage(
        channel="C0APOLLO", text="nested", thread_ts=reply["ts"]
    )
    assert nested["message"]["thread_ts"] == parent["ts"]
    listed = {m["text"]: m for m in env.sandbox.messages("C0APOLLO")}
    assert listed["parent"]["reply_count"] == 2
    assert listed["parent"]["latest_reply"] == nested["ts"]
    assert listed["reply"]["thread_ts"] == parent["ts"]
    replies = await env.client.conversations_replies(channel="C0APOLLO", ts=parent["ts"])
    assert [m["text"] for m in replies["messages"]] == ["parent", "reply", "nested"]
    history = await env.client.conversations_history(channel="C0APOLLO")
    assert [m["text"] for m in history["messages"]] == ["parent"]


async def test_ephemeral_messages_are_only_visible_to_their_user(env: Env) -> None:
    resp = await env.client.chat_postEphemeral(channel="C0APOLLO", user="U0ALICE", text="psst")
    assert TS.match(resp["message_ts"])
    alice = env.sandbox.messages("C0APOLLO", viewer="U0ALICE")
    assert [(m["text"], m.get("is_ephemeral")) for m in alice] == [("psst", True)]
    assert env.sandbox.messages("C0APOLLO", viewer="U0BOB") == []
    assert env.sandbox.messages("C0APOLLO") == []
    with pytest.raises(SlackApiError) as err:
        await env.client.chat_postEphemeral(channel="C0APOLLO", user="U0DAVE", text="no")
    assert err.value.response["error"] == "user_not_in_channel"


async def test_update_and_delete(env: Env) -> None:
    posted = await env.client.chat_postMessage(channel="C0APOLLO", text="v1", blocks=BUTTONS)
    ts = posted["ts"]
    updated = await env.client.chat_update(channel="C0APOLLO", ts=ts, text="v2")
    assert updated["ts"] == ts
    (stored,) = env.sandbox.messages("C0APOLLO")
    assert stored["text"] == "v2"
    assert len(stored["blocks"]) == 2, "blocks are kept when chat.update omits them"
    assert stored["edited"]["user"] == "U0PMBOT"
    await env.client.chat_update(channel="C0APOLLO", ts=ts, text="v3", blocks=[])
    assert "blocks" not in env.sandbox.messages("C0APOLLO")[0]
    await env.client.chat_delete(channel="C0APOLLO", ts=ts)
    assert env.sandbox.messages("C0APOLLO") == []
    with pytest.raises(SlackApiError) as err:
        await env.client.chat_update(channel="C0APOLLO", ts=ts, text="gone")
    assert err.value.response["error"] == "message_not_found"


async def test_bot_cannot_edit_a_persons_message(env: Env) -> None:
    posted = await env.sandbox.post_message("U0ALICE", "C0RANDOM", "mine")
    with pytest.raises(SlackApiError) as err:
        await env.client.chat_update(channel="C0RANDOM", ts=posted["ts"], text="hacked")
    assert err.value.response["error"] == "cant_update_message"
    with pytest.raises(SlackApiError) as err:
        await env.client.chat_delete(channel="C0RANDOM", ts=posted["ts"])
    assert err.value.response["error"] == "cant_delete_message"


async def test_deleting_a_thread_parent_leaves_a_tombstone(env: Env) -> None:
    parent = await env.client.chat_postMessage(channel="C0APOLLO", text="parent")
    await env.client.chat_postMessage(channel="C0APOLLO", text="r", thread_ts=parent["ts"])
    await env.client.chat_delete(channel="C0APOLLO", ts=parent["ts"])
    first = env.sandbox.messages("C0APOLLO")[0]
    assert first["subtype"] == "tombstone"
    assert first["reply_count"] == 1


async def test_direct_messages(env: Env) -> None:
    opened = await env.client.conversations_open(users="U0ALICE")
    dm = opened["channel"]["id"]
    assert dm.startswith("D")
    again = await env.client.conversations_open(users=["U0ALICE"], return_im=True)
    assert again["channel"]["id"] == dm
    assert again["already_open"] is True
    assert again["channel"]["user"] == "U0ALICE"
    await env.client.chat_postMessage(channel=dm, text="hi alice")
    # A user id as channel posts into the app's DM with that user.
    by_user = await env.client.chat_postMessage(channel="U0ALICE", text="again")
    assert by_user["channel"] == dm
    seen = env.sandbox.messages("U0PMBOT", viewer="U0ALICE")
    assert [m["text"] for m in seen] == ["hi alice", "again"]
    assert [m["text"] for m in env.sandbox.messages(dm)] == ["hi alice", "again"]
    info = await env.client.conversations_info(channel=dm)
    assert info["channel"]["is_im"] is True
    with pytest.raises(SlackApiError) as err:
        await env.client.conversations_open(users="U0NOBODY")
    assert err.value.response["error"] == "user_not_found"


async def test_a_dm_between_people_is_invisible_to_the_bot(env: Env) -> None:
    posted = await env.sandbox.post_message("U0ALICE", "U0BOB", "just us")
    with pytest.raises(SlackApiError) as err:
        await env.client.conversations_info(channel=posted["channel"])
    assert err.value.response["error"] == "channel_not_found"
    assert env.sandbox.deliveries() == []


async def test_conversations_members_paginates_with_cursors(env: Env) -> None:
    members: list[str] = []
    cursor = None
    pages = 0
    while True:
        resp = await env.client.conversations_members(channel="C0GENERAL", limit=2, cursor=cursor)
        pages += 1
        members += resp["members"]
        cursor = resp["response_metadata"]["next_cursor"]
        if not cursor:
            break
    assert pages == 3
    assert members == ["U0ALICE", "U0BOB", "U0CAROL", "U0DAVE", "U0PMBOT"]
    with pytest.raises(SlackApiError) as err:
        await env.client.conversations_members(channel="C0GENERAL", cursor="bm9wZQ==")
    assert err.value.response["error"] == "invalid_cursor"


async def test_conversations_list_names_the_channels_a_page_at_a_time(env: Env) -> None:
    first = await env.client.conversations_list(limit=2)
    names = [c["name"] for c in first["channels"]]
    cursor = first["response_metadata"]["next_cursor"]
    assert len(names) == 2 and cursor
    rest = await env.client.conversations_list(limit=10, cursor=cursor)
    names += [c["name"] for c in rest["channels"]]
    assert rest["response_metadata"]["next_cursor"] == ""
    assert sorted(names) == ["apollo", "general", "random"]
    assert all(not c["is_im"] for c in first["channels"] + rest["channels"])


async def test_conversations_info_and_users_info(env: Env) -> None:
    info = await env.client.conversations_info(channel="C0APOLLO")
    assert info["channel"]["name"] == "apollo"
    assert info["channel"]["is_member"] is True
    assert info["channel"]["num_members"] == 3
    with pytest.raises(SlackApiError) as err:
        await env.client.conversations_info(channel="C0MISSING")
    assert err.value.response["error"] == "channel_not_found"
    user = await env.client.users_info(user="U0ALICE")
    assert user["user"]["name"] == "alice"
    assert user["user"]["is_bot"] is False
    assert user["user"]["profile"]["email"] == "alice@example.com"
    with pytest.raises(SlackApiError) as err:
        await env.client.users_info(user="U0NOBODY")
    assert err.value.response["error"] == "user_not_found"


async def test_views_publish_sets_the_app_home(env: Env) -> None:
    view = {"type": "home", "blocks": BUTTONS}
    first = await env.client.views_publish(user_id="U0ALICE", view=view)
    assert first["view"]["id"].startswith("V")
    home = env.sandbox.home_view("U0ALICE")
    assert home is not None and home["blocks"][1]["block_id"] == "decide"
    assert env.sandbox.home_view("U0BOB") is None
    # A stale hash is refused, the current one accepted.
    second = await env.client.views_publish(
        user_id="U0ALICE", view=view, hash=first["view"]["hash"]
    )
    assert second["view"]["id"] == first["view"]["id"]
    with pytest.raises(SlackApiError) as err:
        await env.client.views_publish(user_id="U0ALICE", view=view, hash=first["view"]["hash"])
    assert err.value.response["error"] == "hash_conflict"
    with pytest.raises(SlackApiError) as err:
        await env.client.views_publish(user_id="U0ALICE", view={"type": "modal", "blocks": []})
    assert err.value.response["error"] == "invalid_arguments"


async def test_injected_429_carries_retry_after(env: Env) -> None:
    env.sandbox.fail_next("chat.postMessage", times=1, retry_after=7)
    with pytest.raises(SlackApiError) as err:
        await env.client.chat_postMessage(channel="C0APOLLO", text="x")
    assert err.value.response.status_code == 429
    assert err.value.response.headers["Retry-After"] == "7"
    assert err.value.response["error"] == "ratelimited"
    # The fault was used up: the next call goes through.
    assert (await env.client.chat_postMessage(channel="C0APOLLO", text="x"))["ok"]


async def test_rate_limit_retry_handler_recovers(env: Env) -> None:
    env.sandbox.fail_next("chat.postMessage", times=1, retry_after=0)
    client = AsyncWebClient(
        token=BOT_TOKEN,
        base_url=env.base + "api/",
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    resp = await client.chat_postMessage(channel="C0APOLLO", text="eventually")
    assert resp["ok"]
    calls = [(c["method"], c["error"]) for c in env.sandbox.api_calls()]
    assert calls == [("chat.postMessage", "ratelimited"), ("chat.postMessage", None)]
    assert [m["text"] for m in env.sandbox.messages("C0APOLLO")] == ["eventually"]


async def test_bot_must_be_a_member_to_post() -> None:
    seed = SandboxSeed(
        team_id="T1",
        team_name="Other",
        users=[
            SandboxUser("U1", "ann", "Ann", "ann@example.com"),
            SandboxUser("U1BOT", "bot", "bot", "bot@example.com", is_bot=True),
        ],
        channels=[("C1", "private-ish", ["U1"])],
    )
    sandbox = SlackSandbox(
        seed=seed,
        signing_secret=SIGNING_SECRET,
        bot_token=BOT_TOKEN,
        events_url="http://127.0.0.1:9/unused",
    )
    async with serve(sandbox.app()) as base:
        client = AsyncWebClient(token=BOT_TOKEN, base_url=base + "api/")
        with pytest.raises(SlackApiError) as err:
            await client.chat_postMessage(channel="C1", text="hi")
        assert err.value.response["error"] == "not_in_channel"
        assert (await client.auth_test())["bot_id"] == "B1BOT"
