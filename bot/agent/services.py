"""The collaborators tools use, built once in ``bot/wiring.py``."""

from __future__ import annotations

from dataclasses import dataclass

from authz.ports import Authorizer
from bot.agent.channels import SlackChannels
from bot.approvals.ports import ApprovalRequests
from bot.audit import AuditLog
from bot.knowledge.ports import AuthorizedRetriever
from bot.projects.people import SlackPeople
from bot.projects.service import ProjectsService
from bot.providers.ports import CalendarApi, SlackAsUser
from bot.settings import Settings
from bot.vault.ports import ConnectLinks, TokenVault


@dataclass(kw_only=True)
class AgentServices:
    settings: Settings
    projects: ProjectsService
    knowledge: AuthorizedRetriever
    authz: Authorizer
    people: SlackPeople
    audit: AuditLog
    approvals: ApprovalRequests
    vault: TokenVault
    calendar: CalendarApi
    slack_as_user: SlackAsUser
    connect: ConnectLinks
    channels: SlackChannels  # channels named in requests, and who is a member
