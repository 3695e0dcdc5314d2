"""Workspace state rules that need a controlled clock or no HTTP at all."""

from __future__ import annotations

import pytest

from sandbox.slack import SandboxError, default_seed, sign
from sandbox.slack.blocks import validate_blocks
from sandbox.slack.conversations import TsClock
from sandbox.slack.state import Workspace


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_default_seed_matches_the_documented_workspace() -> None:
    seed = default_seed()
    assert (seed.team_id, seed.team_name) == ("T0SANDBOX", "Sandbox")
    users = {u.id: u for u in seed.users}
    assert users["U0ALICE"].email == "alice@example.com"
    assert users["U0PMBOT"].is_bot and users["U0PMBOT"].name == "pmbot"
    channels = {cid: (name, members) for cid, name, members in seed.channels}
    assert channels["C0APOLLO"] == ("apollo", ["U0ALICE", "U0BOB", "U0PMBOT"])
    assert "U0DAVE" not in channels["C0RANDOM"][1]
    assert len(channels["C0GENERAL"][1]) == 5
    ws = Workspace(seed)
    assert (ws.bot_id, ws.app_id) == ("B0PMBOT", "A0PMBOT")


def test_ts_is_unique_and_increasing_even_when_the_clock_stands_still() -> None:
    clock = TsClock(FakeClock(1_700_000_000.0))
    stamps = [clock.next() for _ in range(3)]
    assert stamps == ["1700000000.000000", "1700000000.000001", "1700000000.000002"]


def test_response_url_expires_after_30_minutes() -> None:
    mono = FakeClock(100.0)
    ws = Workspace(default_seed(), monotonic=mono)
    ctx = ws.new_response_url(user_id="U0ALICE", channel_id="C0APOLLO")
    assert ws.response_url(ctx.token) is ctx
    mono.now += 30 * 60 + 1
    with pytest.raises(SandboxError) as err:
        ws.response_url(ctx.token)
    assert err.value.error == "expired_url"


def test_mentions_are_linked_like_the_slack_client_does() -> None:
    ws = Workspace(default_seed())
    assert ws.mentionize("@pmbot ask @Alice, not @nobody") == (
        "<@U0PMBOT> ask <@U0ALICE>, not @nobody"
    )
    assert ws.mentionize("mail bob@example.com") == "mail bob@example.com"
    assert ws.mentionize("<@U0BOB> already") == "<@U0BOB> already"


def test_block_validation_reports_what_slack_would_reject() -> None:
    button = {"type": "button", "action_id": "a", "text": {"type": "mrkdwn", "text": "x"}}
    errors = validate_blocks(
        [
            {"type": "header", "text": {"type": "mrkdwn", "text": "h"}},
            {"type": "section"},
            {"type": "actions", "elements": [button]},
            {"type": "divider", "block_id": "d"},
            {"type": "divider", "block_id": "d"},
            "not a block",
        ]
    )
    assert len(errors) == 5
    assert any("plain_text" in e for e in errors)
    assert any("duplicated" in e for e in errors)
    assert validate_blocks([{"type": "divider"}, {"type": "context", "elements": [{}]}]) == []


def test_conversation_refs() -> None:
    ws = Workspace(default_seed())
    assert ws.conversation("#apollo", actor="U0ALICE").id == "C0APOLLO"
    assert ws.conversation("random", actor="U0ALICE").id == "C0RANDOM"
    dm = ws.conversation("U0PMBOT", actor="U0ALICE")
    assert dm.is_im and dm.members == ["U0ALICE", "U0PMBOT"]
    with pytest.raises(SandboxError):
        ws.conversation(dm.id, actor="U0BOB")


def test_sign_matches_slacks_recipe() -> None:
    # Slack's documented example request signature.
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow"
        b"&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner"
        b"&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com"
        b"%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
        b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    assert (
        sign("8f742231b10e8888abcd99yyyzzz85a5", "1531420618", body)
        == "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    )
