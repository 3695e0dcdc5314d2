"""The agent as the Slack surfaces use it: a plain command's tool call, a request in words
for the model (when one is configured), and requests that wait for a connected account.

Every tool call runs as the asker through :class:`~bot.agent.runner.ToolRunner` (RBAC
permission, arguments, FGA in the services, audit). A call that needs a connected account
(Token Vault answered that the account is not connected, or lacks scopes) is kept in
``agent_requests`` with where it was asked; the Connect link carries its id, and once the
account is connected the connect flow calls :meth:`AgentService.resume`, which runs the call
again (once, before it expires) as the asker's fresh identity and answers where it was
asked: in a DM in its thread, in a channel to the asker alone.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Protocol

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot import messages as words
from bot.agent.loop import AgentLoop, AgentReply
from bot.agent.parser import ToolCall, change_verb, is_request_to_look
from bot.agent.requests import AgentRequests
from bot.agent.runner import ToolOutcome, ToolRunner
from bot.agent.services import AgentServices
from bot.agent.tool import FailureCode, ToolContext
from bot.agent.tools._common import zone_name
from bot.errors import PmbotError
from bot.identity.model import Identity
from bot.vault.ports import Connection

log = logging.getLogger(__name__)
_SLACK_ERRORS = (SlackApiError, SlackClientError, OSError, TimeoutError)


class CurrentIdentities(Protocol):
    async def current(self, team_id: str, slack_user_id: str) -> Identity | None: ...


class AgentService:
    def __init__(
        self,
        *,
        services: AgentServices,
        runner: ToolRunner,
        loop: AgentLoop | None,
        requests: AgentRequests,
        identities: CurrentIdentities,
        slack: AsyncWebClient,
    ) -> None:
        self.services = services
        self.runner = runner
        self.loop = loop
        self._requests = requests
        self._identities = identities
        self._slack = slack

    @property
    def has_model(self) -> bool:
        return self.loop is not None

    async def context(
        self, asker: Identity, *, channel_id: str | None, request_text: str | None = None
    ) -> ToolContext:
        """Who a tool runs for, where, and in which time zone (the asker's, from Slack).
        For a request in words (``request_text``), what it asks for: only to look
        (``read_only``), or a change of its first verb."""
        zone = await self.services.people.zone(asker.slack_user_id)
        extras: dict[str, Any] = {}
        verb: str | None = None
        if request_text is not None:
            extras["request_text"] = request_text
            verb = change_verb(request_text)
        return ToolContext(
            asker=asker,
            services=self.services,
            channel_id=channel_id,
            now=datetime.now(UTC),
            timezone=zone_name(zone),
            extras=extras,
            read_only=request_text is not None and is_request_to_look(request_text),
            change_verb=verb,
        )

    async def now_for(self, asker: Identity) -> datetime:
        """The asker's current local time (aware), for reading days and times."""
        return datetime.now(await self.services.people.zone(asker.slack_user_id))

    async def run(
        self,
        asker: Identity,
        call: ToolCall,
        *,
        channel_id: str | None,
        request_text: str | None = None,
    ) -> ToolOutcome:
        """One tool call as the asker (a plain command's, or a resumed one)."""
        ctx = await self.context(asker, channel_id=channel_id, request_text=request_text)
        return await self.runner.call(ctx, call.tool, call.arguments)

    async def converse(self, asker: Identity, text: str, *, channel_id: str | None) -> AgentReply:
        """A request in words, handled by the model with the tools (needs OPENAI_MODEL)."""
        assert self.loop is not None, "converse needs a model"
        ctx = await self.context(asker, channel_id=channel_id, request_text=text)
        return await self.loop.run(ctx, text)

    async def connect_link(
        self,
        asker: Identity,
        outcome: ToolOutcome,
        *,
        channel_id: str | None,
        thread_ts: str | None,
        request_text: str | None,
    ) -> str:
        """Keep the call that needs a connected account and return the Connect URL, which
        resumes it once the account is connected. ``ServiceUnavailable`` when connecting
        accounts is not possible."""
        assert outcome.connection is not None
        resume_id = await self._requests.add(
            team_id=asker.team_id,
            slack_user_id=asker.slack_user_id,
            channel_id=channel_id,
            thread_ts=thread_ts,
            tool=outcome.tool,
            arguments=outcome.arguments,
            command=request_text,
            connection=outcome.connection.value,
        )
        return await self.services.connect.connect_url(
            asker, outcome.connection, scopes=outcome.missing_scopes, resume_id=resume_id
        )

    async def resume(self, resume_id: str) -> None:
        """Run again the request ``resume_id`` that waited for a connected account, and
        answer where it was asked. Unknown, finished or expired requests do nothing."""
        waiting = await self._requests.claim(resume_id)
        if waiting is None:
            log.info("a resumed request was unknown, finished or expired")
            return
        asker = await self._identities.current(waiting.team_id, waiting.slack_user_id)
        if asker is None:
            log.info("a resumed request's asker is no longer linked")
            return
        outcome = await self.run(
            asker,
            ToolCall(waiting.tool, waiting.arguments),
            channel_id=waiting.channel_id,
            request_text=waiting.command,
        )
        text = f"{words.resumed_text(waiting.connection)}\n{outcome.text}"
        if outcome.code is FailureCode.CONNECTION_REQUIRED:
            try:
                url = await self.connect_link(
                    asker,
                    outcome,
                    channel_id=waiting.channel_id,
                    thread_ts=waiting.thread_ts,
                    request_text=waiting.command,
                )
                label = words.connect_button_text(outcome.connection or Connection.SLACK)
                text = f"{outcome.text} <{url}|{label}>"
            except PmbotError as exc:
                text = words.user_message(exc)
        await self._deliver(asker, waiting.channel_id, waiting.thread_ts, text)

    async def _deliver(
        self, asker: Identity, channel_id: str | None, thread_ts: str | None, text: str
    ) -> None:
        try:
            if channel_id is None or channel_id.startswith("D"):
                if channel_id is None:
                    opened = await self._slack.conversations_open(users=asker.slack_user_id)
                    channel_id = str(opened["channel"]["id"])
                await self._slack.chat_postMessage(
                    channel=channel_id, text=text, thread_ts=thread_ts
                )
                return
            await self._slack.chat_postEphemeral(
                channel=channel_id, user=asker.slack_user_id, text=text, thread_ts=thread_ts
            )
        except _SLACK_ERRORS as exc:
            log.warning("a resumed request's answer could not be posted: %s", type(exc).__name__)
