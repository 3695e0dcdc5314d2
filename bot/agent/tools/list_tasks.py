"""list_tasks: the open tasks the asker may view (one project's, or all), or only theirs."""

from __future__ import annotations

from pydantic import Field

from bot import messages as words
from bot.agent.tool import Permission, Tool, ToolArgs, ToolContext, ToolResult
from bot.agent.tools._common import task_data, task_line


class ListTasksArgs(ToolArgs):
    project: str | None = Field(
        default=None, min_length=1, max_length=80, description="A project's name; all if none."
    )
    mine: bool = Field(default=False, description="Only the tasks assigned to the asker.")


class ListTasks(Tool[ListTasksArgs]):
    name = "list_tasks"
    description = "List the open tasks the asker may view, of one project or of all."
    Args = ListTasksArgs
    permission = Permission.READ_PROJECTS
    changes = False

    async def run(self, ctx: ToolContext, args: ListTasksArgs) -> ToolResult:
        found = await ctx.services.projects.tasks(ctx.asker, args.project, mine=args.mine)
        heading = words.tasks_heading(found.project, mine=found.mine)
        lines = [task_line(t, with_project=found.project is None) for t in found.tasks]
        notes = []
        if found.truncated:
            notes.append(words.TASKS_TRUNCATED.format(shown=len(found.tasks)))
        if found.incomplete:
            notes.append(words.SOME_NOT_CHECKED)
        return ToolResult(
            data={
                "project": found.project,
                "tasks": [task_data(t) for t in found.tasks],
                "truncated": found.truncated,
            },
            text="\n".join([words.tasks_text(heading, lines), *notes]),
            subject=found.project,
        )
