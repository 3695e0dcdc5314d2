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


def capabilities_reply(*, public: bool) -> str:
    if public:
        return (
            "Hi! I'm pmbot, a project manager in Slack. I can't answer project questions, "
            "schedule meetings or run approvals yet, and I won't pretend to. "
            "`/pm help` lists what works today."
        )
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


def _duration(seconds: int) -> str:
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def link_prompt_text(url: str, ttl_seconds: int) -> str:
    return (
        "Before I can help, link your Slack account to your company account: "
        f"<{url}|link your account> (the link works once, for {_duration(ttl_seconds)})."
    )


def link_prompt_blocks(url: str, ttl_seconds: int) -> list[Block]:
    return [section(link_prompt_text(url, ttl_seconds)), actions(link_button(url))]


def relink_question_text(linked_as: str) -> str:
    return (
        f"You are linked as *{linked_as}*. Do you want to replace it with another account? "
        "Your current link stays until you confirm the new one."
    )


def relink_question_blocks(linked_as: str) -> list[Block]:
    return [
        section(relink_question_text(linked_as)),
        actions(button("Link another account", "link_replace", style="primary")),
    ]


def confirm_link_text(who: str, replaces: str | None) -> str:
    if replaces:
        return (
            f"You are linked as *{replaces}*. Replace it with *{who}*? Only confirm if you "
            "just signed in yourself."
        )
    return f"Link *{who}* to your Slack account? Only confirm if you just signed in yourself."


def confirm_link_blocks(request_id: str, who: str, replaces: str | None) -> list[Block]:
    return [
        section(confirm_link_text(who, replaces)),
        actions(
            button(f"Link {who}", "link_confirm", value=request_id, style="primary"),
            button("Cancel", "link_cancel", value=request_id, style="danger"),
            block_id="link_confirmation",
        ),
    ]


def linked_text(who: str) -> str:
    return f":white_check_mark: Your Slack account is now linked to *{who}*. Try `/pm whoami`."


def link_cancelled_text() -> str:
    return "Linking cancelled: nothing was linked, and the sign-in was revoked."


def whoami_text(
    who: str, sub: str, permissions: list[str], *, needs_relink: bool, membership: str
) -> str:
    if needs_relink:
        perms = "none: they could not be refreshed. Run `/pm link` to link your account again."
    else:
        perms = ", ".join(f"`{p}`" for p in permissions) or "none"
    text = f"You are linked as *{who}* (`{sub}`).\nPermissions: {perms}"
    if membership != "member":
        text += (
            "\nAs a guest or a member of another organisation you are not given access to "
            "this workspace's projects; a project owner can share them with you."
        )
    return text


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
