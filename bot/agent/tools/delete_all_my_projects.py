"""delete_all_my_projects: never deletes. It asks for an approval and tells the asker who
must approve and by when."""

from __future__ import annotations

from bot.agent.tool import Permission, Tool, ToolArgs, ToolContext, ToolResult
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

    async def run(self, ctx: ToolContext, args: DeleteAllMyProjectsArgs) -> ToolResult:
        ticket = await ctx.services.approvals.request(
            ctx.asker, ApprovalAction.DELETE_ALL_MY_PROJECTS, {}, channel_id=ctx.channel_id
        )
        return approval_result(ctx, ticket)
