"""Approvals: a sensitive action waits for a human who confirms it on their device (CIBA).

Life of an approval (every arrow a conditional ``UPDATE ... WHERE status = <expected>``,
so of racing clicks, polls, sweeps and replicas exactly one makes each transition; each
transition is appended to the audit log in the same transaction)::

    PENDING --Approve (approver)--> CONFIRMING --grant (approver's sub)--> EXECUTING
       |  \\--Deny / Cancel / deadline-------------------+                   |
       |                                                  v                   +--> EXECUTED
       +-----------------------------------------> DENIED, CANCELLED,         +--> FAILED
                 CONFIRMING --access_denied / expired_token / another sub / deadline-^

* ``request`` creates the row (or finds the open one with the same idempotency key).
* ``approve`` claims PENDING -> CONFIRMING, then starts CIBA for that approver
  (``/bc-authorize``: ``login_hint`` iss_sub JSON, a ``binding_message`` holding a short
  code the DM shows too, ``requested_expiry`` within the approval's deadline). Slack alone
  never approves: only the CIBA grant does. Should CIBA not start, it goes back to PENDING.
* ``poll_round`` claims due CONFIRMING rows (``next_poll_at``; PostgreSQL:
  ``FOR UPDATE SKIP LOCKED``) by moving their ``next_poll_at``, polls them with bounded
  concurrency, honours ``interval`` and ``slow_down`` (interval + 5 s), retries an
  unreachable provider until the deadline, and on a grant whose ``sub`` is the approver's
  runs the action: CONFIRMING -> EXECUTING (a claim with a lease, only before the
  deadline), then the action's own transaction also moves EXECUTING -> EXECUTED (the
  change and "executed" commit together). A failure records FAILED with the reason; a
  process that dies mid-way leaves EXECUTING whose lease the sweep re-claims (the action
  did not commit, so running it then is still the first time).
* ``sweep`` (set-based): expires open approvals past their deadline, marks the one
  reminder due half-way to expiry, re-claims executions whose lease ran out.
* Slack messages are a projection: each transition sets ``dirty``; ``render`` (right after
  the transition, and from the scheduler for anything left) posts or ``chat.update``s the
  stored DM and requester message, and clears ``dirty`` only if no change came in between.

All state is in the database: a restarted process (or another replica) carries on.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from authz.ids import fga_user
from authz.ports import Authorizer, Consistency
from bot import messages as words
from bot.approvals import policy
from bot.approvals.actions import Executor
from bot.approvals.ciba import CibaRejected
from bot.approvals.models import (
    EXPIRABLE,
    Approval,
    ApprovalApprover,
    ApprovalStatus,
    Reminder,
)
from bot.approvals.ports import (
    ApprovalAction,
    ApprovalTicket,
    CibaClient,
    CibaPollState,
)
from bot.approvals.views import (
    ApprovalNotifier,
    ApprovalView,
    ApproverView,
    Click,
    ClickOutcome,
    PendingApprovals,
    PendingItem,
)
from bot.audit import AuditEntry, AuditKind, AuditLog, AuditRecord
from bot.errors import (
    ApprovalProblem,
    ApprovalRefused,
    ApprovedActionInvalid,
    AuditNotAllowed,
    ProjectNotFound,
    ServiceUnavailable,
)
from bot.identity.model import Identity, aware
from bot.projects.models import Project
from bot.projects.values import name_key, project_object
from bot.storage.db import Database
from bot.storage.models import SlackLink

log = logging.getLogger(__name__)

# Approval ids are ``secrets.token_hex(13)``: anything else from a button is refused before
# it reaches a query.
_APPROVAL_ID = re.compile(r"[0-9a-f]{26}")
_SLACK_USER = re.compile(r"<@([A-Z0-9]{2,32})(?:\|[^>]*)?>|([A-Z0-9]{2,32})")
# Auth0 accepts only these characters in a binding message (and at most 64 of them).
_BINDING_REFUSED = re.compile(r"[^A-Za-z0-9\s+\-_.,:#]")
BINDING_MAX = 64
_CODE_LETTERS = "ACDEFHJKLMNPRTUVWXY"
_CODE_DIGITS = "2345679"
SLOW_DOWN_STEP = 5  # seconds added to the interval on slow_down (RFC 8628 / CIBA)
DEFAULT_INTERVAL = 5
EXECUTION_LEASE = timedelta(seconds=60)
RENDER_LEASE = timedelta(seconds=30)
MIN_CIBA_SECONDS = 10  # less time than this left: the approval is as good as expired
POLL_BATCH = 1000


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_code() -> str:
    """A short code like ``K4X-92`` (letters and digits that are not easily confused)."""
    letters = "".join(secrets.choice(_CODE_LETTERS) for _ in range(3))
    digits = "".join(secrets.choice(_CODE_DIGITS) for _ in range(2))
    return f"{letters}-{digits}"


def binding_message(code: str, summary: str) -> str:
    """What the approver's device shows: the code first (always whole), then what is
    approved, in the characters Auth0 accepts, at most 64 of them."""
    text = _BINDING_REFUSED.sub(" ", f"{code} {summary}")
    text = " ".join(text.split())
    return text[:BINDING_MAX].rstrip()


def valid_approval_id(value: str) -> bool:
    return bool(_APPROVAL_ID.fullmatch(value))


def idempotency_key(team_id: str, sub: str, action: ApprovalAction, args: Mapping[str, Any]) -> str:
    canonical = json.dumps([team_id, sub, action.value, dict(args)], sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


class ApprovalsService:
    """Implements :class:`bot.approvals.ports.ApprovalRequests` and everything after the
    request (see the module docstring)."""

    def __init__(
        self,
        *,
        db: Database,
        authz: Authorizer,
        audit: AuditLog,
        ciba: CibaClient,
        notifier: ApprovalNotifier,
        executor: Executor,
        ttl: timedelta,
        poll_concurrency: int = 20,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = db
        self._authz = authz
        self._audit = audit
        self._ciba = ciba
        self._notifier = notifier
        self._executor = executor
        self._ttl = ttl
        self._poll_slots = asyncio.Semaphore(max(1, poll_concurrency))
        self._clock = clock

    @property
    def ttl(self) -> timedelta:
        return self._ttl

    # -- request ---------------------------------------------------------------------------

    async def request(
        self,
        asker: Identity,
        action: ApprovalAction,
        arguments: Mapping[str, Any],
        *,
        channel_id: str | None,
    ) -> ApprovalTicket:
        """Create (or find) the approval for ``action``.

        Arguments: ``delete_project``: ``project`` (name) or ``project_id``;
        ``delete_all_my_projects``: none; ``change_project_owner``: ``project`` or
        ``project_id``, and ``new_owner`` (a Slack user id or ``<@U…>``). A project the
        asker may not view is :class:`ProjectNotFound`; nobody to approve, nothing to
        do, an unlinked new owner: :class:`ApprovalRefused`. The requester's message is
        posted in their DM with the bot (a normal message, updated in place later; a
        channel would show the request to everybody in it), whatever ``channel_id``."""
        if not policy.needs_approval(action):
            raise ApprovalRefused(ApprovalProblem.BAD_ARGUMENTS)
        normalised, target, project_ids = await self._resolve(asker, action, arguments)
        eligible = await policy.eligible_approvers(
            self._authz, self._db, asker.team_id, project_ids
        )
        approvers = policy.choose_approvers(asker.sub, eligible)
        if not approvers:
            raise ApprovalRefused(ApprovalProblem.NO_APPROVER, target)
        key = idempotency_key(asker.team_id, asker.sub, action, normalised)
        now = self._clock()
        found = await self._open_with_key(key)
        created = False
        if found is None:
            approval_id = secrets.token_hex(13)
            try:
                async with self._db.session() as session:
                    session.add(
                        Approval(
                            id=approval_id,
                            team_id=asker.team_id,
                            requester_slack_id=asker.slack_user_id,
                            requester_sub=asker.sub,
                            action=action.value,
                            arguments=json.dumps(normalised, sort_keys=True),
                            target=target[:300],
                            project_ids=json.dumps(project_ids),
                            status=ApprovalStatus.PENDING.value,
                            created_at=now,
                            expires_at=now + self._ttl,
                            remind_at=now + self._ttl / 2,
                            reminder=Reminder.NOT_YET.value,
                            idempotency_key=key,
                            version=1,
                            updated_at=now,
                            dirty=True,
                            rendered_version=0,
                        )
                    )
                    await session.flush()
                    for approver in approvers:
                        session.add(
                            ApprovalApprover(
                                approval_id=approval_id,
                                slack_user_id=approver.slack_user_id,
                                sub=approver.sub,
                            )
                        )
                    await self._record(
                        session,
                        team_id=asker.team_id,
                        approval_id=approval_id,
                        action=action.value,
                        project_ids=project_ids,
                        outcome="requested",
                        actor_sub=asker.sub,
                        actor_slack_id=asker.slack_user_id,
                        arguments={
                            **normalised,
                            "approvers": [a.slack_user_id for a in approvers],
                        },
                        reason=None,
                        at=now,
                    )
                created = True
            except IntegrityError:
                # An identical request committed first: that one is the approval.
                pass
            found = await self._open_with_key(key)
        if found is None:  # pragma: no cover - the winner ended between two statements
            raise ApprovalRefused(ApprovalProblem.NOT_FINISHED, target)
        if created:
            await self.render(found.id)
        async with self._db.session() as session:
            slack_ids = tuple(
                await session.scalars(
                    select(ApprovalApprover.slack_user_id)
                    .where(ApprovalApprover.approval_id == found.id)
                    .order_by(ApprovalApprover.slack_user_id)
                )
            )
        return ApprovalTicket(
            approval_id=found.id,
            action=ApprovalAction(found.action),
            target=found.target,
            approvers=slack_ids,
            expires_at=aware(found.expires_at),
            created=created,
        )

    async def ask_again(self, asker: Identity, approval_id: str) -> ApprovalTicket:
        """The same request again, after a denial or expiry (or a cancel, a failure)."""
        row = await self._get(approval_id)
        if row is None or row.team_id != asker.team_id:
            raise ApprovalRefused(ApprovalProblem.NOT_YOURS)
        if row.requester_slack_id != asker.slack_user_id or row.requester_sub != asker.sub:
            raise ApprovalRefused(ApprovalProblem.NOT_YOURS, row.target)
        if not ApprovalStatus(row.status).final:
            raise ApprovalRefused(ApprovalProblem.NOT_FINISHED, row.target)
        return await self.request(
            asker, ApprovalAction(row.action), json.loads(row.arguments), channel_id=None
        )

    async def _resolve(
        self, asker: Identity, action: ApprovalAction, arguments: Mapping[str, Any]
    ) -> tuple[dict[str, Any], str, list[str]]:
        """Normalised arguments, a description of the target for people, the project ids."""
        if action is ApprovalAction.DELETE_ALL_MY_PROJECTS:
            owned = await self._authz.list_objects(
                asker.fga_user, "owner", "project", consistency=Consistency.HIGHER_CONSISTENCY
            )
            ids = sorted(o.removeprefix("project:") for o in owned if o.startswith("project:"))
            async with self._db.session() as session:
                rows = list(
                    await session.execute(
                        select(Project.id, Project.name).where(
                            Project.id.in_(ids), Project.team_id == asker.team_id
                        )
                    )
                )
            if not rows:
                raise ApprovalRefused(ApprovalProblem.NOTHING_TO_DO)
            rows.sort(key=lambda r: (name_key(r[1]), r[0]))
            names = [name for _, name in rows]
            project_ids = [pid for pid, _ in rows]
            target = words.approval_target_all(names)
            return {"project_ids": project_ids}, target, project_ids
        project = await self._visible_project(asker, arguments)
        if action is ApprovalAction.DELETE_PROJECT:
            return (
                {"project_id": project.id},
                words.approval_target_project(project.name),
                [project.id],
            )
        raw_owner = str(arguments.get("new_owner") or "").strip()
        match = _SLACK_USER.fullmatch(raw_owner)
        if match is None:
            raise ApprovalRefused(ApprovalProblem.BAD_ARGUMENTS, raw_owner[:40])
        new_owner = match.group(1) or match.group(2)
        async with self._db.session() as session:
            sub = await session.scalar(
                select(SlackLink.sub).where(
                    SlackLink.team_id == asker.team_id, SlackLink.slack_user_id == new_owner
                )
            )
        if sub is None:
            raise ApprovalRefused(ApprovalProblem.PERSON_NOT_LINKED, new_owner)
        if await self._authz.check(
            fga_user(sub),
            "owner",
            project_object(project.id),
            consistency=Consistency.HIGHER_CONSISTENCY,
        ):
            raise ApprovalRefused(ApprovalProblem.ALREADY_OWNER, project.name)
        return (
            {"project_id": project.id, "new_owner": new_owner, "new_owner_sub": sub},
            words.approval_target_owner(project.name, new_owner),
            [project.id],
        )

    async def _visible_project(self, asker: Identity, arguments: Mapping[str, Any]) -> Project:
        raw_id = arguments.get("project_id")
        name = str(arguments.get("project") or "").strip()
        async with self._db.session() as session:
            project: Project | None = None
            if isinstance(raw_id, str) and re.fullmatch(r"[0-9a-z]{1,26}", raw_id):
                project = await session.get(Project, raw_id)
            elif name:
                project = await session.scalar(
                    select(Project).where(
                        Project.team_id == asker.team_id, Project.name_key == name_key(name)
                    )
                )
            else:
                raise ApprovalRefused(ApprovalProblem.BAD_ARGUMENTS)
        shown = name or str(raw_id or "")
        if project is None or project.team_id != asker.team_id:
            raise ProjectNotFound(shown[:80])
        if not await self._authz.check(
            asker.fga_user,
            "can_view",
            project_object(project.id),
            consistency=Consistency.HIGHER_CONSISTENCY,
        ):
            raise ProjectNotFound(shown[:80])
        return project

    async def _open_with_key(self, key: str) -> Approval | None:
        async with self._db.session() as session:
            found: Approval | None = await session.scalar(
                select(Approval).where(Approval.idempotency_key == key)
            )
            return found

    async def _get(self, approval_id: str) -> Approval | None:
        if not valid_approval_id(approval_id):
            return None
        async with self._db.session() as session:
            return await session.get(Approval, approval_id)

    async def get(self, approval_id: str) -> Approval | None:
        """The row (tests and the CLI read it); None for an unknown or malformed id."""
        return await self._get(approval_id)

    # -- clicks ----------------------------------------------------------------------------

    async def _approver_row(
        self, approval_id: str, team_id: str, slack_user_id: str
    ) -> tuple[Approval | None, ApprovalApprover | None]:
        if not valid_approval_id(approval_id):
            return None, None
        async with self._db.session() as session:
            row = await session.get(Approval, approval_id)
            if row is None or row.team_id != team_id:
                return None, None
            approver = await session.get(ApprovalApprover, (approval_id, slack_user_id))
            return row, approver

    async def _may_act(self, row: Approval, approver: ApprovalApprover | None) -> bool:
        """On the list, still linked as the identity that was asked, and still
        ``approver`` of every project (fresh; fail closed)."""
        if approver is None:
            return False
        async with self._db.session() as session:
            linked = await session.scalar(
                select(SlackLink.sub).where(
                    SlackLink.team_id == row.team_id,
                    SlackLink.slack_user_id == approver.slack_user_id,
                )
            )
        if linked != approver.sub:
            return False
        return await policy.is_approver(self._authz, approver.sub, json.loads(row.project_ids))

    async def approve(self, team_id: str, slack_user_id: str, approval_id: str) -> Click:
        """An approver pressed Approve: start CIBA on their device. Anyone else is refused
        and nothing changes; a second click finds it confirming already."""
        row, approver = await self._approver_row(approval_id, team_id, slack_user_id)
        if row is None:
            return Click(outcome=ClickOutcome.NOT_FOUND)
        if not await self._may_act(row, approver):
            await self._refusal(row, slack_user_id, "approve_refused", "not_an_approver")
            return Click(outcome=ClickOutcome.NOT_APPROVER)
        assert approver is not None
        now = self._clock()
        if row.status == ApprovalStatus.PENDING.value and aware(row.expires_at) <= now:
            await self._expire_one(row.id)
            return Click(outcome=ClickOutcome.EXPIRED, status=ApprovalStatus.EXPIRED)
        remaining = int((aware(row.expires_at) - now).total_seconds())
        if row.status == ApprovalStatus.PENDING.value and remaining < MIN_CIBA_SECONDS:
            # Too little time left to confirm on a device: as good as expired.
            return Click(outcome=ClickOutcome.EXPIRED, status=ApprovalStatus(row.status))
        code = new_code()
        claimed = await self._transition(
            row.id,
            expected=(ApprovalStatus.PENDING,),
            to=ApprovalStatus.CONFIRMING,
            values={
                "approver_slack_id": slack_user_id,
                "approver_sub": approver.sub,
                "binding_code": code,
                "auth_req_id": None,
                "next_poll_at": None,
            },
            extra=[Approval.expires_at > now],
            outcome="approve_pressed",
            actor=(approver.sub, slack_user_id),
        )
        if claimed is None:
            return await self._click_lost(row.id, slack_user_id)
        summary = words.approval_binding_summary(ApprovalAction(row.action), row.target)
        try:
            started = await self._ciba.start(
                sub=approver.sub,
                binding_message=binding_message(code, summary),
                requested_expiry=remaining,
            )
        except Exception as exc:
            if isinstance(exc, ServiceUnavailable):
                reason = "provider_unavailable"
            elif isinstance(exc, CibaRejected):
                reason = f"ciba_{exc.reason.value}"
            else:
                reason = type(exc).__name__
            log.warning("CIBA could not be started for an approval: %s", reason)
            await self._transition(
                row.id,
                expected=(ApprovalStatus.CONFIRMING,),
                to=ApprovalStatus.PENDING,
                values={"approver_slack_id": None, "approver_sub": None, "binding_code": None},
                extra=[Approval.version == claimed],
                outcome="ciba_not_started",
                actor=(approver.sub, slack_user_id),
                reason=reason,
                keep_key=True,
            )
            await self.render(row.id)
            return Click(outcome=ClickOutcome.PROVIDER_UNAVAILABLE)
        interval = max(0, started.interval)
        async with self._db.session() as session:
            await session.execute(
                update(Approval)
                .where(
                    Approval.id == row.id,
                    Approval.status == ApprovalStatus.CONFIRMING.value,
                    Approval.version == claimed,
                )
                .values(
                    auth_req_id=started.auth_req_id,
                    poll_interval=interval,
                    next_poll_at=now + timedelta(seconds=interval),
                    updated_at=self._clock(),
                )
            )
        await self.render(row.id)
        return Click(
            outcome=ClickOutcome.CONFIRMING,
            status=ApprovalStatus.CONFIRMING,
            binding_code=code,
            confirming_slack_id=slack_user_id,
        )

    async def deny(self, team_id: str, slack_user_id: str, approval_id: str) -> Click:
        """An approver pressed Deny: the approval ends at once (also while confirming)."""
        row, approver = await self._approver_row(approval_id, team_id, slack_user_id)
        if row is None:
            return Click(outcome=ClickOutcome.NOT_FOUND)
        if not await self._may_act(row, approver):
            await self._refusal(row, slack_user_id, "deny_refused", "not_an_approver")
            return Click(outcome=ClickOutcome.NOT_APPROVER)
        assert approver is not None
        done = await self._transition(
            row.id,
            expected=(ApprovalStatus.PENDING, ApprovalStatus.CONFIRMING),
            to=ApprovalStatus.DENIED,
            values={"decided_by_slack_id": slack_user_id},
            outcome="denied",
            actor=(approver.sub, slack_user_id),
            reason="denied_in_slack",
        )
        if done is None:
            return await self._click_lost(row.id, slack_user_id)
        await self.render(row.id)
        return Click(outcome=ClickOutcome.DENIED, status=ApprovalStatus.DENIED)

    async def cancel(self, team_id: str, slack_user_id: str, approval_id: str) -> Click:
        """The requester withdrew the request (only they may)."""
        row = await self._get(approval_id)
        if row is None or row.team_id != team_id:
            return Click(outcome=ClickOutcome.NOT_FOUND)
        if row.requester_slack_id != slack_user_id:
            await self._refusal(row, slack_user_id, "cancel_refused", "not_the_requester")
            return Click(outcome=ClickOutcome.NOT_REQUESTER)
        done = await self._transition(
            row.id,
            expected=(ApprovalStatus.PENDING, ApprovalStatus.CONFIRMING),
            to=ApprovalStatus.CANCELLED,
            values={"decided_by_slack_id": slack_user_id},
            outcome="cancelled",
            actor=(row.requester_sub, slack_user_id),
            reason="cancelled_by_requester",
        )
        if done is None:
            return await self._click_lost(row.id, slack_user_id)
        await self.render(row.id)
        return Click(outcome=ClickOutcome.CANCELLED, status=ApprovalStatus.CANCELLED)

    async def _click_lost(self, approval_id: str, slack_user_id: str) -> Click:
        """A click whose transition another event made impossible: say where it is."""
        row = await self._get(approval_id)
        assert row is not None
        status = ApprovalStatus(row.status)
        if status is ApprovalStatus.CONFIRMING:
            return Click(
                outcome=ClickOutcome.ALREADY_CONFIRMING,
                status=status,
                binding_code=row.binding_code if row.approver_slack_id == slack_user_id else None,
                confirming_slack_id=row.approver_slack_id,
            )
        if status is ApprovalStatus.PENDING and aware(row.expires_at) <= self._clock():
            await self._expire_one(row.id)
            return Click(outcome=ClickOutcome.EXPIRED, status=ApprovalStatus.EXPIRED)
        if status is ApprovalStatus.EXPIRED:
            return Click(outcome=ClickOutcome.EXPIRED, status=status)
        return Click(outcome=ClickOutcome.ALREADY_FINISHED, status=status)

    async def _refusal(self, row: Approval, slack_user_id: str, outcome: str, reason: str) -> None:
        """A refused click changes nothing but is on the record."""
        async with self._db.session() as session:
            sub = await session.scalar(
                select(SlackLink.sub).where(
                    SlackLink.team_id == row.team_id, SlackLink.slack_user_id == slack_user_id
                )
            )
            await self._record(
                session,
                team_id=row.team_id,
                approval_id=row.id,
                action=row.action,
                project_ids=json.loads(row.project_ids),
                outcome=outcome,
                actor_sub=sub,
                actor_slack_id=slack_user_id,
                arguments={},
                reason=reason,
                at=self._clock(),
            )

    async def _expire_one(self, approval_id: str) -> None:
        done = await self._transition(
            approval_id,
            expected=(ApprovalStatus.PENDING, ApprovalStatus.CONFIRMING),
            to=ApprovalStatus.EXPIRED,
            extra=[Approval.expires_at <= self._clock()],
            outcome="expired",
            actor=(None, None),
            reason="deadline_passed",
        )
        if done is not None:
            await self.render(approval_id)

    # -- transitions -----------------------------------------------------------------------

    async def _transition(
        self,
        approval_id: str,
        *,
        expected: Sequence[ApprovalStatus],
        to: ApprovalStatus,
        outcome: str,
        actor: tuple[str | None, str | None],
        values: Mapping[str, Any] | None = None,
        extra: Sequence[Any] = (),
        reason: str | None = None,
        keep_key: bool = False,
        session: AsyncSession | None = None,
    ) -> int | None:
        """Move one approval from one of ``expected`` to ``to`` if, and only if, it is
        still there (plus ``extra`` conditions), and append the audit entry in the same
        transaction. Returns the new version, or None when another event got there
        first."""
        if session is None:
            async with self._db.session() as own:
                return await self._transition(
                    approval_id,
                    expected=expected,
                    to=to,
                    outcome=outcome,
                    actor=actor,
                    values=values,
                    extra=extra,
                    reason=reason,
                    keep_key=keep_key,
                    session=own,
                )
        now = self._clock()
        changes: dict[str, Any] = {
            "status": to.value,
            "version": Approval.version + 1,
            "updated_at": now,
            "dirty": True,
            **(values or {}),
        }
        if to.final:
            changes["reason"] = reason
            if not keep_key:
                changes["idempotency_key"] = None
        result = await session.execute(
            update(Approval)
            .where(
                Approval.id == approval_id,
                Approval.status.in_([s.value for s in expected]),
                *extra,
            )
            .values(**changes)
            .returning(Approval.version, Approval.team_id, Approval.action, Approval.project_ids)
        )
        moved = result.first()
        if moved is None:
            return None
        version, team_id, action, project_ids = moved
        await self._record(
            session,
            team_id=team_id,
            approval_id=approval_id,
            action=action,
            project_ids=json.loads(project_ids),
            outcome=outcome,
            actor_sub=actor[0],
            actor_slack_id=actor[1],
            arguments={"status": to.value},
            reason=reason,
            at=now,
        )
        return int(version)

    async def _record(
        self,
        session: AsyncSession,
        *,
        team_id: str,
        approval_id: str,
        action: str,
        project_ids: Sequence[str],
        outcome: str,
        actor_sub: str | None,
        actor_slack_id: str | None,
        arguments: Mapping[str, Any],
        reason: str | None,
        at: datetime,
    ) -> None:
        """One audit entry per project the approval touches (``/pm audit PROJECT`` finds
        it under each), in the caller's transaction."""
        targets: list[str | None] = list(project_ids) or [None]
        for project_id in targets:
            await self._audit.append(
                team_id=team_id,
                kind=AuditKind.APPROVAL,
                action=action,
                outcome=outcome,
                actor_sub=actor_sub,
                actor_slack_id=actor_slack_id,
                project_id=project_id,
                subject=approval_id,
                arguments=arguments,
                reason=reason,
                session=session,
                at=at,
            )

    # -- polling ---------------------------------------------------------------------------

    async def poll_round(self) -> int:
        """Poll every CIBA request that is due, once; returns how many were polled."""
        now = self._clock()
        claimed = await self._claim_due_polls(now)
        if not claimed:
            return 0
        await asyncio.gather(*(self._poll_one(c, now) for c in claimed))
        return len(claimed)

    async def _claim_due_polls(self, now: datetime) -> list[tuple[str, str, str, int]]:
        """Due CONFIRMING rows, each claimed by moving its ``next_poll_at`` past the poll
        (a replica polling at the same time skips them)."""
        due = (
            select(Approval.id)
            .where(
                Approval.status == ApprovalStatus.CONFIRMING.value,
                Approval.next_poll_at <= now,
                Approval.auth_req_id.is_not(None),
            )
            .order_by(Approval.next_poll_at)
            .limit(POLL_BATCH)
        )
        if self._db.dialect == "postgresql":
            due = due.with_for_update(skip_locked=True)
        # While polling, nobody else polls: the claim outlives one poll (the provider's
        # timeout) and the answer sets the real next time.
        lease = now + timedelta(seconds=30)
        async with self._db.session() as session:
            result = await session.execute(
                update(Approval)
                .where(
                    Approval.id.in_(due.scalar_subquery()),
                    Approval.status == ApprovalStatus.CONFIRMING.value,
                    Approval.next_poll_at <= now,
                )
                .values(next_poll_at=lease)
                .returning(
                    Approval.id,
                    Approval.auth_req_id,
                    Approval.approver_sub,
                    Approval.poll_interval,
                )
                .execution_options(synchronize_session=False)
            )
            return [(i, str(a), str(s), int(n or DEFAULT_INTERVAL)) for i, a, s, n in result]

    async def _poll_one(self, claimed: tuple[str, str, str, int], now: datetime) -> None:
        approval_id, auth_req_id, approver_sub, interval = claimed
        # The whole poll (the provider's answer and what follows it, an execution
        # included) holds a slot: at most ``poll_concurrency`` at once, so a large round
        # neither floods the provider nor drains the database pool.
        async with self._poll_slots:
            await self._poll_and_apply(approval_id, auth_req_id, approver_sub, interval)

    async def _poll_and_apply(
        self, approval_id: str, auth_req_id: str, approver_sub: str, interval: int
    ) -> None:
        same_request = [Approval.auth_req_id == auth_req_id]
        try:
            answer = await self._ciba.poll(auth_req_id)
        except CibaRejected as exc:
            # The provider refuses this request for good (unknown or used auth_req_id,
            # a token that fails verification): it can never be granted.
            log.warning("CIBA poll refused: %s", exc.reason.value)
            if await self._transition(
                approval_id,
                expected=(ApprovalStatus.CONFIRMING,),
                to=ApprovalStatus.DENIED,
                extra=same_request,
                outcome="refused",
                actor=(approver_sub, None),
                reason=f"ciba_{exc.reason.value}",
            ):
                await self.render(approval_id)
            return
        except Exception as exc:
            # Unreachable or slow provider (ServiceUnavailable) or anything unforeseen:
            # poll again after the interval; the deadline ends it at worst.
            log.warning("CIBA poll failed (%s); retrying", type(exc).__name__)
            await self._next_poll(approval_id, auth_req_id, interval)
            return
        if answer.state is CibaPollState.PENDING:
            await self._next_poll(approval_id, auth_req_id, interval)
        elif answer.state is CibaPollState.SLOW_DOWN:
            await self._next_poll(approval_id, auth_req_id, interval + SLOW_DOWN_STEP)
        elif answer.state is CibaPollState.DENIED:
            if await self._transition(
                approval_id,
                expected=(ApprovalStatus.CONFIRMING,),
                to=ApprovalStatus.DENIED,
                extra=same_request,
                outcome="denied",
                actor=(approver_sub, None),
                reason="denied_on_device",
            ):
                await self.render(approval_id)
        elif answer.state is CibaPollState.EXPIRED:
            if await self._transition(
                approval_id,
                expected=(ApprovalStatus.CONFIRMING,),
                to=ApprovalStatus.EXPIRED,
                extra=same_request,
                outcome="expired",
                actor=(approver_sub, None),
                reason="device_confirmation_expired",
            ):
                await self.render(approval_id)
        elif answer.sub != approver_sub:
            # A grant for somebody else is no approval: fail closed, never run.
            if await self._transition(
                approval_id,
                expected=(ApprovalStatus.CONFIRMING,),
                to=ApprovalStatus.DENIED,
                extra=same_request,
                outcome="refused",
                actor=(approver_sub, None),
                reason="grant_for_another_user",
            ):
                await self.render(approval_id)
        else:
            await self._grant(approval_id, auth_req_id, approver_sub)

    async def _next_poll(self, approval_id: str, auth_req_id: str, interval: int) -> None:
        async with self._db.session() as session:
            await session.execute(
                update(Approval)
                .where(
                    Approval.id == approval_id,
                    Approval.status == ApprovalStatus.CONFIRMING.value,
                    Approval.auth_req_id == auth_req_id,
                )
                .values(
                    poll_interval=interval,
                    next_poll_at=self._clock() + timedelta(seconds=interval),
                )
            )

    # -- execution -------------------------------------------------------------------------

    async def _grant(self, approval_id: str, auth_req_id: str, approver_sub: str) -> None:
        """The approver's grant: claim the execution (only before the deadline), run."""
        now = self._clock()
        version = await self._transition(
            approval_id,
            expected=(ApprovalStatus.CONFIRMING,),
            to=ApprovalStatus.EXECUTING,
            values={"next_poll_at": now + EXECUTION_LEASE},
            extra=[Approval.auth_req_id == auth_req_id, Approval.expires_at > now],
            outcome="granted",
            actor=(approver_sub, None),
            reason="confirmed_on_device",
        )
        if version is None:
            return
        await self.render(approval_id)
        await self._execute(approval_id, version)

    async def _execute(self, approval_id: str, version: int) -> None:
        row = await self._get(approval_id)
        assert row is not None
        finished = False

        async def commit_with(session: AsyncSession) -> None:
            nonlocal finished
            done = await self._transition(
                approval_id,
                expected=(ApprovalStatus.EXECUTING,),
                to=ApprovalStatus.EXECUTED,
                values={"executed_at": self._clock(), "next_poll_at": None},
                extra=[Approval.version == version],
                outcome="executed",
                actor=(row.approver_sub, row.approver_slack_id),
                session=session,
            )
            if done is None:
                # Another executor took over (our lease ran out): undo our change.
                raise ExecutionLost(approval_id)
            finished = True

        try:
            await self._executor.run(row, commit_with)
        except ExecutionLost:
            log.warning("an approval's execution was taken over; this run was rolled back")
            return
        except ApprovedActionInvalid as exc:
            reason = exc.problem.value
        except Exception as exc:
            log.exception("an approved action failed")
            reason = f"error:{type(exc).__name__}"
        else:
            if finished:
                await self.render(approval_id)
                return
            reason = "not_finished"
        if await self._transition(
            approval_id,
            expected=(ApprovalStatus.EXECUTING,),
            to=ApprovalStatus.FAILED,
            values={"next_poll_at": None},
            extra=[Approval.version == version],
            outcome="failed",
            actor=(row.approver_sub, row.approver_slack_id),
            reason=reason,
        ):
            await self.render(approval_id)

    # -- sweep -----------------------------------------------------------------------------

    async def sweep(self) -> SweepResult:
        """Expire open approvals past their deadline, mark reminders due, re-claim
        executions whose lease ran out. Set-based: a handful of statements whatever the
        number of rows."""
        now = self._clock()
        async with self._db.session() as session:
            expired = list(
                await session.execute(
                    update(Approval)
                    .where(Approval.status.in_(EXPIRABLE), Approval.expires_at <= now)
                    .values(
                        status=ApprovalStatus.EXPIRED.value,
                        reason="deadline_passed",
                        idempotency_key=None,
                        version=Approval.version + 1,
                        updated_at=now,
                        dirty=True,
                    )
                    .returning(Approval.id, Approval.team_id, Approval.action, Approval.project_ids)
                    .execution_options(synchronize_session=False)
                )
            )
            entries = [
                {
                    "at": now,
                    "team_id": team_id,
                    "actor_sub": None,
                    "actor_slack_id": None,
                    "kind": AuditKind.APPROVAL.value,
                    "action": action,
                    "project_id": project_id,
                    "subject": approval_id,
                    "arguments": json.dumps({"status": ApprovalStatus.EXPIRED.value}),
                    "outcome": "expired",
                    "reason": "deadline_passed",
                }
                for approval_id, team_id, action, project_ids in expired
                for project_id in (json.loads(project_ids) or [None])
            ]
            if entries:
                await session.execute(insert(AuditEntry), entries)
            reminded = await session.execute(
                update(Approval)
                .where(
                    Approval.status == ApprovalStatus.PENDING.value,
                    Approval.remind_at <= now,
                    Approval.reminder == Reminder.NOT_YET.value,
                )
                .values(
                    reminder=Reminder.DUE.value,
                    version=Approval.version + 1,
                    dirty=True,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            stale = list(
                await session.execute(
                    update(Approval)
                    .where(
                        Approval.status == ApprovalStatus.EXECUTING.value,
                        Approval.next_poll_at <= now,
                    )
                    .values(version=Approval.version + 1, next_poll_at=now + EXECUTION_LEASE)
                    .returning(Approval.id, Approval.version)
                    .execution_options(synchronize_session=False)
                )
            )
        for approval_id, version in stale:
            await self._execute(approval_id, int(version))
        return SweepResult(
            expired=len(expired),
            reminders=int(getattr(reminded, "rowcount", 0) or 0),
            resumed=len(stale),
        )

    # -- Slack messages --------------------------------------------------------------------

    async def render_pending(self, limit: int = 200) -> int:
        """Bring the Slack messages of changed approvals up to date; returns how many."""
        now = self._clock()
        async with self._db.session() as session:
            ids = list(
                await session.scalars(
                    select(Approval.id)
                    .where(
                        Approval.dirty.is_(True),
                        or_(
                            Approval.render_lease_until.is_(None),
                            Approval.render_lease_until <= now,
                        ),
                    )
                    .limit(limit)
                )
            )
        shown = 0
        for approval_id in ids:
            shown += await self.render(approval_id)
        return shown

    async def render(self, approval_id: str) -> int:
        """Show one approval's current state in Slack (1), or leave it to the next pass
        (0: another renderer holds it, Slack failed, or nothing changed)."""
        now = self._clock()
        async with self._db.session() as session:
            claimed = await session.execute(
                update(Approval)
                .where(
                    Approval.id == approval_id,
                    Approval.dirty.is_(True),
                    or_(
                        Approval.render_lease_until.is_(None),
                        Approval.render_lease_until <= now,
                    ),
                )
                .values(render_lease_until=now + RENDER_LEASE)
                .returning(Approval.id)
            )
            if claimed.first() is None:
                return 0
        async with self._db.session() as session:
            row = await session.get(Approval, approval_id)
            assert row is not None
            approvers = list(
                await session.scalars(
                    select(ApprovalApprover)
                    .where(ApprovalApprover.approval_id == approval_id)
                    .order_by(ApprovalApprover.slack_user_id)
                )
            )
        version = row.version
        view = _view(row, approvers)
        try:
            shown = await self._notifier.show(view)
        except Exception as exc:
            log.warning("could not show an approval in Slack: %s", type(exc).__name__)
            return 0
        async with self._db.session() as session:
            if shown.requester is not None and row.requester_ts is None:
                await session.execute(
                    update(Approval)
                    .where(Approval.id == approval_id, Approval.requester_ts.is_(None))
                    .values(requester_channel=shown.requester[0], requester_ts=shown.requester[1])
                )
            for slack_id, (channel, ts) in shown.approvers.items():
                await session.execute(
                    update(ApprovalApprover)
                    .where(
                        ApprovalApprover.approval_id == approval_id,
                        ApprovalApprover.slack_user_id == slack_id,
                        ApprovalApprover.dm_ts.is_(None),
                    )
                    .values(dm_channel=channel, dm_ts=ts)
                )
            if shown.reminded:
                await session.execute(
                    update(ApprovalApprover)
                    .where(
                        ApprovalApprover.approval_id == approval_id,
                        ApprovalApprover.slack_user_id.in_(shown.reminded),
                    )
                    .values(reminded_at=now)
                )
            finish: dict[str, Any] = {"render_lease_until": None}
            done = {
                "dirty": False,
                "rendered_version": version,
                **({"reminder": Reminder.SENT.value} if view.remind else {}),
            }
            await session.execute(
                update(Approval)
                .where(Approval.id == approval_id, Approval.version == version)
                .values(**finish, **done)
            )
            await session.execute(
                update(Approval)
                .where(Approval.id == approval_id, Approval.version != version)
                .values(**finish)
            )
        return 1

    # -- audit -----------------------------------------------------------------------------

    async def audit_for(
        self, asker: Identity, project_name: str | None, limit: int = 40
    ) -> AuditPage:
        """The newest audit entries of a project the asker owns (``project#owner``, checked
        fresh), or of every project they own. A project they may not view is
        :class:`ProjectNotFound`; one they view but do not own, or owning none,
        :class:`AuditNotAllowed`. Undecidable: ``AuthzUnavailable`` (fail closed)."""
        if project_name:
            project = await self._visible_project(asker, {"project": project_name})
            if not await self._authz.check(
                asker.fga_user,
                "owner",
                project_object(project.id),
                consistency=Consistency.HIGHER_CONSISTENCY,
            ):
                raise AuditNotAllowed(project.name)
            records = await self._audit.entries(
                team_id=asker.team_id, project_ids=[project.id], limit=limit, newest_first=True
            )
            return AuditPage(project=project.name, records=tuple(records))
        owned = await self._authz.list_objects(
            asker.fga_user, "owner", "project", consistency=Consistency.HIGHER_CONSISTENCY
        )
        ids = [o.removeprefix("project:") for o in owned if o.startswith("project:")]
        if not ids:
            raise AuditNotAllowed(None)
        records = await self._audit.entries(
            team_id=asker.team_id, project_ids=ids, limit=limit, newest_first=True
        )
        return AuditPage(project=None, records=tuple(records))

    # -- App Home --------------------------------------------------------------------------

    async def pending_for(self, team_id: str, slack_user_id: str) -> PendingApprovals:
        """Open approvals this person may approve, and those they asked for."""
        open_ = [ApprovalStatus.PENDING.value, ApprovalStatus.CONFIRMING.value]
        async with self._db.session() as session:
            mine = list(
                await session.scalars(
                    select(Approval)
                    .where(
                        Approval.team_id == team_id,
                        Approval.requester_slack_id == slack_user_id,
                        Approval.status.in_(open_),
                    )
                    .order_by(Approval.expires_at)
                    .limit(20)
                )
            )
            theirs = list(
                await session.scalars(
                    select(Approval)
                    .join(ApprovalApprover, ApprovalApprover.approval_id == Approval.id)
                    .where(
                        and_(
                            Approval.team_id == team_id,
                            ApprovalApprover.slack_user_id == slack_user_id,
                            Approval.status.in_(open_),
                        )
                    )
                    .order_by(Approval.expires_at)
                    .limit(20)
                )
            )
            asked: dict[str, list[str]] = {}
            if mine:
                rows = await session.scalars(
                    select(ApprovalApprover)
                    .where(ApprovalApprover.approval_id.in_([r.id for r in mine]))
                    .order_by(ApprovalApprover.slack_user_id)
                )
                for approver in rows:
                    asked.setdefault(approver.approval_id, []).append(approver.slack_user_id)
        now = self._clock()
        return PendingApprovals(
            to_approve=tuple(_item(r) for r in theirs if aware(r.expires_at) > now),
            requested=tuple(
                _item(r, asked.get(r.id, ())) for r in mine if aware(r.expires_at) > now
            ),
        )


@dataclass(frozen=True, kw_only=True)
class AuditPage:
    project: str | None  # None: every project the asker owns
    records: tuple[AuditRecord, ...]


class ExecutionLost(Exception):
    """The approval was no longer ours to finish: the action's transaction rolls back."""


@dataclass(frozen=True, kw_only=True)
class SweepResult:
    expired: int
    reminders: int
    resumed: int  # executions whose lease ran out, run again


def _item(row: Approval, approvers: Sequence[str] = ()) -> PendingItem:
    return PendingItem(
        approval_id=row.id,
        action=ApprovalAction(row.action),
        target=row.target,
        status=ApprovalStatus(row.status),
        requester_slack_id=row.requester_slack_id,
        expires_at=aware(row.expires_at),
        approver_slack_ids=tuple(approvers),
    )


def _view(row: Approval, approvers: Sequence[ApprovalApprover]) -> ApprovalView:
    return ApprovalView(
        approval_id=row.id,
        team_id=row.team_id,
        action=ApprovalAction(row.action),
        target=row.target,
        status=ApprovalStatus(row.status),
        reason=row.reason,
        requester_slack_id=row.requester_slack_id,
        requester_channel=row.requester_channel,
        requester_ts=row.requester_ts,
        approvers=tuple(
            ApproverView(slack_user_id=a.slack_user_id, dm_channel=a.dm_channel, dm_ts=a.dm_ts)
            for a in approvers
        ),
        expires_at=aware(row.expires_at),
        confirming_slack_id=row.approver_slack_id,
        binding_code=row.binding_code,
        decided_by_slack_id=row.decided_by_slack_id,
        remind=row.reminder == Reminder.DUE.value and row.status == ApprovalStatus.PENDING.value,
    )
