"""Approvals in Slack: the approver's DM and the requester's message (normal messages,
posted once and then updated in place with ``chat.update`` from the stored channel and
ts), the reminder, and the Approve / Deny / Cancel / Ask again buttons.

Handlers ack, call the approvals service, and tell the clicker what happened in a message
only they see; the service decides everything (a click by somebody who may not act is
refused and changes nothing).
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot import messages as words
from bot.approvals.views import ApprovalView, Click, Shown
from bot.errors import PmbotError
from bot.messages import user_message
from bot.wiring import Deps
from handlers import blocks
from handlers.gate import identity_of, link_gate

log = logging.getLogger(__name__)


class SlackApprovalNotifier:
    """:class:`bot.approvals.views.ApprovalNotifier` on the Slack Web API."""

    def __init__(self, slack: AsyncWebClient) -> None:
        self._slack = slack

    async def _dm(self, user_id: str) -> str:
        opened = await self._slack.conversations_open(users=user_id)
        return str(opened["channel"]["id"])

    async def _put(
        self, channel: str | None, ts: str | None, user_id: str, text: str, built: list[Any]
    ) -> tuple[str, str] | None:
        """Update the stored message, or post it (returning where) when there is none."""
        if channel and ts:
            await self._slack.chat_update(channel=channel, ts=ts, text=text, blocks=built)
            return None
        posted = await self._slack.chat_postMessage(
            channel=await self._dm(user_id), text=text, blocks=built
        )
        return str(posted["channel"]), str(posted["ts"])

    async def show(self, view: ApprovalView) -> Shown:
        status = view.status.value
        approver_ids = [a.slack_user_id for a in view.approvers]
        text = words.requester_text(
            action=view.action.value,
            target=view.target,
            approvers=approver_ids,
            expires_at=view.expires_at,
            status=status,
            confirming=view.confirming_slack_id,
            decided_by=view.decided_by_slack_id,
            reason=view.reason,
        )
        requester = await self._put(
            view.requester_channel,
            view.requester_ts,
            view.requester_slack_id,
            text,
            blocks.requester_blocks(text, view.approval_id, status=status),
        )
        posted: dict[str, tuple[str, str]] = {}
        reminded: list[str] = []
        for approver in view.approvers:
            dm_text = words.approver_dm_text(
                action=view.action.value,
                target=view.target,
                requester=view.requester_slack_id,
                expires_at=view.expires_at,
                status=status,
                viewer=approver.slack_user_id,
                confirming=view.confirming_slack_id,
                code=view.binding_code,
                decided_by=view.decided_by_slack_id,
                reason=view.reason,
            )
            where = await self._put(
                approver.dm_channel,
                approver.dm_ts,
                approver.slack_user_id,
                dm_text,
                blocks.approver_dm_blocks(dm_text, view.approval_id, status=status),
            )
            if where is not None:
                posted[approver.slack_user_id] = where
            if view.remind:
                channel = approver.dm_channel or (where[0] if where else None)
                reminder = words.approval_reminder_text(
                    action=view.action.value,
                    target=view.target,
                    requester=view.requester_slack_id,
                    expires_at=view.expires_at,
                )
                await self._slack.chat_postMessage(
                    channel=channel or await self._dm(approver.slack_user_id),
                    text=reminder,
                    thread_ts=approver.dm_ts or (where[1] if where else None),
                    reply_broadcast=True,
                )
                reminded.append(approver.slack_user_id)
        return Shown(requester=requester, approvers=posted, reminded=tuple(reminded))


def _clicked(body: dict[str, Any]) -> tuple[str, str, str]:
    user = body.get("user") or {}
    team = str((body.get("team") or {}).get("id") or user.get("team_id") or "")
    value = str((body.get("actions") or [{}])[0].get("value") or "")
    return team, str(user.get("id") or ""), value


async def _tell(respond: AsyncRespond, click: Click) -> None:
    text = words.approval_click_text(
        click.outcome.value, code=click.binding_code, who=click.confirming_slack_id
    )
    await respond(text=text, response_type="ephemeral", replace_original=False)


def register(app: AsyncApp, deps: Deps) -> None:
    @app.action(blocks.APPROVAL_APPROVE)
    async def on_approve(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        team_id, user_id, approval_id = _clicked(body)
        try:
            click = await deps.approvals.approve(team_id, user_id, approval_id)
        except PmbotError as exc:
            await respond(text=user_message(exc), response_type="ephemeral", replace_original=False)
            return
        await _tell(respond, click)

    @app.action(blocks.APPROVAL_DENY)
    async def on_deny(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        team_id, user_id, approval_id = _clicked(body)
        await _tell(respond, await deps.approvals.deny(team_id, user_id, approval_id))

    @app.action(blocks.APPROVAL_CANCEL)
    async def on_cancel(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        team_id, user_id, approval_id = _clicked(body)
        await _tell(respond, await deps.approvals.cancel(team_id, user_id, approval_id))

    @app.action(blocks.APPROVAL_ASK_AGAIN, middleware=[link_gate(deps)])
    async def on_ask_again(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
    ) -> None:
        await ack()
        _team_id, _user_id, approval_id = _clicked(body)
        try:
            ticket = await deps.approvals.ask_again(identity_of(context), approval_id)
        except PmbotError as exc:
            await respond(text=user_message(exc), response_type="ephemeral", replace_original=False)
            return
        await respond(
            text=words.approval_requested_text(
                ticket.target, ticket.approvers, ticket.expires_at, created=ticket.created
            ),
            response_type="ephemeral",
            replace_original=False,
        )
