"""Approvals as the agent's destructive tools see them: a tool never acts, it asks for an
approval and tells the asker who must approve and by when."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bot.identity.model import Identity


class ApprovalAction(enum.StrEnum):
    """Actions that need a human approval (the policy is in ``bot/approvals/policy.py``)."""

    DELETE_PROJECT = "delete_project"
    DELETE_ALL_MY_PROJECTS = "delete_all_my_projects"
    CHANGE_PROJECT_OWNER = "change_project_owner"


@dataclass(frozen=True, kw_only=True)
class ApprovalTicket:
    """The approval a request created or found again (same idempotency key)."""

    approval_id: str
    action: ApprovalAction
    target: str  # what it acts on, for people ("project Apollo", "your 2 projects")
    approvers: tuple[str, ...]  # Slack user ids who may approve
    expires_at: datetime
    created: bool  # False when an identical pending request already existed


class ApprovalRequests(Protocol):
    async def request(
        self,
        asker: Identity,
        action: ApprovalAction,
        arguments: Mapping[str, Any],
        *,
        channel_id: str | None,
    ) -> ApprovalTicket:
        """Create (or find) the approval for ``action``; raise ``bot.agent.tool.ToolFailure``
        or a domain error when the asker may not even ask (e.g. cannot view the project)."""
        ...
