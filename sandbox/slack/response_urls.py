"""The ``response_url``s handed to the bot, and how long they last (in memory only: one
from before a restart answers ``expired_url``)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from .common import SandboxError

RESPONSE_URL_TTL = 30 * 60.0
RESPONSE_URL_MAX_USES = 5


@dataclass
class ResponseUrl:
    """A ``response_url`` handed to the bot with a slash command or an interaction.

    ``original_ts`` is the message that ``replace_original``/``delete_original`` act on: the
    message holding the clicked button, or for a slash command the last response posted.
    """

    token: str
    user_id: str
    channel_id: str
    created: float
    original_ts: str | None = None
    original_ephemeral: bool = False
    thread_ts: str | None = None
    uses: int = 0


class ResponseUrls:
    """The response URLs handed out, by token."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._by_token: dict[str, ResponseUrl] = {}

    def new(
        self,
        *,
        user_id: str,
        channel_id: str,
        original_ts: str | None = None,
        original_ephemeral: bool = False,
        thread_ts: str | None = None,
    ) -> ResponseUrl:
        ctx = ResponseUrl(
            token=secrets.token_urlsafe(24),
            user_id=user_id,
            channel_id=channel_id,
            created=self._monotonic(),
            original_ts=original_ts,
            original_ephemeral=original_ephemeral,
            thread_ts=thread_ts,
        )
        self._by_token[ctx.token] = ctx
        return ctx

    def get(self, token: str) -> ResponseUrl:
        """A usable response URL: ``expired_url`` after 30 minutes, ``used_url`` after 5 uses.

        The caller counts a use (``uses += 1``) once a response was applied.
        """
        ctx = self._by_token.get(token)
        if ctx is None:
            raise SandboxError("expired_url", "unknown response_url")
        if self._monotonic() - ctx.created > RESPONSE_URL_TTL:
            raise SandboxError("expired_url", "the response_url is older than 30 minutes")
        if ctx.uses >= RESPONSE_URL_MAX_USES:
            raise SandboxError("used_url", "the response_url was already used 5 times")
        return ctx
