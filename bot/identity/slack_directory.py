"""What linking asks Slack about a person, over the Web API (``users.info``, ``team.info``).

Fields relied on (Slack's user object): ``is_restricted`` (multi-channel guest),
``is_ultra_restricted`` (single-channel guest), ``is_stranger`` (a Slack Connect user seen
from another organisation) and ``team_id`` (the person's home workspace: a Slack Connect
user's differs from the workspace the app is installed in). ``deleted`` and ``is_bot``
accounts are treated like guests: linked to nothing beyond themselves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import ServiceUnavailable
from bot.identity.model import Membership

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlackNames:
    person: str
    workspace: str


class WebApiDirectory:
    def __init__(self, slack: AsyncWebClient) -> None:
        self._slack = slack

    async def membership(self, team_id: str, slack_user_id: str) -> Membership:
        """Fail closed: when Slack cannot say, nobody is made a member."""
        try:
            response = await self._slack.users_info(user=slack_user_id)
        except (SlackApiError, SlackClientError, OSError, TimeoutError) as exc:
            log.warning("users.info failed: %s", type(exc).__name__)
            raise ServiceUnavailable("Slack") from None
        user = response.get("user") or {}
        if user.get("is_stranger") or (user.get("team_id") and user.get("team_id") != team_id):
            return Membership.EXTERNAL
        if (
            user.get("is_restricted")
            or user.get("is_ultra_restricted")
            or user.get("deleted")
            or user.get("is_bot")
        ):
            return Membership.GUEST
        return Membership.MEMBER

    async def names(self, team_id: str, slack_user_id: str) -> SlackNames:
        """Display names of a person and their workspace (ids when Slack cannot say)."""
        person, workspace = f"<@{slack_user_id}>", team_id
        try:
            user = (await self._slack.users_info(user=slack_user_id)).get("user") or {}
            profile = user.get("profile") or {}
            person = str(
                profile.get("real_name")
                or user.get("real_name")
                or profile.get("display_name")
                or user.get("name")
                or person
            )
            team = (await self._slack.team_info(team=team_id)).get("team") or {}
            workspace = str(team.get("name") or workspace)
        except (SlackApiError, SlackClientError, OSError, TimeoutError) as exc:
            log.info("could not look up Slack names: %s", type(exc).__name__)
        return SlackNames(person=person, workspace=workspace)
