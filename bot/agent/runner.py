"""Runs one tool call as the asker, whoever asked for it (the model or a plain command).

In order: the tool is looked up (an unknown name is a failure, nothing runs); a tool that
changes something is refused when the request only asks to look, or asks for another kind
of change (``ToolContext.read_only``/``change_verb``); the Auth0 RBAC
permission it declares is checked on the asker's fresh identity (none when it could not be
refreshed); the arguments are validated against its pydantic model; then it runs, as the
asker, within ``AGENT_TOOL_TIMEOUT``. Domain, authorization and provider errors become a
:class:`ToolOutcome` failure whose words are safe for the asker and the model. Every call,
whatever its outcome, is appended to the audit log (who, tool, arguments, outcome, reason);
no token is ever among the arguments, and none reaches the outcome.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from authz.ports import AuthzError
from bot import messages as words
from bot.agent.registry import ToolRegistry
from bot.agent.tool import FailureCode, Tool, ToolContext, ToolFailure, ToolResult
from bot.audit import AuditKind
from bot.errors import (
    AmbiguousPerson,
    ChannelNotFound,
    DueDateInPast,
    NoEmail,
    NotAPerson,
    NotInChannel,
    PermissionDenied,
    PersonNotFound,
    PmbotError,
    ProjectActionDenied,
    ProjectNameTaken,
    ProjectNotFound,
    RelinkRequired,
    ServiceUnavailable,
    TaskActionDenied,
    TaskNotFound,
)
from bot.logs import escape_controls
from bot.providers.ports import ProviderRateLimited, ProviderRejected, ProviderUnavailable
from bot.vault.ports import Connection, ConnectionRequired

log = logging.getLogger(__name__)

MAX_RAW_ARGUMENTS = 20_000


@dataclass(frozen=True, kw_only=True)
class ToolOutcome:
    """What one call gave: a result, or a failure (``code`` and ``detail``, words for the
    asker). ``connection``/``missing_scopes``: set with ``CONNECTION_REQUIRED``."""

    tool: str
    arguments: dict[str, Any]
    result: ToolResult | None = None
    code: FailureCode | None = None
    detail: str = ""
    connection: Connection | None = None
    missing_scopes: frozenset[str] = field(default_factory=frozenset)
    destructive: bool = False

    @property
    def ok(self) -> bool:
        return self.result is not None

    @property
    def text(self) -> str:
        """What a person reads."""
        if self.result is not None:
            return self.result.text
        return words.tool_failure_text(self.code.value if self.code else "failed", self.detail)

    def for_model(self) -> dict[str, Any]:
        """What the model reads (marked as untrusted data by the loop)."""
        if self.result is not None:
            return {"tool": self.tool, "ok": True, "result": dict(self.result.data)}
        return {
            "tool": self.tool,
            "ok": False,
            "error": self.code.value if self.code else "failed",
            "message": self.text,
        }


def _failure(exc: BaseException) -> tuple[FailureCode, str]:
    """The failure code and the words for an error raised by a tool."""
    if isinstance(exc, ToolFailure):
        return exc.code, exc.detail
    if isinstance(exc, AuthzError):
        return FailureCode.UNAVAILABLE, words.user_message(exc)
    if isinstance(exc, RelinkRequired):
        return FailureCode.PERMISSION_MISSING, words.user_message(exc)
    if isinstance(exc, ProjectActionDenied | TaskActionDenied | NotInChannel):
        return FailureCode.NOT_ALLOWED, words.agent_refusal(exc)
    if isinstance(exc, PermissionDenied):
        return FailureCode.PERMISSION_MISSING, words.agent_refusal(exc)
    if isinstance(
        exc,
        ProjectNotFound
        | TaskNotFound
        | PersonNotFound
        | ChannelNotFound
        | NotAPerson
        | AmbiguousPerson
        | NoEmail,
    ):
        return FailureCode.NOT_FOUND, words.agent_refusal(exc)
    if isinstance(exc, DueDateInPast):
        return FailureCode.IN_THE_PAST, words.agent_refusal(exc)
    if isinstance(exc, ProjectNameTaken):
        return FailureCode.CONFLICT, words.agent_refusal(exc)
    if isinstance(exc, ServiceUnavailable):
        return FailureCode.UNAVAILABLE, words.user_message(exc)
    if isinstance(exc, PmbotError):
        return FailureCode.INVALID_ARGUMENTS, words.agent_refusal(exc)
    if isinstance(exc, ProviderRateLimited):
        return FailureCode.RATE_LIMITED, words.rate_limited_text(exc.provider)
    if isinstance(exc, ProviderUnavailable):
        return FailureCode.UNAVAILABLE, words.provider_unavailable_text(exc.provider)
    if isinstance(exc, ProviderRejected):
        code = FailureCode.NOT_ALLOWED if exc.status in (401, 403) else FailureCode.FAILED
        return code, words.provider_refused_text(exc.provider, exc.reason)
    return FailureCode.FAILED, ""


def _arguments(raw: Mapping[str, Any] | str | None) -> dict[str, Any] | None:
    """The arguments as an object: JSON text (as models send them) is parsed; anything
    that is not an object is None."""
    if raw is None:
        return {}
    if isinstance(raw, str):
        if len(raw) > MAX_RAW_ARGUMENTS:
            return None
        if not raw.strip():
            return {}
        try:
            parsed = json.loads(raw)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return dict(raw)


def _not_requested(ctx: ToolContext, tool: type[Tool[Any]]) -> str | None:
    """Why a tool that changes something may not run for this request (None: it may): the
    request only asks to look, or asks for another kind of change."""
    if not tool.changes:
        return None
    if ctx.read_only:
        return words.read_only_refusal_text(tool.name)
    if ctx.change_verb is not None and ctx.change_verb not in tool.verbs:
        return words.change_not_requested_text(tool.name, ctx.change_verb)
    return None


class ToolRunner:
    def __init__(self, *, registry: ToolRegistry, timeout: float) -> None:
        self.registry = registry
        self._timeout = timeout

    async def call(
        self, ctx: ToolContext, name: str, raw_arguments: Mapping[str, Any] | str | None
    ) -> ToolOutcome:
        outcome = await self._call(ctx, name, raw_arguments)
        await self._audit(ctx, outcome)
        return outcome

    async def _call(
        self, ctx: ToolContext, name: str, raw_arguments: Mapping[str, Any] | str | None
    ) -> ToolOutcome:
        tool = self.registry.get(name)
        arguments = _arguments(raw_arguments)
        shown = arguments if arguments is not None else {"unreadable": True}
        if tool is None:
            return ToolOutcome(
                tool=name[:64],
                arguments=shown,
                code=FailureCode.UNKNOWN_TOOL,
                detail=words.unknown_tool_text(name),
            )
        destructive = type(tool).destructive
        refused = _not_requested(ctx, type(tool))
        if refused is not None:
            return ToolOutcome(
                tool=name,
                arguments=shown,
                code=FailureCode.NOT_REQUESTED,
                detail=refused,
                destructive=destructive,
            )
        asker = ctx.asker
        permission = type(tool).permission.value
        if asker.needs_relink or permission not in asker.permissions:
            error: PmbotError = (
                RelinkRequired() if asker.needs_relink else PermissionDenied(permission)
            )
            return ToolOutcome(
                tool=name,
                arguments=shown,
                code=FailureCode.PERMISSION_MISSING,
                detail=words.agent_refusal(error),
                destructive=destructive,
            )
        if arguments is None:
            return ToolOutcome(
                tool=name,
                arguments=shown,
                code=FailureCode.INVALID_ARGUMENTS,
                detail=words.invalid_arguments_text(name, []),
                destructive=destructive,
            )
        try:
            args = type(tool).Args.model_validate(arguments)
        except ValidationError as exc:
            fields = sorted({str(e["loc"][0]) if e["loc"] else "arguments" for e in exc.errors()})
            return ToolOutcome(
                tool=name,
                arguments=shown,
                code=FailureCode.INVALID_ARGUMENTS,
                detail=words.invalid_arguments_text(name, fields),
                destructive=destructive,
            )
        validated = args.model_dump(mode="json")
        try:
            result = await asyncio.wait_for(tool.run(ctx, args), self._timeout)
        except TimeoutError:
            log.warning("tool %s timed out", name)
            return ToolOutcome(
                tool=name,
                arguments=validated,
                code=FailureCode.UNAVAILABLE,
                detail=words.tool_timeout_text(name),
                destructive=destructive,
            )
        except ConnectionRequired as exc:
            return ToolOutcome(
                tool=name,
                arguments=validated,
                code=FailureCode.CONNECTION_REQUIRED,
                detail=words.connect_prompt_text(
                    exc.connection.value, missing_scopes=bool(exc.missing_scopes)
                ),
                connection=exc.connection,
                missing_scopes=exc.missing_scopes,
                destructive=destructive,
            )
        except Exception as exc:  # every failure becomes an outcome
            if isinstance(exc, ProviderRejected) and exc.status == 401:
                # The provider no longer takes the cached token: the next call exchanges
                # the refresh token again instead of reusing it until it expires.
                for connection in Connection:
                    ctx.services.vault.invalidate(ctx.asker, connection)
            code, detail = _failure(exc)
            if code is FailureCode.FAILED and not isinstance(exc, ProviderRejected):
                log.exception("tool %s failed", name)
            return ToolOutcome(
                tool=name, arguments=validated, code=code, detail=detail, destructive=destructive
            )
        if destructive and result.approval_id is None:
            # A destructive tool only ever asks for an approval; one that did anything
            # else is a defect, reported as a failure rather than as done.
            log.error("destructive tool %s returned without an approval", name)
            return ToolOutcome(
                tool=name,
                arguments=validated,
                code=FailureCode.FAILED,
                destructive=destructive,
            )
        return ToolOutcome(tool=name, arguments=validated, result=result, destructive=destructive)

    async def _audit(self, ctx: ToolContext, outcome: ToolOutcome) -> None:
        result = outcome.result
        if result is not None:
            state = "approval_requested" if result.approval_id else "ok"
            reason = None
        else:
            state = outcome.code.value if outcome.code else "failed"
            reason = outcome.detail or None
        try:
            await ctx.services.audit.append(
                team_id=ctx.asker.team_id,
                kind=AuditKind.TOOL,
                action=outcome.tool,
                outcome=state,
                actor_sub=ctx.asker.sub,
                actor_slack_id=ctx.asker.slack_user_id,
                project_id=result.project_id if result else None,
                subject=result.subject[:64] if result and result.subject else None,
                arguments=outcome.arguments,
                reason=reason,
            )
        except Exception:  # a failed audit write does not lose the answer
            log.exception(
                "the audit entry of %s could not be written", escape_controls(outcome.tool)
            )
