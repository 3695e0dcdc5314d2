"""Requests to act, on every surface that takes them: the ``/pm`` subcommands of the
agent's tools (``events``, ``schedule``, ``post``, ``delete``) and requests in words in
mentions and DMs.

With ``OPENAI_MODEL`` set, a mention or DM that reads as a request to act (it starts with
a verb such as schedule, post, delete, create, update, list, show; or asks for the
asker's events) goes to the agent loop; without it, the deterministic parser reads the
same requests (``bot.agent.parser``). Anything else is a question, answered by the cited,
streamed answer path (``handlers.ask``), which keeps its audience rules.

**Who reads a reply.** In a channel every reply of the agent goes to the asker alone
(``chat.postEphemeral``), beside the request (in its thread only when it was asked in
one): tools read with the asker's rights, not the channel's. When it holds data from a
tool the thread gets a note without content. In a DM it is posted in
the conversation; for ``/pm`` it goes through ``respond``, only visible to the asker.

A tool that needs a connected account gets a Connect button; the request is kept and
answered on its own once the account is connected (``AgentService.resume``). Once clicked,
the button's message says where to finish (its link works once).
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncRespond

from bot import messages as words
from bot.agent.loop import AgentReply
from bot.agent.parser import COMMANDS, is_request_to_act, parse_command, parse_request
from bot.agent.registry import READ_ONLY_TOOLS
from bot.agent.runner import ToolOutcome
from bot.agent.tool import FailureCode
from bot.errors import PmbotError
from bot.identity.model import Identity
from bot.wiring import Deps
from handlers import ask, blocks

log = logging.getLogger(__name__)

SUBCOMMANDS = COMMANDS


async def command(
    deps: Deps, sub: str, rest: str, asker: Identity, command: dict[str, Any], respond: AsyncRespond
) -> None:
    """One agent subcommand of ``/pm``, answered to the asker alone."""
    where = ask.command_where(command, respond)
    try:
        call = parse_command(sub, rest, now=await deps.agent.now_for(asker))
    except PmbotError as error:
        await _send(deps, where, words.agent_refusal(error))
        return
    channel_id = where.conversation.channel_id or None
    outcome = await deps.agent.run(asker, call, channel_id=channel_id)
    await _deliver_outcome(deps, asker, where, outcome, request_text=None)


async def act(deps: Deps, asker: Identity, text: str, where: ask.Where) -> bool:
    """Handle ``text`` if it is a request to act; False when it is a question (the caller
    answers it)."""
    if len(text) > deps.settings.answer_max_question_chars:
        return False  # the answer path refuses it with a clear message
    channel_id = where.conversation.channel_id or None
    if deps.agent.has_model:
        if not is_request_to_act(text):
            return False
        reply = await deps.agent.converse(asker, text, channel_id=channel_id)
        await _deliver_reply(deps, asker, where, reply, request_text=text)
        return True
    try:
        call = parse_request(text, now=await deps.agent.now_for(asker))
    except PmbotError as error:
        await _send(deps, where, words.agent_refusal(error))
        return True
    if call is None:
        return False
    outcome = await deps.agent.run(asker, call, channel_id=channel_id)
    await _deliver_outcome(deps, asker, where, outcome, request_text=None)
    return True


async def _deliver_outcome(
    deps: Deps, asker: Identity, where: ask.Where, outcome: ToolOutcome, *, request_text: str | None
) -> None:
    if outcome.code is FailureCode.CONNECTION_REQUIRED:
        await _offer_connect(deps, asker, where, outcome, request_text=request_text)
        return
    data = outcome.ok and outcome.tool in READ_ONLY_TOOLS
    await _send(deps, where, outcome.text, private_data=data)


async def _deliver_reply(
    deps: Deps, asker: Identity, where: ask.Where, reply: AgentReply, *, request_text: str
) -> None:
    if reply.connect is not None:
        await _offer_connect(deps, asker, where, reply.connect, request_text=request_text)
        return
    await _send(deps, where, reply.text, private_data=reply.used_data)


async def _offer_connect(
    deps: Deps,
    asker: Identity,
    where: ask.Where,
    outcome: ToolOutcome,
    *,
    request_text: str | None,
) -> None:
    assert outcome.connection is not None
    channel_id = where.conversation.channel_id or None
    thread = _private_thread(where) if where.respond is None else None
    try:
        url = await deps.agent.connect_link(
            asker, outcome, channel_id=channel_id, thread_ts=thread, request_text=request_text
        )
    except PmbotError as error:
        await _send(deps, where, words.user_message(error))
        return
    built = blocks.connect_blocks(outcome.text, url, outcome.connection.value)
    await _send(deps, where, outcome.text, built=built)


async def _send(
    deps: Deps,
    where: ask.Where,
    text: str,
    *,
    private_data: bool = False,
    built: list[blocks.Block] | None = None,
) -> None:
    """``text`` for the asker alone (see the module docstring)."""
    shown = built if built is not None else blocks.agent_blocks(text)
    plain = blocks.markdown_to_mrkdwn(text)
    if where.respond is not None:
        await where.respond(
            text=plain, blocks=shown, response_type="ephemeral", replace_original=False
        )
        return
    conversation = where.conversation
    if conversation.shared:
        await deps.slack.chat_postEphemeral(
            channel=conversation.channel_id,
            user=where.asker_user_id,
            text=plain,
            blocks=shown,
            thread_ts=_private_thread(where),
        )
        if private_data:
            await deps.slack.chat_postMessage(
                channel=conversation.channel_id,
                text=words.agent_private_note(where.asker_user_id),
                thread_ts=where.reply_thread,
            )
        return
    await deps.slack.chat_postMessage(
        channel=conversation.channel_id, text=plain, blocks=shown, thread_ts=where.reply_thread
    )


def _private_thread(where: ask.Where) -> str | None:
    """Where a reply for the asker alone goes: in a shared conversation, beside the
    mention (in its thread when it was asked in one, else in the channel, where the asker
    is looking: an ephemeral message in the thread of a message with no replies is never
    seen); elsewhere the reply thread."""
    if where.conversation.shared:
        return where.conversation.thread_ts
    return where.reply_thread


def register(app: AsyncApp, deps: Deps) -> None:
    @app.action(blocks.CONNECT_ACTION)
    async def on_connect_click(ack: Any, body: dict[str, Any], respond: AsyncRespond) -> None:
        # The button is a link: the browser opens it. The message then says where to go on
        # instead of offering a link that works once (and would look unanswered after).
        await ack()
        actions = body.get("actions") or [{}]
        connection = str(actions[0].get("value") or "")
        if connection not in words.CONNECTION_NAMES:
            return
        text = words.connect_opened_text(connection)
        await respond(text=text, blocks=blocks.agent_blocks(text), replace_original=True)
