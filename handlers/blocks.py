"""Block Kit builders shared by the handlers (pure functions, no I/O)."""

from __future__ import annotations

from typing import Any

Block = dict[str, Any]

COMMANDS: list[tuple[str, str]] = [
    ("/pm help", "Show this help."),
    ("/pm link", "Link your Slack account to your company (Auth0) account."),
    ("/pm whoami", "Show the account you are linked to and its permissions."),
    ("/pm unlink", "Unlink your account (revokes pmbot's access)."),
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
            "Not available yet: answering project questions from documents, scheduling "
            "meetings and approvals. I'll say so when you ask."
        ),
    ]
    return blocks


def help_text() -> str:
    return "pmbot commands: " + ", ".join(cmd for cmd, _ in COMMANDS)


def capabilities_reply() -> str:
    return (
        "Hi! I'm pmbot, your project manager in Slack. Your account is linked, so I know who "
        "you are (`/pm whoami`). I can't answer project questions, schedule meetings or run "
        "approvals yet, and I won't pretend to."
    )


def link_button(url: str, text: str = "Link your account") -> Block:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "url": url,
        "action_id": "open_link_url",
        "style": "primary",
    }


def link_prompt_text(url: str) -> str:
    return (
        "Before I can help, link your Slack account to your company account: "
        f"<{url}|link your account> (the link works once, for 10 minutes)."
    )


def link_prompt_blocks(url: str) -> list[Block]:
    return [section(link_prompt_text(url)), actions(link_button(url))]


def whoami_text(email: str | None, sub: str, permissions: list[str]) -> str:
    perms = ", ".join(f"`{p}`" for p in permissions) or "none"
    return f"You are linked as *{email or sub}* (`{sub}`).\nPermissions: {perms}"


def home_view(user_id: str, *, linked_as: str | None, link_url: str | None = None) -> Block:
    if linked_as:
        status = [
            section(f":white_check_mark: Linked as *{linked_as}*."),
            context("`/pm whoami` shows your permissions; `/pm unlink` removes the link."),
        ]
    else:
        status = [section(":warning: Your Slack account is not linked yet.")]
        if link_url:
            status.append(actions(link_button(link_url, "Open the sign-in page")))
        else:
            status.append(actions(button("Link your account", "link_account", style="primary")))
    return {
        "type": "home",
        "blocks": [
            header("pmbot"),
            section(f"Hello <@{user_id}>! I'm your project manager in Slack."),
            divider(),
            *status,
            divider(),
            section("*Commands*\n" + "\n".join(f"• `{c}`: {w}" for c, w in COMMANDS)),
            context("Mention me in a channel or send me a DM; type `/pm help` anywhere."),
        ],
    }
