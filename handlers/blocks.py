"""Block Kit builders shared by the handlers (pure functions, no I/O). The words come from
``bot.messages``; this module only arranges them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from bot import messages as words
from bot.knowledge.answers import Source
from bot.messages import COMMANDS, HELP_FOOTER, HELP_TITLE
from bot.projects.values import Members, ProjectList, ProjectStatus, TaskItem, TaskList

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


def home_view(
    user_id: str,
    *,
    linked_as: str | None,
    link_url: str | None = None,
    approvals: Sequence[Block] = (),
) -> Block:
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
            *approvals,
            divider(),
            section(f"*{words.COMMANDS_HEADING}*\n{_command_lines()}"),
            context(words.HOME_FOOTER),
        ],
    }


# -- projects and tasks -------------------------------------------------------------------


def _sections(lines: list[str]) -> list[Block]:
    """Lines packed into as few sections as Slack's 3000-character limit allows."""
    built: list[Block] = []
    chunk = ""
    for line in lines:
        if chunk and len(chunk) + 1 + len(line) > 3000:
            built.append(section(chunk))
            chunk = ""
        chunk = f"{chunk}\n{line}" if chunk else line
    if chunk:
        built.append(section(chunk))
    return built


def projects_blocks(found: ProjectList) -> tuple[str, list[Block]]:
    lines = [words.project_line(p.name, p.role.value, p.approver) for p in found.projects]
    text = words.projects_text(lines)
    built = [header(words.PROJECTS_HEADING), *_sections(lines)] if lines else [section(text)]
    if found.incomplete:
        built.append(context(words.SOME_NOT_CHECKED))
    return text, built


def members_blocks(found: Members) -> tuple[str, list[Block]]:
    lines = [
        words.member_line(m.slack_user_id, m.label, [r.value for r in m.roles], pending=m.pending)
        for m in found.members
    ]
    heading = words.MEMBERS_HEADING.format(project=found.project)
    return words.members_text(found.project, lines), [header(heading), *_sections(lines)]


def _task_line(task: TaskItem, *, with_project: bool = True) -> str:
    assignee = None
    if task.assignee is not None:
        assignee = words.assignee_text(
            task.assignee.slack_user_id, task.assignee.label, pending=task.assignee.pending
        )
    return words.task_line(
        task.id,
        task.title,
        task.project,
        assignee=assignee,
        due=task.due.isoformat() if task.due else None,
        overdue=task.overdue,
        with_project=with_project,
    )


def tasks_blocks(found: TaskList) -> tuple[str, list[Block]]:
    heading = words.tasks_heading(found.project, mine=found.mine)
    lines = [_task_line(t, with_project=found.project is None) for t in found.tasks]
    text = words.tasks_text(heading, lines)
    built: list[Block] = [section(f"*{heading}*"), *_sections(lines)] if lines else [section(text)]
    notes = []
    if found.truncated:
        notes.append(words.TASKS_TRUNCATED.format(shown=len(found.tasks)))
    if found.incomplete:
        notes.append(words.SOME_NOT_CHECKED)
    built += [context(note) for note in notes]
    return "\n".join([text, *notes]), built


def status_blocks(found: ProjectStatus) -> tuple[str, list[Block]]:
    summary = words.status_summary(found.open, found.done, found.overdue_count)
    parts: list[str] = []
    if found.overdue:
        lines = [_task_line(t, with_project=False) for t in found.overdue]
        parts.append(f"*{words.STATUS_OVERDUE}*\n" + "\n".join(lines))
    if found.next_due:
        lines = [_task_line(t, with_project=False) for t in found.next_due]
        parts.append(f"*{words.STATUS_NEXT}*\n" + "\n".join(lines))
    if not parts:
        parts.append(words.STATUS_NOTHING_DUE)
    heading = words.STATUS_HEADING.format(project=found.project)
    text = words.status_text(found.project, summary, parts)
    return text, [header(heading), section(summary), *_sections(parts)]


# -- answers ------------------------------------------------------------------------------

FEEDBACK_UP_ACTION = "answer_feedback_up"
FEEDBACK_DOWN_ACTION = "answer_feedback_down"
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")


def markdown_to_mrkdwn(text: str) -> str:
    """A written answer (Markdown, made inert by the answer service) in Slack's mrkdwn:
    ``**bold**`` becomes ``*bold*``; the rest reads the same."""
    return _BOLD.sub(r"*\1*", text)


