"""update_task: change a task's title, assignee, due date or status (as its editor)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from bot import messages as words
from bot.agent.tool import Permission, Tool, ToolArgs, ToolContext, ToolResult
from bot.agent.tools._common import (
    person_ref,
    require_person_named,
    require_task_named,
    task_data,
)


class UpdateTaskArgs(ToolArgs):
    task_id: int = Field(ge=1, le=999_999_999, description="The task's number.")
    title: str | None = Field(default=None, min_length=1, max_length=500)
    assignee: str | None = Field(
        default=None, max_length=100, description="A person of this workspace, as @name."
    )
    due: str | None = Field(
        default=None, max_length=20, description="YYYY-MM-DD, today, tomorrow or a weekday."
    )
    status: Literal["open", "done"] | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> UpdateTaskArgs:
        if all(v is None for v in (self.title, self.assignee, self.due, self.status)):
            raise ValueError("nothing to change")
        return self


class UpdateTask(Tool[UpdateTaskArgs]):
    name = "update_task"
    description = "Change a task's title, assignee, due date or status (open or done)."
    Args = UpdateTaskArgs
    permission = Permission.WRITE_PROJECTS
    verbs = frozenset(
        {
            "update",
            "mark",
            "complete",
            "close",
            "reopen",
            "assign",
            "reassign",
            "rename",
            "move",
            "set",
        }
    )

    async def run(self, ctx: ToolContext, args: UpdateTaskArgs) -> ToolResult:
        await require_task_named(ctx, args.task_id)
        assignee = person_ref(args.assignee) if args.assignee else None
        if assignee is not None:
            await require_person_named(ctx, assignee)
        updated = await ctx.services.projects.update_task(
            ctx.asker,
            args.task_id,
            title=args.title,
            assignee_ref=assignee,
            due_text=args.due,
            status=args.status,
        )
        task = updated.task
        return ToolResult(
            data={"task": task_data(task), "changed": list(updated.changed)},
            text=words.task_updated_text(task.id, task.title, updated.changed),
            subject=f"task:{task.id}",
        )
