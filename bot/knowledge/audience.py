"""What Slack says about the conversation a question is asked in: who reads a reply there
(:class:`ChannelAudiences`) and what was said before in its thread (:class:`ThreadReader`).

**The audience of a channel** is every human member (``conversations.members``, then
``users.info`` for each: bots, apps, Slackbot and deactivated accounts are not readers),
each mapped to their linked identity. A reply everyone in the channel sees may only use
what *all* of them may view, so an unlinked human makes the audience one that may see
nothing, and so does a channel whose members Slack cannot tell (fail closed: the answer
then goes to the asker alone). Members are read afresh for every question: someone who
joined a minute ago reads the reply too.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.identity.model import Identity

log = logging.getLogger(__name__)

_SLACK_ERRORS = (SlackApiError, SlackClientError, OSError, TimeoutError)
SLACKBOT: Final = "USLACKBOT"
MAX_MEMBERS: Final = 5000  # a bigger channel is answered privately (it is read by everyone)
HISTORY_MESSAGES: Final = 20
HISTORY_CHARS: Final = 6000
_MENTION: Final = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")


class IdentityLookup(Protocol):
    async def lookup(self, team_id: str, slack_user_id: str) -> Identity | None: ...


@dataclass(frozen=True)
class Audience:
    """Who reads a channel reply. ``viewers``: the FGA users of its linked human members;
    ``unlinked``: how many human members have no linked identity; ``known``: False when
    Slack could not tell who the members are."""

    channel_id: str
    viewers: tuple[str, ...]
    unlinked: int = 0
    known: bool = True

    @property
    def may_see_anything(self) -> bool:
        return self.known and self.unlinked == 0 and bool(self.viewers)


class ChannelAudiences:
    """Reads the audience of a channel (see the module docstring)."""

    def __init__(
        self, *, slack: AsyncWebClient, identities: IdentityLookup, concurrency: int = 8
    ) -> None:
        self._slack = slack
        self._identities = identities
        self._limit = asyncio.Semaphore(concurrency)
        # Bots stay bots: only that is remembered. A person's account is read every time
        # (a deactivated account may come back).
        self._bots: set[str] = set()

    async def of_channel(self, team_id: str, channel_id: str) -> Audience:
        unknown = Audience(channel_id=channel_id, viewers=(), known=False)
        try:
            members = await self._members(channel_id)
            if len(members) > MAX_MEMBERS:
                return unknown
            human = await asyncio.gather(*(self._is_human(m) for m in members))
        except _SLACK_ERRORS as exc:
            log.warning("the members of a channel could not be read: %s", type(exc).__name__)
            return unknown
        humans = [m for m, is_human in zip(members, human, strict=True) if is_human]
        identities = [await self._identities.lookup(team_id, human) for human in humans]
        viewers = tuple(dict.fromkeys(i.fga_user for i in identities if i is not None))
        unlinked = sum(1 for i in identities if i is None)
        return Audience(channel_id=channel_id, viewers=viewers, unlinked=unlinked)

    async def _members(self, channel_id: str) -> list[str]:
        members: list[str] = []
        cursor: str | None = None
        while len(members) <= MAX_MEMBERS:
            response = await self._slack.conversations_members(
                channel=channel_id, limit=1000, cursor=cursor
            )
            members += [str(m) for m in response.get("members") or []]
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return list(dict.fromkeys(members))

    async def _is_human(self, slack_user_id: str) -> bool:
        if slack_user_id in self._bots or slack_user_id == SLACKBOT:
            return False
        async with self._limit:
            try:
                response = await self._slack.users_info(user=slack_user_id)
            except SlackApiError as exc:
                if exc.response.get("error") in {"user_not_found", "user_not_visible"}:
                    # Someone Slack will not describe still reads the channel: a human
                    # whose identity is unknown, so counted as one who may see nothing.
                    return True
                raise
        user: dict[str, Any] = response.get("user") or {}
        if user.get("is_bot") or user.get("is_app_user"):
            self._bots.add(slack_user_id)
            return False
        return not user.get("deleted")


@dataclass(frozen=True, slots=True)
class Turn:
    """One earlier message of a thread: by a person, or by pmbot."""

    author: Literal["person", "pmbot"]
    text: str


class ThreadReader:
    """The messages of a thread before a given one (``conversations.replies``): the context
    of a follow-up question. Only what everyone in the conversation already sees (Slack
    never returns ephemeral messages there)."""

    def __init__(self, *, slack: AsyncWebClient) -> None:
        self._slack = slack

    async def before(
        self, channel_id: str, thread_ts: str, *, before_ts: str, bot_user_id: str | None
    ) -> tuple[Turn, ...]:
        """The last messages (at most ``HISTORY_MESSAGES``, ``HISTORY_CHARS`` characters)
        of the thread older than ``before_ts``, oldest first; none if Slack cannot say."""
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        try:
            for _ in range(5):
                response = await self._slack.conversations_replies(
                    channel=channel_id, ts=thread_ts, limit=200, cursor=cursor
                )
                found += [m for m in response.get("messages") or [] if isinstance(m, dict)]
                cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
                if not cursor:
                    break
        except _SLACK_ERRORS as exc:
            log.info("the thread could not be read: %s", type(exc).__name__)
            return ()
        turns: list[Turn] = []
        for message in found:
            ts = str(message.get("ts") or "")
            if not ts or _ts_key(ts) >= _ts_key(before_ts):
                continue
            text = _MENTION.sub("", str(message.get("text") or "")).strip()
            if not text:
                continue
            mine = bot_user_id is not None and message.get("user") == bot_user_id
            turns.append(Turn("pmbot" if mine else "person", text))
        return _bounded(turns[-HISTORY_MESSAGES:])


def _ts_key(ts: str) -> tuple[int, int]:
    seconds, _, fraction = ts.partition(".")
    try:
        return int(seconds), int(fraction.ljust(6, "0")[:6])
    except ValueError:
        return (0, 0)


def _bounded(turns: Sequence[Turn]) -> tuple[Turn, ...]:
    """The most recent turns that fit in ``HISTORY_CHARS``."""
    kept: list[Turn] = []
    size = 0
    for turn in reversed(turns):
        if size + len(turn.text) > HISTORY_CHARS:
            break
        kept.append(turn)
        size += len(turn.text)
    return tuple(reversed(kept))
