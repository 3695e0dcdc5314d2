"""list_projects: the projects of this workspace the asker may view, with their role."""

from __future__ import annotations

from bot import messages as words
from bot.agent.tool import Permission, Tool, ToolArgs, ToolContext, ToolResult


class ListProjectsArgs(ToolArgs):
    pass


class ListProjects(Tool[ListProjectsArgs]):
    name = "list_projects"
    description = "List the projects the asker may view, with the asker's role on each."
    Args = ListProjectsArgs
    permission = Permission.READ_PROJECTS
    changes = False

    async def run(self, ctx: ToolContext, args: ListProjectsArgs) -> ToolResult:
        found = await ctx.services.projects.list_projects(ctx.asker)
        lines = [words.project_line(p.name, p.role.value, p.approver) for p in found.projects]
        return ToolResult(
            data={
                "projects": [
                    {"name": p.name, "role": p.role.value, "approver": p.approver}
                    for p in found.projects
                ],
                "incomplete": found.incomplete,
            },
            text=words.projects_text(lines),
        )
