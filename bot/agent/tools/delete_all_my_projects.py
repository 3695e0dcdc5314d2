"""delete_all_my_projects: never deletes. It asks for an approval and tells the asker who
must approve and by when. A request in words must itself ask for all the asker's projects
to be deleted."""

from __future__ import annotations

from bot import messages as words
from bot.agent.parser import asks_to_delete_all
from bot.agent.tool import (
    FailureCode,
    Permission,
    Tool,
    ToolArgs,
    ToolContext,
    ToolFailure,
    ToolResult,
)
from bot.agent.tools._approval import approval_result
from bot.approvals.ports import ApprovalAction


class DeleteAllMyProjectsArgs(ToolArgs):
    pass


class DeleteAllMyProjects(Tool[DeleteAllMyProjectsArgs]):
    name = "delete_all_my_projects"
    description = (
        "Ask for every project the asker owns to be deleted. Nothing is deleted: an "
        "approval request goes to the people who must approve it."
    )
    Args = DeleteAllMyProjectsArgs
    permission = Permission.MANAGE_PROJECTS
    destructive = True
    verbs = frozenset({"delete", "remove"})

    async def run(self, ctx: ToolContext, args: DeleteAllMyProjectsArgs) -> ToolResult:
        request = ctx.extras.get("request_text")
        if request is not None and not asks_to_delete_all(str(request)):
            raise ToolFailure(FailureCode.NOT_REQUESTED, words.DELETE_ALL_NOT_REQUESTED)
        ticket = await ctx.services.approvals.request(
            ctx.asker, ApprovalAction.DELETE_ALL_MY_PROJECTS, {}, channel_id=ctx.channel_id
        )
        return approval_result(ctx, ticket)
