"""Answers to questions, on every surface that asks them: @mentions (``handlers.mentions``),
DMs (``handlers.messages``), the assistant pane (``handlers.assistant``) and ``/pm ask``
(``handlers.commands``); plus the 👍/👎 buttons under answers.

The answer service (``bot.knowledge.answers``) decides what an answer may use and who reads
it; this module only delivers it:

* a channel answer everyone may read is **streamed** into the question's thread
  (``chat.startStream`` / ``chat.appendStream`` / ``chat.stopStream``), its sources and
  buttons added when it stops;
* a channel answer that needs more than the channel may see goes to the asker alone
  (``chat.postEphemeral``) and the thread gets a note without content;
* in a DM or the assistant pane the answer is streamed into the conversation's thread
  (the pane shows "is thinking…" meanwhile); ``/pm ask`` answers through ``respond``,
  only visible to the asker.

Refusals (an empty or too long question, a missing permission, authorization unavailable)
and model failures are told in words from ``bot.messages``, to the asker alone.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from authz.ports import AuthzError
from bot import messages as words
from bot.errors import PermissionDenied, RelinkRequired
from bot.identity.model import Identity
from bot.identity.service import IdentityService
from bot.knowledge.answers import (
    Conversation,
    Draft,
    Prepared,
    UnusableQuestion,
    is_small_talk,
)
from bot.knowledge.feedback import Vote
from bot.messages import user_message
from bot.wiring import Deps
from handlers import blocks
from handlers.gate import identity_of, link_gate

log = logging.getLogger(__name__)

READ_PERMISSION: Final = "read:projects"
STREAM_FLUSH_CHARS: Final = 240
STREAM_FLUSH_SECONDS: Final = 0.4
_SLACK_ERRORS = (SlackApiError, SlackClientError, OSError, TimeoutError)
_FEEDBACK_ACTION = re.compile(f"^(?:{blocks.FEEDBACK_UP_ACTION}|{blocks.FEEDBACK_DOWN_ACTION})$")


@dataclass
class Where:
    """Where a question was asked and how to answer there.

    ``reply_thread``: the thread replies go to (None for ``/pm ask``, answered through
    ``respond``); ``notes_inline``: short replies (a greeting, a refusal) go to the
    conversation itself rather than that thread (a top-level DM). ``thinking`` /
    ``title``: the assistant pane's status and thread title.
    """

    conversation: Conversation
    asker_user_id: str
    reply_thread: str | None = None
    notes_inline: bool = False
    respond: AsyncRespond | None = None
    bot_user_id: str | None = None
    thinking: Callable[[], Awaitable[Any]] | None = None
    title: Callable[[str], Awaitable[Any]] | None = None


def command_where(command: dict[str, Any], respond: AsyncRespond) -> Where:
    """``/pm ask``: answered through ``respond``, for the asker alone, wherever it is run."""
    return Where(
        conversation=Conversation(
            team_id=str(command.get("team_id") or ""),
            channel_id=str(command.get("channel_id") or ""),
            shared=False,
        ),
        asker_user_id=str(command.get("user_id") or ""),
        respond=respond,
    )


def strip_mentions(text: str, bot_user_id: str | None) -> str:
    """The question of an @mention: the text without the mentions of the bot."""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", " ", text)
    return re.sub(r"[ \t]+", " ", text).strip()


async def answer(deps: Deps, asker: Identity, text: str, where: Where) -> None:
    """Answers ``text`` asked by ``asker`` at ``where`` (see the module docstring)."""
    shared = where.conversation.shared and where.respond is None
    if is_small_talk(text):
        await _tell_conversation(deps, where, words.small_talk_reply(public=shared))
        return
    try:
        IdentityService.require_permission(asker, READ_PERMISSION)
        if where.thinking is not None:
            await _quietly(where.thinking())
        prepared = await deps.answers.prepare(
            text, asker=asker, conversation=where.conversation, bot_user_id=where.bot_user_id
        )
    except UnusableQuestion as exc:
        await _tell_asker(
            deps, where, words.question_refusal(exc.problem.value, exc.length, exc.limit)
        )
        return
    except PermissionDenied:
        await _tell_asker(deps, where, words.ASK_READ_PERMISSION)
        return
    except (RelinkRequired, AuthzError) as exc:
        await _tell_asker(deps, where, user_message(exc))
        return
    if where.title is not None and not any(t.author == "person" for t in prepared.history):
        await _quietly(where.title(prepared.question[:80]))
    if not prepared.found:
        await _tell_conversation(deps, where, words.NOTHING_FOUND)
        return
    draft = deps.answers.draft(prepared)
    if where.respond is not None or prepared.withheld:
        answered = await _answer_whole(deps, where, prepared, draft)
        if answered and prepared.withheld and where.respond is None:
            await _tell_conversation(deps, where, words.withheld_note(where.asker_user_id))
        return
    await _answer_streamed(deps, where, prepared, draft)


async def _quietly(call: Awaitable[Any]) -> None:
    """A nicety (status, title) that must not stop the answer when Slack refuses it."""
    try:
        await call
    except _SLACK_ERRORS as exc:
        log.info("an assistant thread call failed: %s", type(exc).__name__)


async def _tell_asker(deps: Deps, where: Where, text: str) -> None:
    """A short message only the asker reads."""
    if where.respond is not None:
        await where.respond(text=text, response_type="ephemeral", replace_original=False)
        return
    conversation = where.conversation
    if conversation.shared:
        await deps.slack.chat_postEphemeral(
            channel=conversation.channel_id,
            user=where.asker_user_id,
            text=text,
            thread_ts=where.reply_thread,
        )
        return
    await deps.slack.chat_postMessage(
        channel=conversation.channel_id, text=text, thread_ts=_notes_thread(where)
    )


def _notes_thread(where: Where) -> str | None:
    return None if where.notes_inline else where.reply_thread


async def _tell_conversation(deps: Deps, where: Where, text: str) -> None:
    """A short message for whoever reads the conversation (the asker alone for
    ``/pm ask`` and DMs)."""
    if where.respond is not None:
        await _tell_asker(deps, where, text)
        return
    await deps.slack.chat_postMessage(
        channel=where.conversation.channel_id, text=text, thread_ts=_notes_thread(where)
    )


def _intro(draft: Draft) -> str:
    return f"{words.ANSWER_EXTRACT_INTRO}\n" if draft.extractive else ""


async def _answer_whole(deps: Deps, where: Where, prepared: Prepared, draft: Draft) -> bool:
    """The answer in one message for the asker alone; False when there was none to give
    (the asker is told why)."""
    written = await draft.whole()
    if draft.failure is not None and not written.strip():
        await _tell_asker(deps, where, words.model_failure(draft.failure.value, partial=False))
        return False
    text = _intro(draft) + written
    if draft.failure is not None:
        text += "\n\n" + words.model_failure(draft.failure.value, partial=True)
    answer_id = await deps.answers.record(prepared, draft)
    built = blocks.answer_blocks(
        text, draft.cited, answer_id=answer_id, private_note=prepared.withheld
    )
    plain = blocks.markdown_to_mrkdwn(text)
    if where.respond is not None:
        await where.respond(
            text=plain, blocks=built, response_type="ephemeral", replace_original=False
        )
        return True
    await deps.slack.chat_postEphemeral(
        channel=where.conversation.channel_id,
        user=where.asker_user_id,
        text=plain,
        blocks=built,
        thread_ts=where.reply_thread,
    )
    return True


async def _answer_streamed(deps: Deps, where: Where, prepared: Prepared, draft: Draft) -> None:
    assert where.reply_thread is not None
    stream = SlackStream(
        deps.slack,
        channel=where.conversation.channel_id,
        thread_ts=where.reply_thread,
        team_id=where.conversation.team_id,
        user_id=where.asker_user_id,
    )
    await stream.append(_intro(draft))
    async for piece in draft.stream():
        await stream.append(piece)
    if draft.failure is not None:
        note = words.model_failure(draft.failure.value, partial=bool(draft.text))
        await stream.append(f"\n\n{note}" if draft.text else note)
    answer_id = await deps.answers.record(prepared, draft)
    await stream.stop(blocks.answer_footer_blocks(draft.cited, answer_id))


class SlackStream:
    """Streams text into a new reply of a thread: ``chat.startStream`` with the first
    text, ``chat.appendStream`` at most every ``STREAM_FLUSH_SECONDS`` (or
    ``STREAM_FLUSH_CHARS`` characters), ``chat.stopStream`` with the closing blocks. When
    Slack refuses to stream, the whole text is posted once at the end instead."""

    def __init__(
        self,
        slack: AsyncWebClient,
        *,
        channel: str,
        thread_ts: str,
        team_id: str,
        user_id: str,
    ) -> None:
        self._slack = slack
        self._channel = channel
        self._thread = thread_ts
        self._team = team_id
        self._user = user_id
        self._ts: str | None = None
        self._pending = ""
        self._all = ""
        self._refused = False
        self._flushed_at = 0.0

    async def append(self, text: str) -> None:
        if not text:
            return
        self._pending += text
        self._all += text
        now = asyncio.get_running_loop().time()
        if self._refused:
            return
        if (
            self._ts is None
            or len(self._pending) >= STREAM_FLUSH_CHARS
            or now - self._flushed_at >= STREAM_FLUSH_SECONDS
        ):
            await self._flush()
            self._flushed_at = now

    async def _flush(self) -> None:
        if not self._pending:
            return
        text, self._pending = self._pending, ""
        try:
            if self._ts is None:
                started = await self._slack.chat_startStream(
                    channel=self._channel,
                    thread_ts=self._thread,
                    markdown_text=text,
                    recipient_team_id=self._team,
                    recipient_user_id=self._user,
                )
                self._ts = str(started["ts"])
            else:
                await self._slack.chat_appendStream(
                    channel=self._channel, ts=self._ts, markdown_text=text
                )
        except SlackApiError as exc:
            log.warning("streaming refused (%s): posting the answer whole", exc.response["error"])
            self._refused = True

    async def stop(self, closing: list[blocks.Block]) -> None:
        if not self._refused:
            if self._ts is None:
                await self._flush()
            if self._ts is not None and not self._refused:
                text, self._pending = self._pending, ""
                try:
                    await self._slack.chat_stopStream(
                        channel=self._channel,
                        ts=self._ts,
                        markdown_text=text or None,
                        blocks=closing or None,
                    )
                    return
                except SlackApiError as exc:
                    log.warning("chat.stopStream refused (%s)", exc.response["error"])
        # Part of the answer may have been streamed: what did not reach it is posted.
        text = self._pending if self._ts is not None else self._all
        built = [*blocks.answer_blocks(text, [], answer_id=None), *closing][:50]
        if built:
            await self._slack.chat_postMessage(
                channel=self._channel,
                thread_ts=self._thread,
                text=blocks.markdown_to_mrkdwn(text) or words.SOURCES_HEADING,
                blocks=built,
            )


def register(app: AsyncApp, deps: Deps) -> None:
    @app.action(_FEEDBACK_ACTION, middleware=[link_gate(deps)])
    async def on_feedback(
        ack: AsyncAck,
        action: dict[str, Any],
        context: AsyncBoltContext,
        respond: AsyncRespond,
    ) -> None:
        await ack()
        vote = Vote.UP if action.get("action_id") == blocks.FEEDBACK_UP_ACTION else Vote.DOWN
        outcome = await deps.answers.vote(
            str(action.get("value") or ""), voter=identity_of(context), vote=vote
        )
        await respond(
            text=words.FEEDBACK_OUTCOMES[outcome.value],
            response_type="ephemeral",
            replace_original=False,
        )
