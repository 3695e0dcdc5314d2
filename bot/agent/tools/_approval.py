"""The answer of a destructive tool: the approval it asked for, who must approve, by when."""

from __future__ import annotations

from bot import messages as words
from bot.agent.tool import ToolContext, ToolResult
from bot.agent.tools._common import local
from bot.approvals.ports import ApprovalTicket


def approval_result(ctx: ToolContext, ticket: ApprovalTicket) -> ToolResult:
    expires = local(ctx, ticket.expires_at)
    return ToolResult(
        data={
            "approval_id": ticket.approval_id,
            "action": ticket.action.value,
            "target": ticket.target,
            "approvers": list(ticket.approvers),
            "expires_at": expires.isoformat(),
            "created": ticket.created,
            "done": False,  # nothing was deleted: the approval decides
        },
        text=words.deletion_approval_text(
            ticket.target,
            ticket.approvers,
            words.slack_time(ticket.expires_at),
            created=ticket.created,
        ),
        subject=ticket.approval_id[:64],
        approval_id=ticket.approval_id,
    )
