"""Block Kit builders shared by the handlers (pure functions, no I/O)."""

from __future__ import annotations

from typing import Any

Block = dict[str, Any]

COMMANDS: list[tuple[str, str]] = [
    ("/pm help", "Show this help."),
]


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


def help_blocks(intro: str | None = None) -> list[Block]:
    lines = "\n".join(f"• `{cmd}`: {what}" for cmd, what in COMMANDS)
    blocks: list[Block] = []
    if intro:
        blocks.append(section(intro))
    blocks += [
        header("pmbot: your project manager in Slack"),
        section(f"*Commands*\n{lines}"),
        context(
            "Not available yet: linking your account, answering project questions from "
            "documents, scheduling meetings and approvals. I'll say so when you ask."
        ),
    ]
    return blocks


def help_text() -> str:
    return "pmbot commands: " + ", ".join(cmd for cmd, _ in COMMANDS)


def capabilities_reply() -> str:
    return (
        "Hi! I'm pmbot, your project manager in Slack. Right now I can show my help "
        "(`/pm help`). I can't answer project questions, schedule meetings or run approvals "
        "yet, and I won't pretend to."
    )


def home_view(user_id: str) -> Block:
    return {
        "type": "home",
        "blocks": [
            header("pmbot"),
            section(f"Hello <@{user_id}>! I'm your project manager in Slack."),
            divider(),
            section("*What I can do today*\n• `/pm help`: list my commands"),
            context("Mention me in a channel or send me a DM; type `/pm help` anywhere."),
        ],
    }
