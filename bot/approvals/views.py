"""What the Slack side of approvals is given to show (no wording here: ``bot.messages``
words it, ``handlers.blocks`` arranges it), and the port it is shown through."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from bot.approvals.models import ApprovalStatus
from bot.approvals.ports import ApprovalAction


@dataclass(frozen=True, kw_only=True)
class ApproverView:
    slack_user_id: str
    dm_channel: str | None
    dm_ts: str | None


@dataclass(frozen=True, kw_only=True)
class ApprovalView:
    """One approval as people see it, at one version."""

    approval_id: str
    team_id: str
    action: ApprovalAction
    target: str
    status: ApprovalStatus
    reason: str | None
    requester_slack_id: str
    requester_channel: str | None
    requester_ts: str | None
    approvers: tuple[ApproverView, ...]
    expires_at: datetime
    confirming_slack_id: str | None  # the approver who pressed Approve
    binding_code: str | None
    decided_by_slack_id: str | None
    remind: bool = False  # send the one reminder to the approvers now


@dataclass(frozen=True, kw_only=True)
class Shown:
    """Where the messages of an approval are (stored for later ``chat.update``)."""

    requester: tuple[str, str] | None = None  # (channel, ts)
    approvers: dict[str, tuple[str, str]] = field(default_factory=dict)  # slack id -> (ch, ts)
    reminded: tuple[str, ...] = ()


class ApprovalNotifier(Protocol):
    async def show(self, view: ApprovalView) -> Shown:
        """Post the messages that do not exist yet and update the others in place (and
        send the reminder when ``view.remind``). Raises when Slack cannot be reached
        after storing nothing: the render pass tries again later."""
        ...


class ClickOutcome(enum.StrEnum):
    """What a click on Approve, Deny or Cancel did (or why it did nothing)."""

    CONFIRMING = "confirming"  # Approve: CIBA started on the approver's device
    DENIED = "denied"
    CANCELLED = "cancelled"
    NOT_FOUND = "not_found"
    NOT_APPROVER = "not_approver"  # refused: changes nothing
    NOT_REQUESTER = "not_requester"  # refused: changes nothing
    ALREADY_CONFIRMING = "already_confirming"
    ALREADY_FINISHED = "already_finished"
    EXPIRED = "expired"
    PROVIDER_UNAVAILABLE = "provider_unavailable"  # CIBA could not be started; try again


@dataclass(frozen=True, kw_only=True)
class Click:
    outcome: ClickOutcome
    status: ApprovalStatus | None = None
    binding_code: str | None = None
    confirming_slack_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class PendingItem:
    approval_id: str
    action: ApprovalAction
    target: str
    status: ApprovalStatus
    requester_slack_id: str
    expires_at: datetime
    approver_slack_ids: tuple[str, ...] = ()  # filled in for the requester's own requests


@dataclass(frozen=True, kw_only=True)
class PendingApprovals:
    """For the App Home: what waits for this person, and what they asked for."""

    to_approve: tuple[PendingItem, ...]
    requested: tuple[PendingItem, ...]
