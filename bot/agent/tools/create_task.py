"""create_task: a new open task of a project (the asker must be able to create tasks)."""

from __future__ import annotations

from pydantic import Field

from bot import messages as words
from bot.agent.tool import Permission, Tool, ToolArgs, ToolContext, ToolResult
from bot.agent.tools._common import (
    person_ref,
    require_person_named,
    require_project_named,
    task_data,
)


class CreateTaskArgs(ToolArgs):
    project: str = Field(min_length=1, max_length=80, description="The project's name.")
    title: str = Field(min_length=1, max_length=500, description="The task's title.")
    assignee: str | None = Field(
        default=None, max_length=100, description="A person of this workspace, as @name."
    )
    due: str | None = Field(
        default=None,
        max_length=20,
        description="YYYY-MM-DD, today, tomorrow or a weekday (the next one).",
    )


class CreateTask(Tool[CreateTaskArgs]):
    name = "create_task"
    description = "Add an open task to a project, optionally assigned and with a due date."
    Args = CreateTaskArgs
    permission = Permission.WRITE_PROJECTS
    verbs = frozenset({"create", "add"})

    async def run(self, ctx: ToolContext, args: CreateTaskArgs) -> ToolResult:
        require_project_named(ctx, args.project)
        assignee = person_ref(args.assignee) if args.assignee else None
        if assignee is not None:
            await require_person_named(ctx, assignee)
        added = await ctx.services.projects.add_task(
            ctx.asker, args.project, args.title, assignee, args.due
        )
        task = added.task
        pending = task.assignee is not None and task.assignee.pending
        return ToolResult(
            data={"created": task_data(task)},
            text=words.task_added_text(task.id, task.title, task.project, pending_assignee=pending),
            subject=f"task:{task.id}",
        )
