"""delete_project: never deletes. It asks for an approval (the project's owners decide)
and tells the asker who must approve and by when. The project must be one the asker named."""

from __future__ import annotations

from pydantic import Field

from bot.agent.tool import Permission, Tool, ToolArgs, ToolContext, ToolResult
from bot.agent.tools._approval import approval_result
from bot.agent.tools._common import require_project_named
from bot.approvals.ports import ApprovalAction


class DeleteProjectArgs(ToolArgs):
    project: str = Field(min_length=1, max_length=80, description="The project's name.")


class DeleteProject(Tool[DeleteProjectArgs]):
    name = "delete_project"
    description = (
        "Ask for a project to be deleted. Nothing is deleted: an approval request goes to "
        "the people who must approve it."
    )
    Args = DeleteProjectArgs
    permission = Permission.MANAGE_PROJECTS
    destructive = True
    verbs = frozenset({"delete", "remove"})

    async def run(self, ctx: ToolContext, args: DeleteProjectArgs) -> ToolResult:
        require_project_named(ctx, args.project)
        ticket = await ctx.services.approvals.request(
            ctx.asker,
            ApprovalAction.DELETE_PROJECT,
            {"project": args.project},
            channel_id=ctx.channel_id,
        )
        return approval_result(ctx, ticket)
