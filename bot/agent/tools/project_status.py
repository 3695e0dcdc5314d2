"""project_status: open and done counts, overdue tasks and what is due next."""

from __future__ import annotations

from pydantic import Field

from bot import messages as words
from bot.agent.tool import Permission, Tool, ToolArgs, ToolContext, ToolResult
from bot.agent.tools._common import task_data, task_line


class ProjectStatusArgs(ToolArgs):
    project: str = Field(min_length=1, max_length=80, description="The project's name.")


class ProjectStatus(Tool[ProjectStatusArgs]):
    name = "project_status"
    description = "A project's open and done task counts, overdue tasks and next due tasks."
    Args = ProjectStatusArgs
    permission = Permission.READ_PROJECTS
    changes = False

    async def run(self, ctx: ToolContext, args: ProjectStatusArgs) -> ToolResult:
        found = await ctx.services.projects.status(ctx.asker, args.project)
        summary = words.status_summary(found.open, found.done, found.overdue_count)
        parts: list[str] = []
        if found.overdue:
            lines = "\n".join(task_line(t, with_project=False) for t in found.overdue)
            parts.append(f"*{words.STATUS_OVERDUE}*\n{lines}")
        if found.next_due:
            lines = "\n".join(task_line(t, with_project=False) for t in found.next_due)
            parts.append(f"*{words.STATUS_NEXT}*\n{lines}")
        if not parts:
            parts.append(words.STATUS_NOTHING_DUE)
        return ToolResult(
            data={
                "project": found.project,
                "open": found.open,
                "done": found.done,
                "overdue_count": found.overdue_count,
                "overdue": [task_data(t) for t in found.overdue],
                "next_due": [task_data(t) for t in found.next_due],
            },
            text=words.status_text(found.project, summary, parts),
            subject=found.project,
        )
