"""Block Kit builders shared by the handlers (pure functions, no I/O). The words come from
``bot.messages``; this module only arranges them."""

from __future__ import annotations

from typing import Any

from bot import messages as words
from bot.messages import COMMANDS, HELP_FOOTER, HELP_TITLE

Block = dict[str, Any]


def header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:150]}}


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:3000]}]}


def divider() -> Block:
    return {"type": "divider"}


def button(text: str, action_id: str, value: str = "", style: str | None = None) -> Block:
    element: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": text[:75]},
        "action_id": action_id,
    }
    if value:
        element["value"] = value
    if style:
        element["style"] = style
    return element


def actions(*elements: Block, block_id: str | None = None) -> Block:
    block: Block = {"type": "actions", "elements": list(elements)}
    if block_id:
        block["block_id"] = block_id
    return block


def _command_lines() -> str:
    return "\n".join(f"• `{cmd}`: {what}" for cmd, what in COMMANDS)


def help_blocks(intro: str | None = None) -> list[Block]:
    blocks: list[Block] = []
    if intro:
        blocks.append(section(intro))
    blocks += [
        header(HELP_TITLE),
        section(f"*{words.COMMANDS_HEADING}*\n{_command_lines()}"),
        context(HELP_FOOTER),
    ]
    return blocks


def link_button(url: str, text: str = words.LINK_BUTTON) -> Block:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "url": url,
        "action_id": "open_link_url",
        "style": "primary",
    }


def link_prompt_blocks(url: str, ttl_seconds: int) -> list[Block]:
    return [section(words.link_prompt_text(url, ttl_seconds)), actions(link_button(url))]


def relink_question_blocks(linked_as: str) -> list[Block]:
    return [
        section(words.relink_question_text(linked_as)),
        actions(button(words.LINK_ANOTHER_BUTTON, "link_replace", style="primary")),
    ]


def confirm_link_blocks(request_id: str, who: str, replaces: str | None) -> list[Block]:
    return [
        section(words.confirm_link_text(who, replaces)),
        actions(
            button(words.confirm_button(who), "link_confirm", value=request_id, style="primary"),
            button(words.CANCEL_BUTTON, "link_cancel", value=request_id, style="danger"),
            block_id="link_confirmation",
        ),
    ]


def home_view(user_id: str, *, linked_as: str | None, link_url: str | None = None) -> Block:
    if linked_as:
        status = [section(words.home_linked(linked_as)), context(words.HOME_LINKED_HINT)]
    else:
        status = [section(words.HOME_NOT_LINKED)]
        if link_url:
            status.append(actions(link_button(link_url, words.HOME_OPEN_SIGN_IN)))
        else:
            status.append(actions(button(words.LINK_BUTTON, "link_account", style="primary")))
    return {
        "type": "home",
        "blocks": [
            header("pmbot"),
            section(words.home_greeting(user_id)),
            divider(),
            *status,
            divider(),
            section(f"*{words.COMMANDS_HEADING}*\n{_command_lines()}"),
            context(words.HOME_FOOTER),
        ],
    }
