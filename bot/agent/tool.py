"""What a tool is: the contract every module in ``bot/agent/tools/`` fulfils.

A tool is one small module holding one :class:`Tool` subclass: a name and a description
for the model, a typed pydantic argument model (validated before the tool runs; its JSON
schema is what the model sees), the Auth0 RBAC permission it needs, whether it changes
anything (and with which verbs a person asks for that change) and whether it is
destructive. The runner (``bot/agent/runner.py``) checks the permission, validates the
arguments, runs the tool as the asker and writes the audit entry: a tool only decides and
does its one job, and calls services that make the FGA checks for the asker.

A tool returns a :class:`ToolResult` holding only what the asker may see. Its ``data`` is
what the model reads (marked as data in the prompt, never as instructions); its ``text``
is what a person reads when the tool ran from a plain command. A tool that cannot do its
job raises :class:`ToolFailure` (the model can explain it; the loop goes on) or lets a
domain error (``bot.errors.PmbotError``) through, which the runner turns into a failure.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from bot.identity.model import Identity

if TYPE_CHECKING:
    from bot.agent.services import AgentServices


class Permission(enum.StrEnum):
    """The Auth0 RBAC permissions of pmbot's API that tools need."""

    READ_PROJECTS = "read:projects"
    WRITE_PROJECTS = "write:projects"
    MANAGE_CALENDAR = "manage:calendar"
    MANAGE_PROJECTS = "manage:projects"  # destructive actions (they go to an approval)


class ToolArgs(BaseModel):
    """Base of every argument model: unknown fields are refused, strings are stripped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class FailureCode(enum.StrEnum):
    UNKNOWN_TOOL = "unknown_tool"
    INVALID_ARGUMENTS = "invalid_arguments"
    PERMISSION_MISSING = "permission_missing"  # no RBAC permission from the token
    NOT_ALLOWED = "not_allowed"  # FGA said no (or the object is not visible)
    NOT_FOUND = "not_found"
    UNAVAILABLE = "unavailable"  # a decision or a provider could not answer: fail closed
    RATE_LIMITED = "rate_limited"  # a provider answered 429
    CONNECTION_REQUIRED = "connection_required"  # Token Vault: connect the account first
    IN_THE_PAST = "in_the_past"
    CONFLICT = "conflict"
    NOT_REQUESTED = "not_requested"  # the asker's own words did not ask for it
    FAILED = "failed"


class ToolFailure(Exception):
    """A tool could not do its job. ``detail`` is safe to show the asker and the model
    (no secret, nothing the asker may not see)."""

    def __init__(self, code: FailureCode, detail: str = "") -> None:
        super().__init__(f"{code.value}: {detail}" if detail else code.value)
        self.code = code
        self.detail = detail


@dataclass(frozen=True, kw_only=True)
class ToolResult:
    """What a tool produced, all of it visible to the asker.

    ``data``: JSON-serialisable facts for the model. ``text``: the reply for a person
    (Slack mrkdwn). ``project_id``/``subject``: what the audit entry is about.
    ``link``: a URL to show (a calendar event, a posted message). ``approval_id``: set when
    the tool created (or found) an approval request instead of acting.
    """

    data: Mapping[str, Any]
    text: str
    project_id: str | None = None
    subject: str | None = None
    link: str | None = None
    approval_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class ToolContext:
    """Who the tool runs for and where. ``asker`` is the fresh identity (permissions
    refreshed); ``channel_id`` is where the request was made (None for the App Home)."""

    asker: Identity
    services: AgentServices
    channel_id: str | None
    now: datetime
    timezone: str = "UTC"
    request_id: str = ""
    extras: Mapping[str, Any] = field(default_factory=dict)
    # A request in words that only asks to look: no tool that changes anything runs.
    read_only: bool = False
    # The verb of change the asker's request begins with; only tools it names run (None
    # for plain commands, whose one tool the asker's words chose).
    change_verb: str | None = None


A = TypeVar("A", bound=ToolArgs)


class Tool(Generic[A]):
    """One tool. Subclasses set the class attributes and implement :meth:`run`."""

    name: ClassVar[str]
    description: ClassVar[str]
    Args: ClassVar[type[ToolArgs]]
    permission: ClassVar[Permission]
    destructive: ClassVar[bool] = False
    # Whether running it changes anything (fail closed: a tool changes unless it says not).
    changes: ClassVar[bool] = True
    # The verbs of change a request begins with that ask for this tool.
    verbs: ClassVar[frozenset[str]] = frozenset()

    async def run(self, ctx: ToolContext, args: A) -> ToolResult:
        raise NotImplementedError

    @classmethod
    def schema(cls) -> dict[str, Any]:
        """The OpenAI ``tools`` entry of this tool."""
        return {
            "type": "function",
            "function": {
                "name": cls.name,
                "description": cls.description,
                "parameters": cls.Args.model_json_schema(),
            },
        }
