"""Approvals end to end: the real bot, the Slack sandbox and the dev identity provider's
CIBA over HTTP, on SQLite and PostgreSQL.

A request comes from the approvals service as the agent's destructive tools call it; the
owner's DM, the requester's message, the clicks (signed ``block_actions`` from the
sandbox), the CIBA request on the provider (approved or denied there, as the
authenticator page does) and the scheduler's jobs (``poll_round``, ``sweep``,
``render_pending``, called here as the scheduler calls them) are all the real ones.

Seeded people: alice owns Apollo; bob is a viewer of it (he asks); carol is an approver.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from bot.approvals.models import Approval, ApprovalStatus
from bot.approvals.ports import ApprovalAction, ApprovalTicket
from bot.audit import AuditEntry
from bot.errors import ApprovalProblem, ApprovalRefused, ProjectNotFound
from bot.identity.model import Identity
from bot.projects.models import Project, ProjectMember, Task
from handlers.blocks import APPROVAL_APPROVE, APPROVAL_ASK_AGAIN, APPROVAL_CANCEL, APPROVAL_DENY
from sandbox.idp.ciba import BackchannelRequest
from tests.support import TEAM, Harness, running_bot

EMAILS = {
    "U0ALICE": "alice@example.com",
    "U0BOB": "bob@example.com",
    "U0CAROL": "carol@example.com",
    "U0DAVE": "dave@example.com",
}
SUBS = {u: f"auth0|{e.split('@')[0]}" for u, e in EMAILS.items()}


@pytest.fixture
async def bot(database_url: str) -> AsyncIterator[Harness]:
    async with running_bot(database_url) as harness:
        # Poll as often as the test asks (no interval to wait out); slow_down has its test.
        harness.idp.ciba.interval = 0
        yield harness


async def command(bot: Harness, user: str, text: str, channel: str = "C0GENERAL") -> str:
    seen = len(bot.sandbox.messages(channel, viewer=user))
    await bot.sandbox.run_command(user, channel, "/pm", text)
    await bot.ingress.drain()
    new = bot.sandbox.messages(channel, viewer=user)[seen:]
    assert len(new) == 1, new
    return str(new[0]["text"])


async def setup_apollo(bot: Harness, *, approver: bool = False) -> str:
    """alice owns Apollo (with a task), bob views it; carol approves it when asked."""
    for user in ("U0ALICE", "U0BOB", "U0CAROL"):
        await bot.link(user, EMAILS[user])
    assert "Created" in await command(bot, "U0ALICE", "project new Apollo")
    assert "viewer" in await command(bot, "U0ALICE", "project share Apollo @bob viewer")
    if approver:
        assert "approver" in await command(bot, "U0ALICE", "project share Apollo @carol approver")
    assert "Added" in await command(bot, "U0ALICE", 'task add Apollo "Spec" @bob')
    return await project_id(bot, "Apollo")


async def project_id(bot: Harness, name: str) -> str:
    async with bot.deps.db.session() as session:
        found = await session.scalar(select(Project.id).where(Project.name == name))
    assert found is not None
    return str(found)


async def identity(bot: Harness, user: str) -> Identity:
    found = await bot.deps.identity.current(TEAM, user)
    assert found is not None
    return found


async def ask_delete(bot: Harness, user: str = "U0BOB", name: str = "Apollo") -> ApprovalTicket:
    return await bot.deps.approvals.request(
        await identity(bot, user),
        ApprovalAction.DELETE_PROJECT,
        {"project": name},
        channel_id="C0GENERAL",
    )


async def row(bot: Harness, approval_id: str) -> Approval:
    found = await bot.deps.approvals.get(approval_id)
    assert found is not None
    return found


async def dm_messages(bot: Harness, user: str) -> list[dict[str, Any]]:
    return bot.sandbox.messages(await bot.dm_channel(user), viewer=user)


async def dm_with(
    bot: Harness, user: str, approval_id: str, action_id: str = ""
) -> dict[str, Any] | None:
    """The message of ``approval_id`` (its blocks carry the id) in ``user``'s DM (the one
    with button ``action_id`` when given)."""
    for message in await dm_messages(bot, user):
        blocks = json.dumps(message.get("blocks") or [])
        if approval_id in blocks and action_id in blocks:
            return message
    return None


async def message_of(bot: Harness, user: str, ts: str) -> dict[str, Any]:
    for message in await dm_messages(bot, user):
        if message.get("ts") == ts:
            return message
    raise AssertionError(f"no message {ts} in the DM of {user}")


async def click(bot: Harness, user: str, approval_id: str, action_id: str) -> str:
    """Press a button of the approval's message in ``user``'s DM; returns what only the
    clicker was told."""
    found = await dm_with(bot, user, approval_id, action_id)
    assert found is not None, f"{user} has no message for {approval_id}"
    dm = await bot.dm_channel(user)
    seen = len(bot.sandbox.messages(dm, viewer=user))
    await bot.sandbox.click_button(user, dm, str(found["ts"]), action_id)
    await bot.ingress.drain()
    told = [
        m
        for m in bot.sandbox.messages(dm, viewer=user)[seen:]
        if m.get("ts") != found["ts"] and m.get("user") == "U0PMBOT"
    ]
    return str(told[-1]["text"]) if told else ""


def ciba_requests(bot: Harness, sub: str) -> list[BackchannelRequest]:
    return bot.idp.ciba.requests(sub=sub)


async def interval_passes(bot: Harness) -> None:
    """The polling interval of every CIBA request elapses (instead of waiting it out)."""
    async with bot.deps.db.session() as session:
        await session.execute(
            update(Approval)
            .where(Approval.status == ApprovalStatus.CONFIRMING.value)
            .values(next_poll_at=datetime.now(UTC) - timedelta(seconds=1))
        )


async def poll(bot: Harness, *, wait: bool = True) -> int:
    """What the poll_approvals job does, once the interval has passed (``wait``)."""
    if wait:
        await interval_passes(bot)
    polled = await bot.deps.approvals.poll_round()
    await bot.deps.approvals.render_pending()
    return polled


async def audit_outcomes(bot: Harness, approval_id: str) -> list[str]:
    async with bot.deps.db.session() as session:
        found = await session.scalars(
            select(AuditEntry.outcome)
            .where(AuditEntry.subject == approval_id)
            .order_by(AuditEntry.id)
        )
        return list(found)


async def count(bot: Harness, model: type[Any]) -> int:
    async with bot.deps.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


# -- the whole flow --------------------------------------------------------------------------


async def test_member_asks_owner_approves_on_device_and_project_is_deleted(bot: Harness) -> None:
    pid = await setup_apollo(bot)
    ticket = await ask_delete(bot)
    assert ticket.created and ticket.approvers == ("U0ALICE",)
    assert ticket.target == "project Apollo"
    # The owner's DM: a normal message with what, to what, asked by whom, until when.
    dm = await dm_with(bot, "U0ALICE", ticket.approval_id)
    assert dm is not None and "visible_to" not in dm
    assert "<@U0BOB> asks to *delete project Apollo*" in dm["text"]
    assert "Approve" in json.dumps(dm["blocks"]) and "Deny" in json.dumps(dm["blocks"])
    # The requester's message, in their DM with the bot.
    asked = await dm_with(bot, "U0BOB", ticket.approval_id)
    assert asked is not None and "Waiting for approval by <@U0ALICE>, expires" in asked["text"]
    assert "Cancel request" in json.dumps(asked["blocks"])
    # The same request again finds the same approval.
    again = await ask_delete(bot)
    assert again.approval_id == ticket.approval_id and not again.created
    # Approve: CIBA starts on alice's device; her DM shows the code the device shows.
    told = await click(bot, "U0ALICE", ticket.approval_id, APPROVAL_APPROVE)
    state = await row(bot, ticket.approval_id)
    assert state.status == ApprovalStatus.CONFIRMING
    code = state.binding_code
    assert code is not None and f"Confirm code *{code}* on your device" in told
    (pending,) = ciba_requests(bot, SUBS["U0ALICE"])
    assert pending.binding_message.startswith(code) and len(pending.binding_message) <= 64
    assert "delete project Apollo" in pending.binding_message
    assert pending.expires_at - pending.created_at <= 600
    updated = await message_of(bot, "U0ALICE", str(dm["ts"]))
    assert f"Confirm code *{code}* on your device" in updated["text"]
    assert state.auth_req_id and state.auth_req_id not in json.dumps(
        await dm_messages(bot, "U0ALICE")
    )
    # Not yet approved on the device: a poll changes nothing.
    assert await poll(bot) == 1
    assert (await row(bot, ticket.approval_id)).status == ApprovalStatus.CONFIRMING
    assert await project_id(bot, "Apollo") == pid
    # Approved on the device: the next poll runs the deletion, once.
    assert bot.idp.ciba.approve(pending.auth_req_id)
    await poll(bot)
    final = await row(bot, ticket.approval_id)
    assert final.status == ApprovalStatus.EXECUTED and final.executed_at is not None
    assert final.idempotency_key is None
    async with bot.deps.db.session() as session:
        assert await session.get(Project, pid) is None
        assert not list(await session.scalars(select(Task).where(Task.project_id == pid)))
        assert not list(
            await session.scalars(select(ProjectMember).where(ProjectMember.project_id == pid))
        )
    assert not (await bot.deps.authz.read(object=f"project:{pid}")).tuples
    assert not await bot.deps.authz.check("user:auth0|alice", "can_view", f"project:{pid}")
    # Both messages show the final state, without buttons left to press.
    done_dm = await message_of(bot, "U0ALICE", str(dm["ts"]))
    done_ask = await message_of(bot, "U0BOB", str(asked["ts"]))
    for message in (done_dm, done_ask):
        assert "Done: *delete project Apollo* (approved by <@U0ALICE>)" in message["text"]
        assert "button" not in json.dumps(message.get("blocks") or [])
    # Every step is in the audit log, under the project.
    assert await audit_outcomes(bot, ticket.approval_id) == [
        "requested",
        "approve_pressed",
        "granted",
        "executed",
    ]
    # Polling again changes nothing (the grant was used once; nothing runs twice).
    assert await poll(bot) == 0
    assert (await audit_outcomes(bot, ticket.approval_id)).count("executed") == 1


# -- races and faults ------------------------------------------------------------------------


async def test_double_click_on_approve_starts_one_confirmation(bot: Harness) -> None:
    await setup_apollo(bot)
    ticket = await ask_delete(bot)
    first = await click(bot, "U0ALICE", ticket.approval_id, APPROVAL_APPROVE)
    code = (await row(bot, ticket.approval_id)).binding_code
    # The DM still offers Deny only; the second press comes from a stale copy of it.
    second = await bot.deps.approvals.approve(TEAM, "U0ALICE", ticket.approval_id)
    both = await asyncio.gather(
        bot.deps.approvals.approve(TEAM, "U0ALICE", ticket.approval_id),
        bot.deps.approvals.approve(TEAM, "U0ALICE", ticket.approval_id),
    )
    assert f"Confirm code *{code}*" in first
    assert second.outcome.value == "already_confirming" and second.binding_code == code
    assert {c.outcome.value for c in both} == {"already_confirming"}
    assert len(ciba_requests(bot, SUBS["U0ALICE"])) == 1
    assert (await audit_outcomes(bot, ticket.approval_id)).count("approve_pressed") == 1
    (pending,) = ciba_requests(bot, SUBS["U0ALICE"])
    bot.idp.ciba.approve(pending.auth_req_id)
    await asyncio.gather(poll(bot), poll(bot, wait=False))
    await poll(bot)
    assert (await row(bot, ticket.approval_id)).status == ApprovalStatus.EXECUTED
    assert (await audit_outcomes(bot, ticket.approval_id)).count("executed") == 1


async def test_approve_after_expiry_does_nothing_and_offers_ask_again(bot: Harness) -> None:
    pid = await setup_apollo(bot)
    ticket = await ask_delete(bot)
    async with bot.deps.db.session() as session:
        await session.execute(
            update(Approval)
            .where(Approval.id == ticket.approval_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    told = await click(bot, "U0ALICE", ticket.approval_id, APPROVAL_APPROVE)
    assert "has expired; nothing was done" in told
    assert (await row(bot, ticket.approval_id)).status == ApprovalStatus.EXPIRED
    assert ciba_requests(bot, SUBS["U0ALICE"]) == []
    assert await project_id(bot, "Apollo") == pid
    asked = await dm_with(bot, "U0BOB", ticket.approval_id)
    assert asked is not None and "Expired" in asked["text"]
    assert "Ask again" in json.dumps(asked["blocks"])
    # Ask again: a new approval for the same action, with a fresh deadline.
    told_again = await click(bot, "U0BOB", ticket.approval_id, APPROVAL_ASK_AGAIN)
    assert "I asked <@U0ALICE> to approve" in told_again
    async with bot.deps.db.session() as session:
        open_ = list(
            await session.scalars(
                select(Approval).where(Approval.status == ApprovalStatus.PENDING.value)
            )
        )
    assert len(open_) == 1 and open_[0].id != ticket.approval_id


async def test_deny_then_approve(bot: Harness) -> None:
    pid = await setup_apollo(bot)
    ticket = await ask_delete(bot)
    told = await click(bot, "U0ALICE", ticket.approval_id, APPROVAL_DENY)
    assert "Denied" in told
    late = await bot.deps.approvals.approve(TEAM, "U0ALICE", ticket.approval_id)
    assert late.outcome.value == "already_finished"
    assert (await row(bot, ticket.approval_id)).status == ApprovalStatus.DENIED
    assert ciba_requests(bot, SUBS["U0ALICE"]) == []
    assert await project_id(bot, "Apollo") == pid
    asked = await dm_with(bot, "U0BOB", ticket.approval_id)
    assert asked is not None and "Denied by <@U0ALICE>" in asked["text"]
    assert "Ask again" in json.dumps(asked["blocks"])
    assert await audit_outcomes(bot, ticket.approval_id) == ["requested", "denied"]


async def test_deny_while_confirming_ends_it_and_a_late_grant_runs_nothing(bot: Harness) -> None:
    pid = await setup_apollo(bot)
    ticket = await ask_delete(bot)
    await click(bot, "U0ALICE", ticket.approval_id, APPROVAL_APPROVE)
    await click(bot, "U0ALICE", ticket.approval_id, APPROVAL_DENY)
    (pending,) = ciba_requests(bot, SUBS["U0ALICE"])
    bot.idp.ciba.approve(pending.auth_req_id)
    assert await poll(bot) == 0
    assert (await row(bot, ticket.approval_id)).status == ApprovalStatus.DENIED
    assert await project_id(bot, "Apollo") == pid


async def test_a_click_by_a_non_approver_is_refused_and_changes_nothing(bot: Harness) -> None:
    pid = await setup_apollo(bot, approver=True)
    ticket = await ask_delete(bot)
    assert ticket.approvers == ("U0ALICE", "U0CAROL")
    before = await row(bot, ticket.approval_id)
    for user in ("U0BOB", "U0DAVE"):  # the requester (not an approver) and a stranger
        for press in (bot.deps.approvals.approve, bot.deps.approvals.deny):
            refused = await press(TEAM, user, ticket.approval_id)
            assert refused.outcome.value == "not_approver"
    # Somebody who was an approver when asked but is not any more is refused too.
    assert "no longer approver" in await command(bot, "U0ALICE", "project unshare Apollo @carol")
    told = await click(bot, "U0CAROL", ticket.approval_id, APPROVAL_APPROVE)
    assert "not an approver" in told
    after = await row(bot, ticket.approval_id)
    assert (after.status, after.version) == (before.status, before.version)
    assert after.status == ApprovalStatus.PENDING
    assert bot.idp.ciba.requests() == []
    assert await project_id(bot, "Apollo") == pid
    # Refusals are on the record; they moved nothing.
    outcomes = await audit_outcomes(bot, ticket.approval_id)
    assert outcomes.count("approve_refused") == 3 and outcomes.count("deny_refused") == 2
    # Only the requester may cancel.
    assert (await bot.deps.approvals.cancel(TEAM, "U0ALICE", ticket.approval_id)).outcome.value == (
        "not_requester"
    )
    assert "cancelled" in await click(bot, "U0BOB", ticket.approval_id, APPROVAL_CANCEL)
    assert (await row(bot, ticket.approval_id)).status == ApprovalStatus.CANCELLED


async def test_a_grant_for_another_sub_is_refused(bot: Harness) -> None:
    pid = await setup_apollo(bot)
    ticket = await ask_delete(bot)
    await click(bot, "U0ALICE", ticket.approval_id, APPROVAL_APPROVE)
    (pending,) = ciba_requests(bot, SUBS["U0ALICE"])
    assert bot.idp.ciba.approve(pending.auth_req_id, as_sub=SUBS["U0DAVE"])
    await poll(bot)
    final = await row(bot, ticket.approval_id)
    assert final.status == ApprovalStatus.DENIED and final.reason == "grant_for_another_user"
    assert await project_id(bot, "Apollo") == pid
    asked = await dm_with(bot, "U0BOB", ticket.approval_id)
    assert asked is not None and "another account" in asked["text"]
    assert "executed" not in await audit_outcomes(bot, ticket.approval_id)


async def test_access_denied_on_the_device(bot: Harness) -> None:
    pid = await setup_apollo(bot)
    ticket = await ask_delete(bot)
    messages = {
        user: str(((await dm_with(bot, user, ticket.approval_id)) or {}).get("ts"))
        for user in ("U0ALICE", "U0BOB")
    }
    await click(bot, "U0ALICE", ticket.approval_id, APPROVAL_APPROVE)
    (pending,) = ciba_requests(bot, SUBS["U0ALICE"])
    assert bot.idp.ciba.deny(pending.auth_req_id)
    await poll(bot)
    final = await row(bot, ticket.approval_id)
    assert final.status == ApprovalStatus.DENIED and final.reason == "denied_on_device"
    assert await project_id(bot, "Apollo") == pid
    for user, ts in messages.items():
        shown = await message_of(bot, user, ts)
        assert "Not approved (denied on the approver's device)" in shown["text"]


async def test_slow_down_makes_the_interval_grow(bot: Harness) -> None:
    await setup_apollo(bot)
    bot.idp.ciba.interval = 5
    ticket = await ask_delete(bot)
    await click(bot, "U0ALICE", ticket.approval_id, APPROVAL_APPROVE)
    started = await row(bot, ticket.approval_id)
    assert started.poll_interval == 5
    await poll(bot)  # the first poll: pending
    assert (await row(bot, ticket.approval_id)).poll_interval == 5
    await poll(bot)  # polled again before 5 s passed (as a clock skew would): slow_down
    slowed = await row(bot, ticket.approval_id)
    assert slowed.poll_interval == 10 and slowed.status == ApprovalStatus.CONFIRMING
    assert slowed.next_poll_at is not None
    wait = (aware_(slowed.next_poll_at) - datetime.now(UTC)).total_seconds()
    assert 5 < wait <= 10
    # Honoured: nothing is polled before the new interval has passed.
    assert await poll(bot, wait=False) == 0


def aware_(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def test_provider_down_while_polling_is_retried_until_expiry(bot: Harness) -> None:
    pid = await setup_apollo(bot)
    ticket = await ask_delete(bot)
    await click(bot, "U0ALICE", ticket.approval_id, APPROVAL_APPROVE)
    bot.idp.set_unavailable(True)
    for _ in range(3):
        assert await poll(bot) == 1
        assert (await row(bot, ticket.approval_id)).status == ApprovalStatus.CONFIRMING
    bot.idp.set_unavailable(False)
    # A slow provider (slower than AUTH0_TIMEOUT) is retried the same way.
    bot.idp.ciba.set_delay(bot.settings.auth0_timeout_seconds + 1)
    try:
        assert await poll(bot) == 1
    finally:
        bot.idp.ciba.set_delay(0)
    assert (await row(bot, ticket.approval_id)).status == ApprovalStatus.CONFIRMING
    bot.idp.set_unavailable(True)
    async with bot.deps.db.session() as session:
        await session.execute(
            update(Approval)
            .where(Approval.id == ticket.approval_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    swept = await bot.deps.approvals.sweep()
    await bot.deps.approvals.render_pending()
    assert swept.expired == 1
    final = await row(bot, ticket.approval_id)
    assert final.status == ApprovalStatus.EXPIRED
    assert await project_id(bot, "Apollo") == pid
    for user in ("U0ALICE", "U0BOB"):
        assert any(
            "Expired (nobody approved it in time)" in m["text"]
            for m in await dm_messages(bot, user)
        )
    # A grant arriving now changes nothing.
    bot.idp.set_unavailable(False)
    (pending,) = ciba_requests(bot, SUBS["U0ALICE"])
    bot.idp.ciba.approve(pending.auth_req_id)
    assert await poll(bot) == 0
    assert "executed" not in await audit_outcomes(bot, ticket.approval_id)


async def test_provider_down_when_approve_is_pressed(bot: Harness) -> None:
    await setup_apollo(bot)
    ticket = await ask_delete(bot)
    bot.idp.set_unavailable(True)
    told = await click(bot, "U0ALICE", ticket.approval_id, APPROVAL_APPROVE)
    assert "identity provider is unreachable" in told
    assert (await row(bot, ticket.approval_id)).status == ApprovalStatus.PENDING
    bot.idp.set_unavailable(False)
    told = await click(bot, "U0ALICE", ticket.approval_id, APPROVAL_APPROVE)
    assert "Confirm code" in told


async def test_half_way_reminder_is_sent_once(bot: Harness) -> None:
    await setup_apollo(bot, approver=True)
    ticket = await ask_delete(bot)
    async with bot.deps.db.session() as session:
        await session.execute(
            update(Approval)
            .where(Approval.id == ticket.approval_id)
            .values(remind_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    for _ in range(2):
        await bot.deps.approvals.sweep()
        await bot.deps.approvals.render_pending()
    for user in ("U0ALICE", "U0CAROL"):
        reminders = [m for m in await dm_messages(bot, user) if "Reminder" in m["text"]]
        assert len(reminders) == 1, reminders
        assert "<@U0BOB> is still waiting for your approval" in reminders[0]["text"]


async def test_restart_with_pending_approvals_resumes(bot: Harness) -> None:
    """A new app instance (another process, same database) carries on: it polls the
    request the first one started, and finishes an execution the first one claimed but
    never completed (it died), exactly once."""
    from bot.wiring import open_deps

    await setup_apollo(bot)
    assert "Created" in await command(bot, "U0ALICE", "project new Zeus")
    assert "viewer" in await command(bot, "U0ALICE", "project share Zeus @bob viewer")
    first = await ask_delete(bot)
    second = await ask_delete(bot, name="Zeus")
    await click(bot, "U0ALICE", first.approval_id, APPROVAL_APPROVE)
    for pending in ciba_requests(bot, SUBS["U0ALICE"]):
        bot.idp.ciba.approve(pending.auth_req_id)
    # The second one: granted, claimed by a process that died before running it.
    async with bot.deps.db.session() as session:
        await session.execute(
            update(Approval)
            .where(Approval.id == second.approval_id)
            .values(
                status=ApprovalStatus.EXECUTING.value,
                approver_slack_id="U0ALICE",
                approver_sub=SUBS["U0ALICE"],
                next_poll_at=datetime.now(UTC) - timedelta(seconds=1),
            )
        )
    async with open_deps(bot.settings) as restarted:
        await interval_passes(bot)
        assert await restarted.approvals.poll_round() == 1
        swept = await restarted.approvals.sweep()
        assert swept.resumed == 1
        await restarted.approvals.render_pending()
    for ticket in (first, second):
        assert (await row(bot, ticket.approval_id)).status == ApprovalStatus.EXECUTED
        assert (await audit_outcomes(bot, ticket.approval_id)).count("executed") == 1
    async with bot.deps.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Project)) == 0


async def test_requests_that_cannot_be_approved_are_refused(bot: Harness) -> None:
    await setup_apollo(bot)
    bob = await identity(bot, "U0BOB")
    with pytest.raises(ProjectNotFound):
        await bot.deps.approvals.request(
            bob, ApprovalAction.DELETE_PROJECT, {"project": "Nope"}, channel_id=None
        )
    assert "Created" in await command(bot, "U0ALICE", "project new Secret")
    with pytest.raises(ProjectNotFound):  # exists, but bob may not view it
        await bot.deps.approvals.request(
            bob, ApprovalAction.DELETE_PROJECT, {"project": "Secret"}, channel_id=None
        )
    with pytest.raises(ApprovalRefused) as nothing:
        await bot.deps.approvals.request(
            bob, ApprovalAction.DELETE_ALL_MY_PROJECTS, {}, channel_id=None
        )
    assert nothing.value.problem is ApprovalProblem.NOTHING_TO_DO
    with pytest.raises(ApprovalRefused) as unlinked:
        await bot.deps.approvals.request(
            bob,
            ApprovalAction.CHANGE_PROJECT_OWNER,
            {"project": "Apollo", "new_owner": "<@U0DAVE>"},
            channel_id=None,
        )
    assert unlinked.value.problem is ApprovalProblem.PERSON_NOT_LINKED
    assert await count(bot, Approval) == 0


async def test_owner_asking_confirms_on_own_device_for_all_projects(bot: Harness) -> None:
    await setup_apollo(bot, approver=True)
    assert "Created" in await command(bot, "U0ALICE", "project new Zeus")
    alice = await identity(bot, "U0ALICE")
    ticket = await bot.deps.approvals.request(
        alice, ApprovalAction.DELETE_ALL_MY_PROJECTS, {}, channel_id=None
    )
    # alice is an approver of both: only she is asked (carol approves Apollo only).
    assert ticket.approvers == ("U0ALICE",)
    assert "2 projects" in ticket.target
    await click(bot, "U0ALICE", ticket.approval_id, APPROVAL_APPROVE)
    (pending,) = ciba_requests(bot, SUBS["U0ALICE"])
    bot.idp.ciba.approve(pending.auth_req_id)
    await poll(bot)
    assert (await row(bot, ticket.approval_id)).status == ApprovalStatus.EXECUTED
    assert await count(bot, Project) == 0


async def test_change_owner_after_approval(bot: Harness) -> None:
    pid = await setup_apollo(bot, approver=True)
    bob = await identity(bot, "U0BOB")
    ticket = await bot.deps.approvals.request(
        bob,
        ApprovalAction.CHANGE_PROJECT_OWNER,
        {"project": "Apollo", "new_owner": "<@U0BOB>"},
        channel_id=None,
    )
    assert ticket.approvers == ("U0ALICE", "U0CAROL")
    alice_dm = await dm_with(bot, "U0ALICE", ticket.approval_id)
    assert alice_dm is not None
    await click(bot, "U0CAROL", ticket.approval_id, APPROVAL_APPROVE)
    waiting = await message_of(bot, "U0ALICE", str(alice_dm["ts"]))
    assert "<@U0CAROL> is confirming" in waiting["text"]
    (pending,) = ciba_requests(bot, SUBS["U0CAROL"])
    bot.idp.ciba.approve(pending.auth_req_id)
    await poll(bot)
    assert (await row(bot, ticket.approval_id)).status == ApprovalStatus.EXECUTED
    obj = f"project:{pid}"
    assert await bot.deps.authz.check("user:auth0|bob", "owner", obj)
    assert not await bot.deps.authz.check("user:auth0|alice", "owner", obj)
    assert await bot.deps.authz.check("user:auth0|alice", "editor", obj)
    # alice's DM says carol approved it.
    done = await message_of(bot, "U0ALICE", str(alice_dm["ts"]))
    assert "approved by <@U0CAROL>" in done["text"]


async def test_app_home_and_audit_command(bot: Harness) -> None:
    await setup_apollo(bot)
    ticket = await ask_delete(bot)
    for user, heading, who in (
        ("U0ALICE", "Waiting for your approval", "asked by <@U0BOB>"),
        ("U0BOB", "Your requests", "waiting for approval by <@U0ALICE>"),
    ):
        await bot.sandbox.open_home(user)
        await bot.ingress.drain()
        view = json.dumps(await bot.sandbox.wait_for_home_view(user))
        assert heading in view and f"*delete project Apollo*, {who}, expires" in view
    await click(bot, "U0ALICE", ticket.approval_id, APPROVAL_DENY)
    audit = await command(bot, "U0ALICE", "audit Apollo")
    assert "Audit log of Apollo" in audit and "requested" in audit and "denied" in audit
    assert "Only a project's owners" in await command(bot, "U0BOB", "audit Apollo")
    assert "don't own any project" in await command(bot, "U0BOB", "audit")
    assert "Audit log of your projects" in await command(bot, "U0ALICE", "audit")


# -- many approvals, two app instances, everything racing ------------------------------------

RACE_APPROVALS = 1000


async def seed_projects(bot: Harness, owner_sub: str, count: int) -> list[str]:
    """``count`` projects owned by ``owner_sub`` (rows and tuples written in bulk: the
    set-up, not what is under test)."""
    from authz.ports import TupleKey

    now = datetime.now(UTC)
    ids = [f"race{n:022d}" for n in range(count)]
    async with bot.deps.db.session() as session:
        session.add_all(
            Project(
                id=pid,
                team_id=TEAM,
                name=f"Race {n}",
                name_key=f"race {n}",
                created_by=owner_sub,
                created_at=now,
            )
            for n, pid in enumerate(ids)
        )
        await session.flush()
        session.add_all(
            ProjectMember(
                project_id=pid,
                sub=owner_sub,
                relation="owner",
                granted_by=owner_sub,
                granted_at=now,
            )
            for pid in ids
        )
    tuples = [
        key
        for pid in ids
        for key in (
            TupleKey(user=f"workspace:{TEAM}", relation="workspace", object=f"project:{pid}"),
            TupleKey(user=f"user:{owner_sub}", relation="owner", object=f"project:{pid}"),
        )
    ]
    for start in range(0, len(tuples), 100):
        await bot.deps.authz.write(tuples[start : start + 100])
    return ids


@pytest.mark.slow
async def test_a_thousand_approvals_racing_on_two_instances(bot: Harness) -> None:
    """Requests (some twice at once), double clicks and denials from both instances,
    grants, denials and silence on the devices, then polls and sweeps of both instances
    racing (with deadlines passing meanwhile): every approval ends exactly once, no
    action runs twice, none is lost."""
    from bot.wiring import open_deps

    await bot.link("U0ALICE", EMAILS["U0ALICE"])
    alice = await identity(bot, "U0ALICE")
    pids = await seed_projects(bot, alice.sub, RACE_APPROVALS)
    async with open_deps(bot.settings) as other:
        instances = [bot.deps.approvals, other.approvals]
        slots = asyncio.Semaphore(8)

        async def ask(n: int, pid: str) -> ApprovalTicket:
            async with slots:
                return await instances[n % 2].request(
                    alice, ApprovalAction.DELETE_PROJECT, {"project_id": pid}, channel_id=None
                )

        # Every tenth request is made twice at once (one per instance).
        asked = await asyncio.gather(
            *(ask(n, pid) for n, pid in enumerate(pids)),
            *(ask(n + 1, pid) for n, pid in enumerate(pids) if n % 10 == 0),
        )
        tickets = {t.approval_id for t in asked}
        assert len(tickets) == RACE_APPROVALS
        assert sum(t.created for t in asked) == RACE_APPROVALS
        ids = sorted(tickets)

        async def press(n: int, approval_id: str) -> None:
            async with slots:
                presses = [
                    instances[0].approve(TEAM, "U0ALICE", approval_id),
                    instances[1].approve(TEAM, "U0ALICE", approval_id),
                ]
                if n % 17 == 0:  # a denial racing the double click
                    presses.append(instances[n % 2].deny(TEAM, "U0ALICE", approval_id))
                await asyncio.gather(*presses)

        await asyncio.gather(*(press(n, a) for n, a in enumerate(ids)))
        # On the devices: most are approved, some denied, some never answered.
        for n, request in enumerate(bot.idp.ciba.requests(sub=alice.sub)):
            if n % 13 == 0:
                bot.idp.ciba.deny(request.auth_req_id)
            elif n % 11 != 0:
                bot.idp.ciba.approve(request.auth_req_id)
        starts = len(bot.idp.ciba.requests(sub=alice.sub))

        async def open_left() -> int:
            async with bot.deps.db.session() as session:
                return int(
                    await session.scalar(
                        select(func.count())
                        .select_from(Approval)
                        .where(Approval.status.in_(["pending", "confirming", "executing"]))
                    )
                    or 0
                )

        rounds = 0
        while await open_left() and rounds < 20:
            rounds += 1
            await interval_passes(bot)
            if rounds == 3:  # the unanswered ones reach their deadline mid-race
                async with bot.deps.db.session() as session:
                    await session.execute(
                        update(Approval).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
                    )
            await asyncio.gather(
                instances[0].poll_round(),
                instances[1].poll_round(),
                instances[0].sweep(),
                instances[1].sweep(),
                *(instances[n % 2].approve(TEAM, "U0ALICE", a) for n, a in enumerate(ids[:50])),
            )
        await asyncio.gather(instances[0].render_pending(1000), instances[1].render_pending(1000))
    assert await open_left() == 0, "an approval was lost"
    # One device confirmation per approval, none for those a denial reached first.
    denials_racing = len([n for n in range(RACE_APPROVALS) if n % 17 == 0])
    assert RACE_APPROVALS - denials_racing <= starts <= RACE_APPROVALS
    async with bot.deps.db.session() as session:
        statuses = dict(
            list(
                await session.execute(
                    select(Approval.status, func.count()).group_by(Approval.status)
                )
            )
        )
        executions = dict(
            list(
                await session.execute(
                    select(AuditEntry.subject, func.count())
                    .where(AuditEntry.outcome == "executed")
                    .group_by(AuditEntry.subject)
                )
            )
        )
        executed_ids = set(
            await session.scalars(
                select(Approval.id).where(Approval.status == ApprovalStatus.EXECUTED.value)
            )
        )
        projects_left = int(await session.scalar(select(func.count()).select_from(Project)) or 0)
    assert sum(statuses.values()) == RACE_APPROVALS
    assert set(statuses) <= {"executed", "denied", "expired"}, statuses
    assert max(executions.values()) == 1, "an action ran twice"
    assert set(executions) == executed_ids
    assert statuses.get("executed", 0) > RACE_APPROVALS // 2
    assert statuses.get("denied", 0) > 0 and statuses.get("expired", 0) > 0
    assert projects_left == RACE_APPROVALS - len(executed_ids)