def sources_blocks(sources: Sequence[Source]) -> list[Block]:
    if not sources:
        return []
    lines = [words.source_line(s.number, s.title, s.url, s.document_id) for s in sources]
    return [context(f"*{words.SOURCES_HEADING}*"), *_sections(lines)]


def feedback_block(answer_id: str) -> Block:
    return actions(
        button(words.FEEDBACK_UP, FEEDBACK_UP_ACTION, value=answer_id),
        button(words.FEEDBACK_DOWN, FEEDBACK_DOWN_ACTION, value=answer_id),
        block_id=f"answer_feedback_{answer_id}",
    )


def answer_footer_blocks(sources: Sequence[Source], answer_id: str | None) -> list[Block]:
    """What follows an answer's text: its sources, then the 👍/👎 buttons."""
    built = sources_blocks(sources)
    if answer_id:
        built.append(feedback_block(answer_id))
    return built


def answer_blocks(
    text: str,
    sources: Sequence[Source],
    *,
    answer_id: str | None,
    private_note: bool = False,
) -> list[Block]:
    """A whole answer in one message (not streamed): its text, a note when only the asker
    may see it, its sources and the feedback buttons. At most 50 blocks, as Slack allows."""
    built = _sections(markdown_to_mrkdwn(text).split("\n"))[:30]
    if private_note:
        built.append(context(words.ANSWER_PRIVATE_NOTE))
    return [*built, *answer_footer_blocks(sources, answer_id)][:50]


# -- the agent ----------------------------------------------------------------------------

CONNECT_ACTION = "open_connect_url"


def connect_blocks(text: str, url: str, connection: str) -> list[Block]:
    """A tool that needs a connected account: why, and the Connect button (a link)."""
    button = {
        **link_button(url, words.connect_button_text(connection)),
        "action_id": CONNECT_ACTION,
        "value": connection,
    }
    return [section(text), actions(button)]


def agent_blocks(text: str) -> list[Block]:
    """An agent's reply (mrkdwn; model text already made inert) in sections."""
    return _sections(markdown_to_mrkdwn(text).split("\n"))[:45]


# -- approvals ----------------------------------------------------------------------------

APPROVAL_APPROVE = "approval_approve"
APPROVAL_DENY = "approval_deny"
APPROVAL_CANCEL = "approval_cancel"
APPROVAL_ASK_AGAIN = "approval_ask_again"
_ASK_AGAIN_AFTER = frozenset({"denied", "expired", "cancelled", "failed"})


def approver_dm_blocks(text: str, approval_id: str, *, status: str) -> list[Block]:
    """The approver's DM: what, to what, by whom, until when; Approve / Deny while it is
    pending, Deny alone while somebody confirms, nothing once it is over."""
    built = [section(text)]
    if status == "pending":
        built.append(
            actions(
                button(words.APPROVE_BUTTON, APPROVAL_APPROVE, approval_id, "primary"),
                button(words.DENY_BUTTON, APPROVAL_DENY, approval_id, "danger"),
                block_id=f"approval_{approval_id}",
            )
        )
    elif status == "confirming":
        built.append(
            actions(
                button(words.DENY_BUTTON, APPROVAL_DENY, approval_id, "danger"),
                block_id=f"approval_{approval_id}",
            )
        )
    return built


def requester_blocks(text: str, approval_id: str, *, status: str) -> list[Block]:
    """The requester's message: Cancel while open, Ask again after a denial or expiry."""
    built = [section(text)]
    if status in ("pending", "confirming"):
        built.append(
            actions(
                button(words.CANCEL_REQUEST_BUTTON, APPROVAL_CANCEL, approval_id),
                block_id=f"approval_request_{approval_id}",
            )
        )
    elif status in _ASK_AGAIN_AFTER:
        built.append(
            actions(
                button(words.ASK_AGAIN_BUTTON, APPROVAL_ASK_AGAIN, approval_id, "primary"),
                block_id=f"approval_request_{approval_id}",
            )
        )
    return built


def home_approvals_blocks(to_approve: Sequence[str], requested: Sequence[str]) -> list[Block]:
    """The App Home's lists of open approvals (nothing when there are none)."""
    built: list[Block] = []
    if to_approve:
        built += [
            divider(),
            section(f"*{words.APPROVALS_TO_APPROVE_HEADING}*"),
            *_sections(list(to_approve)),
        ]
    if requested:
        built += [
            divider(),
            section(f"*{words.APPROVALS_REQUESTED_HEADING}*"),
            *_sections(list(requested)),
        ]
    return built


def audit_blocks(heading: str, lines: Sequence[str]) -> list[Block]:
    return [header(heading), *_sections(list(lines))][:50]
