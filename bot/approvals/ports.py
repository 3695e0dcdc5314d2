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


# -- CIBA (Client-Initiated Backchannel Authentication) -------------------------------------


@dataclass(frozen=True, kw_only=True)
class CibaStarted:
    """``/bc-authorize`` accepted the request."""

    auth_req_id: str
    expires_in: int  # seconds
    interval: int  # seconds between polls (5 when the provider does not say)


class CibaPollState(enum.StrEnum):
    PENDING = "authorization_pending"
    SLOW_DOWN = "slow_down"
    DENIED = "access_denied"
    EXPIRED = "expired_token"
    GRANTED = "granted"


@dataclass(frozen=True, kw_only=True)
class CibaPoll:
    """One poll of the token endpoint. ``sub`` is the verified subject of the granted ID
    token (``GRANTED`` only); nothing else of the tokens is kept."""

    state: CibaPollState
    sub: str | None = None


class CibaClient(Protocol):
    async def start(
        self, *, sub: str, binding_message: str, requested_expiry: int, scope: str = "openid"
    ) -> CibaStarted:
        """``/bc-authorize`` for the user ``sub`` (``login_hint`` iss_sub JSON).
        ``bot.errors.ServiceUnavailable`` when the provider cannot be reached."""
        ...

    async def poll(self, auth_req_id: str) -> CibaPoll:
        """The CIBA grant at the token endpoint. ``ServiceUnavailable`` when the provider
        cannot be reached (the caller retries until the approval expires)."""
        ...
