"""The agent's tools by name, and the schemas the model is given: for a request that only
asks to look, only the tools that change nothing; for one that asks for a change, those and
the tools that make that kind of change."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bot.agent.tool import Tool
from bot.agent.tools.create_task import CreateTask
from bot.agent.tools.delete_all_my_projects import DeleteAllMyProjects
from bot.agent.tools.delete_project import DeleteProject
from bot.agent.tools.find_free_slot import FindFreeSlot
from bot.agent.tools.list_my_events import ListMyEvents
from bot.agent.tools.list_projects import ListProjects
from bot.agent.tools.list_tasks import ListTasks
from bot.agent.tools.post_as_me import PostAsMe
from bot.agent.tools.project_status import ProjectStatus
from bot.agent.tools.schedule_meeting import ScheduleMeeting
from bot.agent.tools.search_docs import SearchDocs
from bot.agent.tools.update_task import UpdateTask

TOOLS: tuple[type[Tool[Any]], ...] = (
    SearchDocs,
    ListProjects,
    ProjectStatus,
    ListTasks,
    CreateTask,
    UpdateTask,
    ListMyEvents,
    FindFreeSlot,
    ScheduleMeeting,
    PostAsMe,
    DeleteProject,
    DeleteAllMyProjects,
)


#: The tools that change nothing (their results are data the asker may see).
READ_ONLY_TOOLS = frozenset(t.name for t in TOOLS if not t.changes)


class ToolRegistry:
    def __init__(self, tools: Iterable[type[Tool[Any]]] = TOOLS) -> None:
        self._tools: dict[str, Tool[Any]] = {}
        for cls in tools:
            if cls.name in self._tools:
                raise ValueError(f"two tools are called {cls.name}")
            self._tools[cls.name] = cls()

    def get(self, name: str) -> Tool[Any] | None:
        return self._tools.get(name)

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def schemas(self, *, read_only: bool = False, verb: str | None = None) -> list[dict[str, Any]]:
        """The OpenAI ``tools`` parameter: each offered tool's name, description and JSON
        schema. ``read_only``: only tools that change nothing; ``verb``: those, and the
        tools a request beginning with that verb asks for."""
        return [
            type(tool).schema() for tool in self._tools.values() if offered(tool, read_only, verb)
        ]


def offered(tool: Tool[Any], read_only: bool, verb: str | None) -> bool:
    cls = type(tool)
    if not cls.changes:
        return True
    if read_only:
        return False
    return verb is None or verb in cls.verbs
