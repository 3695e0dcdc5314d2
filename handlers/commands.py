"""The ``/pm`` slash command: parse the subcommand, call one service, render."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond

from bot import messages as words
from bot.errors import InputTooLong, PmbotError, UnknownCommand
from bot.identity.model import Identity
from bot.messages import user_message
from bot.wiring import Deps
from handlers import agent, ask, blocks, projects
from handlers.gate import identity_of, link_gate
from handlers.home import publish_home

MAX_COMMAND_TEXT = 4000


def parse(text: str) -> tuple[str, str]:
    """Split ``/pm`` text into (subcommand, rest); empty text means help."""
    stripped = text.strip()
    if not stripped:
        return "help", ""
    head, _, rest = stripped.partition(" ")
    return head.lower(), rest.strip()


def register(app: AsyncApp, deps: Deps) -> None:
    @app.command("/pm", middleware=[link_gate(deps)])
    async def pm_command(
        ack: AsyncAck, respond: AsyncRespond, command: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        await ack()
        text = str(command.get("text") or "")
        team_id, user_id = str(command.get("team_id", "")), str(command.get("user_id", ""))
        if len(text) > MAX_COMMAND_TEXT:
            await respond(user_message(InputTooLong(len(text), MAX_COMMAND_TEXT)))
            return
        sub, rest = parse(text)
        if sub == "unlink":
            removed = await deps.identity.unlink(team_id, user_id)
            await respond(words.UNLINKED if removed else words.NOT_LINKED)
            if removed:
                await publish_home(deps, team_id, user_id)
            return
        if sub == "link":
            await _link(deps, team_id, user_id, respond, str(command.get("response_url") or ""))
            return
        linked = identity_of(context)
        if sub == "whoami":
            await respond(
                words.whoami_text(
                    linked.display,
                    linked.sub,
                    sorted(linked.permissions),
                    needs_relink=linked.needs_relink,
                    membership=linked.membership.value,
                )
            )
            return
        if sub == "help":
            await respond(text=words.help_text(), blocks=blocks.help_blocks())
            return
        if sub in projects.SUBCOMMANDS:
            await projects.run(deps, sub, rest, linked, respond)
            return
        if sub in agent.SUBCOMMANDS:
            await agent.command(deps, sub, rest, linked, command, respond)
            return
        if sub == "audit":
            await _audit(deps, linked, rest, respond)
            return
        if sub == "ask":
            await ask.answer(deps, linked, rest, ask.command_where(command, respond))
            return
        intro = user_message(UnknownCommand(sub))
        await respond(text=intro, blocks=blocks.help_blocks(intro))


async def _audit(deps: Deps, linked: Identity, rest: str, respond: AsyncRespond) -> None:
    """``/pm audit [NAME]``: project owners read its audit log, newest first."""
    name = rest.strip().strip('"“”').strip() or None
    try:
        page = await deps.approvals.audit_for(linked, name)
    except PmbotError as exc:
        await respond(user_message(exc))
        return
    label = f"*{words.esc(page.project)}*" if page.project else words.AUDIT_ALL
    if not page.records:
        await respond(words.AUDIT_EMPTY.format(project=label))
        return
    lines = [
        words.audit_line(r.at, r.actor_slack_id, r.action, r.outcome, r.reason)
        for r in page.records
    ]
    heading = words.AUDIT_HEADING.format(project=page.project or words.AUDIT_ALL)
    await respond(text="\n".join([heading, *lines]), blocks=blocks.audit_blocks(heading, lines))


async def _link(
    deps: Deps, team_id: str, user_id: str, respond: AsyncRespond, response_url: str
) -> None:
    linked = await deps.identity.lookup(team_id, user_id)
    if linked is not None:
        # Ask before replacing a link: a stray /pm link must not cost the current one.
        await respond(
            text=words.relink_question_text(linked.display),
            blocks=blocks.relink_question_blocks(linked.display),
        )
        return
    ttl = deps.settings.link_ttl_seconds
    url = await deps.identity.start_link(team_id, user_id, prompt_url=response_url or None)
    await respond(text=words.link_prompt_text(url, ttl), blocks=blocks.link_prompt_blocks(url, ttl))
