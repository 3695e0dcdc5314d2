"""The approval policy, in one place: which actions need a human approval and who may give it.

**Which actions.** Every :class:`~bot.approvals.ports.ApprovalAction`: deleting a project,
deleting all of one's projects, changing a project's owner. None of them ever runs from a
request alone; each runs only after a CIBA grant from an approver.

**Who may approve.** The people holding the FGA ``approver`` relation on *every* project the
action touches (``project#approver``: the project's approvers and its owners; the
``approval`` type of ``authz/model.fga`` inherits exactly these through ``approver from
project``) and linked in the requester's workspace (they need a Slack DM and an identity
for CIBA). From them, :func:`choose_approvers` picks:

* when the requester is one of them, **only the requester**: they confirm on their own
  device (the agent asks the person it acts for; nobody else is bothered);
* otherwise **all of them except the requester** (who is not one anyway): any one of them
  may approve, the first to confirm decides; any one of them may deny.

So a requester who is not an approver can never approve their own request (they are not
on the list, and a click from anyone not on the list is refused and changes nothing). The
relation is checked again, fresh (``HIGHER_CONSISTENCY``), when an approver presses
Approve or Deny and when the action runs: somebody who lost the role meanwhile is refused.
A decision that cannot be made refuses (fail closed).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select

from authz.ids import fga_user, from_fga_id
from authz.ports import Authorizer, AuthzUnavailable, CheckRequest, Consistency
from bot.approvals.ports import ApprovalAction
from bot.projects.values import project_object
from bot.storage.db import Database
from bot.storage.models import SlackLink

APPROVER_RELATION = "approver"
NEEDS_APPROVAL: frozenset[ApprovalAction] = frozenset(ApprovalAction)


def needs_approval(action: ApprovalAction) -> bool:
    return action in NEEDS_APPROVAL


@dataclass(frozen=True)
class Approver:
    slack_user_id: str
    sub: str


def choose_approvers(requester_sub: str, eligible: Sequence[Approver]) -> tuple[Approver, ...]:
    """Who is asked (see the module docstring); empty when nobody can approve."""
    own = [a for a in eligible if a.sub == requester_sub]
    if own:
        return (own[0],)
    return tuple(sorted((a for a in eligible if a.sub != requester_sub), key=lambda a: a.sub))


async def eligible_approvers(
    authz: Authorizer, db: Database, team_id: str, project_ids: Iterable[str]
) -> list[Approver]:
    """The linked people of ``team_id`` who hold ``approver`` on every project."""
    subs: set[str] | None = None
    for project_id in project_ids:
        users = await authz.list_users(
            project_object(project_id),
            APPROVER_RELATION,
            ["user"],
            consistency=Consistency.HIGHER_CONSISTENCY,
        )
        found = {from_fga_id(u.removeprefix("user:")) for u in users if u.startswith("user:")}
        subs = found if subs is None else subs & found
    if not subs:
        return []
    async with db.session() as session:
        rows = await session.execute(
            select(SlackLink.slack_user_id, SlackLink.sub).where(
                SlackLink.team_id == team_id, SlackLink.sub.in_(subs)
            )
        )
        return [Approver(slack_user_id=s, sub=sub) for s, sub in rows]


async def is_approver(authz: Authorizer, sub: str, project_ids: Sequence[str]) -> bool:
    """Whether ``sub`` holds ``approver`` on every project, decided fresh.
    :class:`AuthzUnavailable` when that cannot be decided."""
    if not project_ids:
        return False
    results = await authz.batch_check(
        [
            CheckRequest(user=fga_user(sub), relation=APPROVER_RELATION, object=project_object(p))
            for p in project_ids
        ],
        consistency=Consistency.HIGHER_CONSISTENCY,
    )
    if any(r.denied_by_error for r in results):
        raise AuthzUnavailable("an approver decision could not be made")
    return all(r.allowed for r in results)
