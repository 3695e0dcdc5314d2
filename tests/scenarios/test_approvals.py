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
from tests.support import TEAM, Harness, eventually, running_bot

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


async def dm_with(bot: Harness, user: str, approval_id: str) -> dict[str, Any] | None:
    """The message of ``approval_id`` (its buttons carry the id) in ``user``'s DM."""
    for message in await dm_messages(bot, user):
        if approval_id in json.dumps(message.get("blocks") or []):
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
    found = await dm_with(bot, user, approval_id)
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
