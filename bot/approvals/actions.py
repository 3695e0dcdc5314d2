"""Executors of approved actions: each calls the projects service, which re-checks that the
action is still valid and authorized and commits its change together with the approval's
"executed" transition (``commit_with``)."""

from __future__ import annotations

import json
from typing import Protocol

from bot.approvals.models import Approval
from bot.approvals.ports import ApprovalAction
from bot.errors import ApprovalProblem, ApprovedActionInvalid
from bot.projects.service import CommitHook, ProjectsService


class Executor(Protocol):
    async def run(self, approval: Approval, commit_with: CommitHook) -> None:
        """Run the approved action of ``approval``; ``commit_with`` must be called inside
        the action's transaction (it raises when the approval is no longer ours).
        :class:`ApprovedActionInvalid` when the action is no longer valid or allowed."""
        ...


class ProjectActions:
    """The actions of :class:`ApprovalAction`, on projects."""

    def __init__(self, projects: ProjectsService) -> None:
        self._projects = projects

    async def run(self, approval: Approval, commit_with: CommitHook) -> None:
        args = json.loads(approval.arguments)
        if not isinstance(args, dict) or approval.approver_sub is None:
            raise ApprovedActionInvalid(ApprovalProblem.BAD_ARGUMENTS)
        action = ApprovalAction(approval.action)
        if action is ApprovalAction.DELETE_PROJECT:
            await self._projects.delete_project(
                team_id=approval.team_id,
                requester_sub=approval.requester_sub,
                approver_sub=approval.approver_sub,
                project_id=str(args["project_id"]),
                commit_with=commit_with,
            )
        elif action is ApprovalAction.DELETE_ALL_MY_PROJECTS:
            await self._projects.delete_all_owned_by(
                team_id=approval.team_id,
                owner_sub=approval.requester_sub,
                approver_sub=approval.approver_sub,
                project_ids=[str(p) for p in args["project_ids"]],
                commit_with=commit_with,
            )
        else:
            await self._projects.change_owner(
                team_id=approval.team_id,
                requester_sub=approval.requester_sub,
                approver_sub=approval.approver_sub,
                project_id=str(args["project_id"]),
                new_owner_sub=str(args["new_owner_sub"]),
                commit_with=commit_with,
            )
