"""An approval in the embedded default (what ``make run`` starts), in a real browser: bob,
an editor of Apollo, asks pmbot to delete it; alice, its owner, clicks Approve in her DM
and confirms the code on the dev identity provider's authenticator page (the stand-in for
her phone). The project is gone, both messages show the final state, and the audit log
has every step.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.sandbox_ui import (
    NARROW,
    TIMEOUT,
    WIDE,
    Shots,
    follow,
    link,
    messages,
    no_raw_markup,
    open_bot_dm,
    open_channel,
    open_workspace,
    send,
)
from tests.support import serving_embedded_default

pytestmark = pytest.mark.e2e

# The dev identity provider lets a device poll every 5 seconds: the deletion runs at most a
# few seconds after the code is confirmed.
DONE_TIMEOUT = 15_000


@pytest.fixture
async def database(tmp_path: Path) -> str:
    return f"{tmp_path}/approvals.sqlite3"


@pytest.fixture
async def sandbox_url(database: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    # pmbot asks the provider as soon as the device may have answered (it still honours
    # the provider's interval).
    monkeypatch.setenv("APPROVAL_POLL_SECONDS", "0.5")
    async with serving_embedded_default(database) as url:
        yield url


async def exported_audit(
    database: str, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> list[dict[str, Any]]:
    """``pmbot audit export -o FILE``, as an operator runs it."""
    from bot.cli import main

    monkeypatch.setenv("PMBOT_MODE", "sandbox")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{database}")
    out = folder / "audit.jsonl"
    assert await asyncio.to_thread(main, ["audit", "export", "-o", str(out)]) == 0
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


async def test_a_member_asks_to_delete_a_project_and_the_owner_approves_on_the_authenticator(
    sandbox_url: str,
    database: str,
    chromium: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from playwright.async_api import expect

    shots = Shots(tmp_path)
    # Two browsers, one each. bob's is in Paris: the expiry times pmbot sends as Slack
    # dates show in the reader's own zone.
    alice, bob = await asyncio.gather(
        open_workspace(chromium, sandbox_url, "U0ALICE"),
        open_workspace(chromium, sandbox_url, "U0BOB", timezone="Europe/Paris"),
    )
    await asyncio.gather(link(alice, "alice"), link(bob, "bob"))

    # bob asks in #apollo; only he sees the answer, beside his message.
    await open_channel(bob, "C0APOLLO")
    await send(bob, "@pmbot delete project Apollo")
    asked = messages(bob, "I asked @alice to approve deleting project Apollo")
    await expect(asked).to_have_count(1, timeout=TIMEOUT)
    await expect(asked).to_contain_text("nothing is deleted until they do")
    assert await asked.get_attribute("data-ephemeral") == "true"
    await no_raw_markup(bob.locator("#messages"))
    await shots.take(bob, "bob-asks")

    # His DM with pmbot says whom it waits for and until when, in his time zone.
    await open_bot_dm(bob)
    waiting = messages(bob, "Waiting for approval by @alice")
    await expect(waiting).to_contain_text("delete project Apollo", timeout=TIMEOUT)
    expires = waiting.get_by_test_id("date")
    await expect(expires).to_have_count(1)
    fallback = await expires.get_attribute("title")
    assert fallback is not None and fallback.endswith(" UTC")
    utc_hour = int(fallback[:2])
    shown = (await expires.inner_text()).strip()
    assert int(shown[:2]) % 12 == (utc_hour + 1) % 12, (shown, fallback)  # Paris, winter
    await expect(waiting.get_by_role("button", name="Cancel")).to_be_visible()
    requester_ts = await waiting.get_attribute("data-ts")
    await no_raw_markup(bob.locator("#messages"))
    await shots.both_widths(bob, "bob-waiting")
    await bob.click("#nav-home")
    await expect(bob.get_by_test_id("home")).to_contain_text(
        "delete project Apollo, waiting for approval by @alice"
    )
    await shots.take(bob, "bob-home")

    # alice's DM asks her; her App Home says who asked.
    await alice.click("#nav-home")
    home = alice.get_by_test_id("home")
    await expect(home).to_contain_text("delete project Apollo, asked by @bob", timeout=TIMEOUT)
    await shots.take(alice, "alice-home")
    await open_bot_dm(alice)
    asking = messages(alice, "@bob asks to delete project Apollo")
    await expect(asking).to_contain_text("Approve (you will confirm on your device)")
    await no_raw_markup(alice.locator("#messages"))
    await shots.both_widths(alice, "alice-asked")
    approver_ts = await asking.get_attribute("data-ts")
    request = alice.locator(f"#messages [data-ts='{approver_ts}']")
    await request.get_by_role("button", name="Approve").click()
    await expect(request).to_contain_text("Confirm code", timeout=TIMEOUT)
    found = re.search(r"Confirm code ([A-Z0-9]{3}-[0-9]{2})", await request.inner_text())
    assert found is not None
    code = found.group(1)
    await expect(request.get_by_role("button", name="Approve")).to_have_count(0)
    note = messages(alice, "You pressed Approve")
    await expect(note).to_contain_text(f"Confirm code {code} on your device", timeout=TIMEOUT)
    await shots.take(alice, "alice-confirming")

    # The authenticator, from the top bar: alice signs in and confirms the same code.
    phone = await follow(alice, alice.get_by_test_id("open-authenticator"))
    await phone.set_viewport_size(NARROW)
    await phone.get_by_test_id("auth-sign-in-as-alice@example.com").click()
    card = phone.get_by_test_id("auth-request")
    await expect(card.get_by_test_id("auth-binding-message")).to_have_text(
        f"{code} pmbot: delete project Apollo"
    )
    await shots.take(phone, "authenticator-request")
    await card.get_by_test_id("auth-approve").click()
    await expect(phone.get_by_test_id("auth-flash")).to_have_text(
        "Approved. The application can go ahead."
    )
    await shots.take(phone, "authenticator-approved")
    await phone.close()

    # Both messages, updated in place, show the final state and offer nothing more.
    done = request
    await expect(done).to_contain_text(
        "Done: delete project Apollo (approved by @alice)", timeout=DONE_TIMEOUT
    )
    await expect(done.get_by_role("button")).to_have_count(0)
    await shots.take(alice, "alice-done")
    await open_bot_dm(bob)
    finished = bob.locator(f"#messages [data-ts='{requester_ts}']")
    await expect(finished).to_contain_text("Done: delete project Apollo (approved by @alice)")
    await expect(finished.get_by_role("button")).to_have_count(0)
    await bob.set_viewport_size(NARROW)
    await shots.take(bob, "bob-done-420")
    await bob.set_viewport_size(WIDE)

    # The project is gone.
    await open_channel(bob, "C0GENERAL")
    await send(bob, "/pm projects")
    listed = bob.locator("[data-testid=ephemeral]").filter(has_text="Borealis").last
    await expect(listed).to_be_visible(timeout=TIMEOUT)
    await expect(listed).not_to_contain_text("Apollo")

    # The audit log has every step, under the project.
    entries = await exported_audit(database, tmp_path, monkeypatch)
    steps = [
        (e["action"], e["outcome"], e["actor_sub"], e["reason"])
        for e in entries
        if e["project_id"] == "demo-apollo"
    ]
    assert steps == [
        ("delete_project", "requested", "auth0|bob", None),
        ("delete_project", "approve_pressed", "auth0|alice", None),
        ("delete_project", "granted", "auth0|alice", "confirmed_on_device"),
        ("delete_project", "executed", "auth0|alice", None),
    ], steps
    approval = {e["subject"] for e in entries if e["project_id"] == "demo-apollo"}
    tool = [e for e in entries if e["kind"] == "tool" and e["action"] == "delete_project"]
    assert [(e["actor_sub"], e["outcome"], e["subject"]) for e in tool] == [
        ("auth0|bob", "approval_requested", *approval)
    ]
