"""Every sentence a person reads, in one place: Slack messages and blocks
(``handlers.blocks`` arranges them), the linking pages (``bot.identity.pages``) and the
text for each domain error (:func:`user_message`, installed once as the app's error
handler). Nothing else writes words for people.

Longer than the usual module on purpose: keeping every sentence in one file is what lets
a reader check the product's voice and a reviewer check that no wording lives in code. It
is organised in sections, one per feature."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from authz.ports import AuthzEvaluationError, AuthzUnavailable
from bot.errors import (
    AmbiguousPerson,
    ApprovalProblem,
    ApprovalRefused,
    ApprovedActionInvalid,
    AuditNotAllowed,
    CommandHint,
    DueDateInPast,
    InputTooLong,
    InvalidDueDate,
    InvalidProjectName,
    InvalidTaskTitle,
    LastOwner,
    MalformedCommand,
    NameProblem,
    NoProjectRole,
    NotAPerson,
    NotLinked,
    PermissionDenied,
    PersonNotFound,
    ProjectAction,
    ProjectActionDenied,
    ProjectNameTaken,
    ProjectNotFound,
    RelinkRequired,
    ServiceUnavailable,
    TaskActionDenied,
    TaskNotFound,
    UnknownCommand,
    UnknownRole,
    Usage,
)
from bot.identity.model import LinkFailure

GENERIC_FAILURE = (
    ":warning: Something went wrong on my side and nothing was changed. Please try again; "
    "if it keeps happening, tell your pmbot admin."
)


def user_message(error: BaseException) -> str:
    """User-facing text for ``error``; unknown errors get a generic, leak-free message."""
    if isinstance(error, AuthzUnavailable | AuthzEvaluationError):
        return (
            ":lock: Authorization is unavailable right now, so I can't check what you may "
            "see or do. Nothing was shown or changed. Please try again in a moment."
        )
    if isinstance(error, RelinkRequired):
        return (
            ":key: I couldn't refresh your permissions, so you have none right now. "
            "Run `/pm link` to link your account again."
        )
    if isinstance(error, PermissionDenied):
        return ":no_entry: You don't have permission to do that."
    if isinstance(error, NotLinked):
        return "Please link your account first: run `/pm link`."
    if isinstance(error, UnknownCommand):
        return f"I don't know the command `{error.command}`. Here is what I can do:"
    if isinstance(error, InputTooLong):
        return f"That message is too long ({error.length} characters; the limit is {error.limit})."
    if isinstance(error, ApprovalRefused | ApprovedActionInvalid):
        return approval_refusal(error)
    if isinstance(error, AuditNotAllowed):
        if error.project is None:
            return AUDIT_NO_PROJECTS
        return AUDIT_NOT_OWNER.format(project=f"*{esc(error.project)}*")
    if isinstance(error, ServiceUnavailable):
        return (
            f":warning: {error.service} is unreachable right now. Nothing was changed; "
            "please try again in a moment."
        )
    return GENERIC_FAILURE


# -- help and the App Home ----------------------------------------------------------------

COMMANDS: list[tuple[str, str]] = [
    ("/pm help", "Show this help."),
    ("/pm link", "Link your Slack account to your company (Auth0) account."),
    ("/pm whoami", "Show the account you are linked to and its permissions."),
    ("/pm unlink", "Unlink your account (revokes pmbot's access)."),
    (
        "/pm ask QUESTION",
        "Ask about your projects: I answer from the documents you may read, with their "
        "sources (only you see it).",
    ),
    ("/pm projects", "List the projects you can see in this workspace, with your role."),
    ("/pm project new NAME", "Create a project; you become its owner."),
    (
        "/pm project share NAME @person ROLE",
        "Give someone a role on a project: owner, editor, viewer or approver.",
    ),
    ("/pm project unshare NAME @person", "Take every role on a project away from someone."),
    ("/pm project members NAME", "Show who has which role on a project."),
    ("/pm status NAME", "A project's open and done tasks, what is overdue and what is due next."),
    ("/pm tasks [NAME] [mine]", "List the open tasks you can see; `mine`: only yours."),
    (
        '/pm task add NAME "title" [@person] [due DATE]',
        "Add a task. DATE: YYYY-MM-DD, today, tomorrow or a weekday.",
    ),
    ("/pm task done ID", "Mark a task done."),
    ("/pm audit [NAME]", "The audit log of your projects (owners only), newest first."),
]


def help_text() -> str:
    return "pmbot commands: " + ", ".join(cmd for cmd, _ in COMMANDS)


def duration(seconds: int) -> str:
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def link_prompt_text(url: str, ttl_seconds: int) -> str:
    return (
        "Before I can help, link your Slack account to your company account: "
        f"<{url}|link your account> (the link works once, for {duration(ttl_seconds)})."
    )


def relink_question_text(linked_as: str) -> str:
    return (
        f"You are linked as *{linked_as}*. Do you want to replace it with another account? "
        "Your current link stays until you confirm the new one."
    )


def confirm_link_text(who: str, replaces: str | None) -> str:
    if replaces:
        return (
            f"You are linked as *{replaces}*. Replace it with *{who}*? Only confirm if you "
            "just signed in yourself."
        )
    return f"Link *{who}* to your Slack account? Only confirm if you just signed in yourself."


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


HELP_TITLE = "pmbot: your project manager in Slack"
COMMANDS_HEADING = "Commands"
HELP_FOOTER = (
    "Ask me about your projects anywhere: mention me in a channel, send me a DM, open my "
    "assistant pane or use `/pm ask`. Ask me to act too (`@pmbot schedule a review of Apollo "
    "next Tuesday at 15:00 with bob`): I act as you, and anything destructive waits for an "
    "approval."
)
LINK_BUTTON = "Link your account"
LINK_ANOTHER_BUTTON = "Link another account"
CANCEL_BUTTON = "Cancel"
HOME_NOT_LINKED = ":warning: Your Slack account is not linked yet."
HOME_OPEN_SIGN_IN = "Open the sign-in page"
HOME_LINKED_HINT = "`/pm whoami` shows your permissions; `/pm unlink` removes the link."
HOME_FOOTER = "Mention me in a channel or send me a DM; type `/pm help` anywhere."
PROMPT_CANCELLED = "This link was not used: nothing was linked. Run `/pm link` for a new one."


def prompt_used(who: str) -> str:
    return f":white_check_mark: Done: you are linked as *{who}*."


UNLINKED = "Your account is unlinked and pmbot's access was revoked."
NOT_LINKED = "Your account was not linked."


def confirm_button(who: str) -> str:
    return f"Link {who}"


def home_linked(who: str) -> str:
    return f":white_check_mark: Linked as *{who}*."


def home_greeting(user_id: str) -> str:
    return f"Hello <@{user_id}>! I'm your project manager in Slack."


# What the person reads in Slack when a link confirmation cannot be used.
LINK_REFUSALS: dict[LinkFailure, str] = {
    LinkFailure.NOT_YOURS: "This confirmation is not for you; nothing was changed.",
    LinkFailure.CONFIRM_EXPIRED: (
        "This sign-in was not confirmed in time, so nothing was linked. Run `/pm link` to "
        "start again."
    ),
    LinkFailure.STATE_USED: "This sign-in was already confirmed or cancelled.",
    LinkFailure.CANCELLED: "This sign-in was cancelled; nothing was linked.",
    LinkFailure.IDENTITY_TAKEN: (
        "That account is already linked to another Slack user in this workspace, so "
        "nothing was linked. Unlink it there first (`/pm unlink`)."
    ),
    LinkFailure.IDENTITY_UNSUPPORTED: (
        "I could not record that account, so nothing was linked. Please tell your pmbot admin."
    ),
}
LINK_REFUSED = "This confirmation cannot be used."


# -- the linking pages (HTML: ``<code>`` is markup, everything else is escaped text) ------

AGAIN = "Run <code>/pm link</code> in Slack for a new link."
PAGE_REASONS: dict[LinkFailure, str] = {
    LinkFailure.STATE_UNKNOWN: f"This link is not valid. {AGAIN}",
    LinkFailure.STATE_USED: f"This link was already used. {AGAIN}",
    LinkFailure.STATE_EXPIRED: f"This link has expired. {AGAIN}",
    LinkFailure.STATE_NOT_STARTED: (
        "This sign-in was not started from a pmbot link. Nothing was linked."
    ),
    LinkFailure.BROWSER_MISMATCH: (
        "This sign-in was started in another browser. Open the link from Slack in this "
        "browser. Nothing was linked."
    ),
    LinkFailure.FORGED_REQUEST: (
        "This request did not come from pmbot's own page, so it was refused and nothing "
        "was linked. Open the link from Slack again and press the button there."
    ),
    LinkFailure.CODE_REJECTED: (
        "Auth0 did not accept this sign-in. Nothing was linked; please try again."
    ),
    LinkFailure.NO_ID_TOKEN: "Auth0 returned no identity token. Nothing was linked.",
    LinkFailure.ID_TOKEN_INVALID: (
        "The identity token from Auth0 could not be verified. Nothing was linked."
    ),
    LinkFailure.IDENTITY_TAKEN: (
        "This Auth0 account is already linked to another Slack user in this workspace. "
        "Unlink it there first (<code>/pm unlink</code>)."
    ),
    LinkFailure.IDENTITY_UNSUPPORTED: (
        "pmbot could not record this Auth0 identity. Nothing was linked; please tell your "
        "pmbot admin."
    ),
    LinkFailure.LOGIN_CANCELLED: "Sign-in was cancelled. Nothing was linked.",
    LinkFailure.MISSING_PARAMETERS: "The sign-in response is incomplete. Nothing was linked.",
}
PAGE_UNAVAILABLE = (
    "{service} is unreachable right now. Nothing was linked; in a moment, open the same link "
    "from Slack again."
)

PAGE_SLACK_UNREACHABLE = (
    "You signed in, but Slack could not be reached to ask you to confirm the link, so "
    f"nothing was linked. In a moment, {AGAIN[0].lower()}{AGAIN[1:]}"
)
PAGE_FAILED = "Linking failed. Nothing was linked."
PAGE_FAILED_TITLE = "Linking failed"
PAGE_CONFIRM_TITLE = "Link your Slack account to pmbot"
PAGE_CONFIRM_HEADING = "Link your account"
PAGE_CONFIRM_WARNING = (
    "Only continue if you are this person and started this from Slack yourself. After you "
    "sign in, Slack asks you to confirm the link."
)
PAGE_CONTINUE = "Continue to sign in"
PAGE_SIGNED_IN_TITLE = "Confirm in Slack"
PAGE_NEXT_STEP = (
    "One last step: go back to Slack. pmbot sent you a direct message; press "
    "<strong>Link</strong> there to finish. Nothing is linked until you do."
)


def page_linking_whom(person_html: str, workspace_html: str) -> str:
    return (
        f"You are linking the Slack account of {person_html} in the workspace "
        f"{workspace_html} to the account you sign in with next."
    )


def page_signed_in(who_html: str) -> str:
    return f"Signed in as {who_html}"


def banner(base_url: str) -> str:
    """What `make run` prints once it is ready: where to go and who to be."""
    line = "-" * 72
    return (
        f"{line}\n"
        f"  pmbot is running: open {base_url}/ in your browser\n"
        "  Sign in as alice, bob, carol or dave (each one click, no password needed).\n"
        "  Stop with Ctrl-C; your workspace and links are kept for next time.\n"
        f"{line}"
    )


# -- projects and tasks -------------------------------------------------------------------
# Names, titles and references come from people: every one is escaped (``&``, ``<``, ``>``)
# before it is shown, so none can mention @channel or forge a link.

PROJECT_USAGE: dict[Usage, str] = {
    Usage.PROJECTS: "/pm projects",
    Usage.PROJECT: (
        "/pm project new NAME | share NAME @person ROLE | unshare NAME @person | members NAME"
    ),
    Usage.PROJECT_NEW: "/pm project new NAME",
    Usage.PROJECT_SHARE: "/pm project share NAME @person ROLE",
    Usage.PROJECT_UNSHARE: "/pm project unshare NAME @person",
    Usage.PROJECT_MEMBERS: "/pm project members NAME",
    Usage.STATUS: "/pm status NAME",
    Usage.TASKS: "/pm tasks [NAME] [mine]",
    Usage.TASK: '/pm task add NAME "title" [@person] [due DATE] | done ID',
    Usage.TASK_ADD: '/pm task add NAME "title" [@person] [due DATE]',
    Usage.TASK_DONE: "/pm task done ID",
}
COMMAND_HINTS: dict[CommandHint, str] = {
    CommandHint.MISSING_ARGUMENTS: "Something is missing.",
    CommandHint.UNKNOWN_ACTION: "I don't know that one.",
    CommandHint.UNEXPECTED_WORDS: "I didn't expect the words at the end.",
    CommandHint.PERSON_EXPECTED: (
        "Name the person with @, as in `@bob` (or pick them from Slack's list)."
    ),
    CommandHint.TITLE_NOT_QUOTED: 'Put the task\'s title in double quotes, as in "Write the spec".',
    CommandHint.DATE_EXPECTED: (
        "After `due`, give a date: YYYY-MM-DD, `today`, `tomorrow` or a weekday."
    ),
    CommandHint.TASK_ID_EXPECTED: "Give the task's number, as in `/pm task done 12`.",
}
ROLE_WORDS: dict[str, str] = {
    "owner": "owner",
    "editor": "editor",
    "viewer": "viewer",
    "approver": "approver",
}
NAME_PROBLEMS: dict[NameProblem, str] = {
    NameProblem.EMPTY: "it is empty",
    NameProblem.TOO_LONG: "it is longer than {limit} characters",
    NameProblem.CONTROL_CHARACTERS: "it contains control or invisible formatting characters",
}
PROJECT_ACTION_REFUSALS: dict[ProjectAction, str] = {
    ProjectAction.CREATE_PROJECT: (
        ":no_entry: Only members of this workspace can create projects; guests and people "
        "from other organisations can't. A project owner can share a project with you."
    ),
    ProjectAction.SHARE: (
        ":no_entry: You can see *{project}* but not change who has access to it: only its "
        "owners can."
    ),
    ProjectAction.CREATE_TASK: (
        ":no_entry: You can see *{project}* but not add tasks to it: its owners and editors can."
    ),
}
PERMISSION_REFUSALS: dict[str, str] = {
    "read:projects": (
        ":no_entry: You aren't allowed to see projects or tasks through pmbot. Your pmbot "
        "admin can give you access (your account doesn't have the `read:projects` permission)."
    ),
    "write:projects": (
        ":no_entry: You aren't allowed to change projects or tasks, or to post as yourself, "
        "through pmbot. Your pmbot admin can give you access (your account doesn't have the "
        "`write:projects` permission)."
    ),
}

PROJECTS_HEADING = "Your projects"
MEMBERS_HEADING = "Members of {project}"
STATUS_HEADING = "Status of {project}"
TASKS_HEADING = "Open tasks"
TASKS_OF_HEADING = "Open tasks of {project}"
MY_TASKS_HEADING = "Open tasks assigned to you"
MY_TASKS_OF_HEADING = "Your open tasks in {project}"
NO_PROJECTS = (
    "You can't see any project in this workspace yet. Create one with `/pm project new NAME`, "
    "or ask a project's owner to share it with you."
)
NO_TASKS = "No open tasks that you can see."
TASKS_TRUNCATED = "Showing the first {shown}; narrow it down with `/pm tasks NAME` or `mine`."
SOME_NOT_CHECKED = (
    ":lock: Authorization could not decide on some items, so they are left out. "
    "Try again in a moment."
)


def esc(text: str) -> str:
    """User text made inert in Slack's mrkdwn."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _quote(text: str, limit: int = 80) -> str:
    short = text if len(text) <= limit else text[: limit - 1] + "…"
    inert = esc(short).replace("`", "'")
    return f"`{inert}`"


def person_text(slack_user_id: str | None, label: str | None = None) -> str:
    if slack_user_id:
        return f"<@{slack_user_id}>"
    return f"an account no one here is linked to ({_quote(label or '?')})"


def roles_text(roles: Sequence[str]) -> str:
    return ", ".join(ROLE_WORDS.get(r, r) for r in roles)


def project_refusal(error: BaseException) -> str:
    """Words for an error of the projects commands (others as :func:`user_message`)."""
    if isinstance(error, MalformedCommand):
        usage = PROJECT_USAGE[error.usage]
        return f"{COMMAND_HINTS[error.hint]} Usage: `{usage}`"
    if isinstance(error, InvalidProjectName | InvalidTaskTitle):
        what = "project name" if isinstance(error, InvalidProjectName) else "task title"
        why = NAME_PROBLEMS[error.problem].format(limit=error.limit)
        return f"That {what} can't be used: {why}."
    if isinstance(error, ProjectNameTaken):
        return (
            f"There is already a project called *{esc(error.name)}* in this workspace "
            "(names are compared without regard to case). Pick another name."
        )
    if isinstance(error, ProjectNotFound):
        return (
            f"I don't know a project called *{esc(error.name)}* that you can see. "
            "`/pm projects` lists yours."
        )
    if isinstance(error, ProjectActionDenied):
        return PROJECT_ACTION_REFUSALS[error.project_action].format(project=esc(error.project))
    if isinstance(error, TaskActionDenied):
        return (
            f":no_entry: You can see task #{error.task_id} but not change it: its assignee and "
            "the project's owners and editors can."
        )
    if isinstance(error, PermissionDenied) and error.action in PERMISSION_REFUSALS:
        return PERMISSION_REFUSALS[error.action]
    if isinstance(error, UnknownRole):
        return (
            f"{_quote(error.role, 30)} is not a role. Roles: "
            + ", ".join(f"`{r}`" for r in error.roles)
            + "."
        )
    if isinstance(error, PersonNotFound):
        return f"I can't find anyone called {_quote(error.reference)} in this workspace."
    if isinstance(error, AmbiguousPerson):
        return (
            f"{_quote(error.reference)} could be any of {error.count} people. Pick the person "
            "from Slack's list when you type @, so I know who you mean."
        )
    if isinstance(error, NotAPerson):
        return f"{_quote(error.reference)} is an app or a deactivated account, not a person."
    if isinstance(error, NoProjectRole):
        return (
            f"{person_text(error.slack_user_id)} has no role on *{esc(error.project)}*, "
            "so nothing was changed."
        )
    if isinstance(error, LastOwner):
        return (
            f"{person_text(error.slack_user_id)} is the last owner of *{esc(error.project)}*. "
            "Make someone else an owner first, so the project keeps one."
        )
    if isinstance(error, TaskNotFound):
        return f"I don't know a task #{error.task_id} that you can see in this workspace."
    if isinstance(error, InvalidDueDate):
        return (
            f"I can't read {_quote(error.text, 30)} as a date. Use YYYY-MM-DD, `today`, "
            "`tomorrow` or a weekday such as `friday`."
        )
    if isinstance(error, DueDateInPast):
        return (
            f"{error.due.isoformat()} is in the past (today is {error.today.isoformat()}). "
            "Pick today or a later day."
        )
    return user_message(error)


def project_created_text(name: str) -> str:
    return (
        f":white_check_mark: Created *{esc(name)}*; you are its owner. Share it with "
        f"`/pm project share {esc(name)} @person ROLE`."
    )


def project_line(name: str, role: str, approver: bool) -> str:
    extra = " and approver" if approver else ""
    return f"• *{esc(name)}*: you are {ROLE_WORDS.get(role, role)}{extra}"


def projects_text(lines: list[str]) -> str:
    return f"{PROJECTS_HEADING}:\n" + "\n".join(lines) if lines else NO_PROJECTS


def shared_text(
    project: str,
    slack_user_id: str,
    role: str,
    *,
    pending: bool,
    already: bool,
    replaced: str | None,
) -> str:
    who, what, name = person_text(slack_user_id), ROLE_WORDS.get(role, role), esc(project)
    if pending:
        text = (
            f"{who} hasn't linked their account yet: they become {what} of *{name}* as soon "
            "as they do (`/pm link`)."
        )
        if already:
            return f"{text} That was already waiting for them."
        if replaced:
            before = ROLE_WORDS.get(replaced, replaced)
            return f"{text} This replaces the {before} role waiting for them."
        return text
    if already:
        return f"{who} is already {what} of *{name}*; nothing changed."
    return f":white_check_mark: {who} is now {what} of *{name}*."


def unshared_text(project: str, slack_user_id: str, removed: list[str], pending: str | None) -> str:
    who, name = person_text(slack_user_id), esc(project)
    parts = []
    if removed:
        parts.append(f":white_check_mark: {who} is no longer {roles_text(removed)} of *{name}*.")
    if pending:
        parts.append(
            f"The {ROLE_WORDS.get(pending, pending)} role waiting for {who} on *{name}* is "
            "withdrawn."
        )
    return " ".join(parts)


def member_line(
    slack_user_id: str | None, label: str | None, roles: list[str], *, pending: bool
) -> str:
    line = f"• {person_text(slack_user_id, label)}: {roles_text(roles)}"
    return line + " (when they link their account)" if pending else line


def members_text(project: str, lines: list[str]) -> str:
    return f"{MEMBERS_HEADING.format(project=esc(project))}:\n" + "\n".join(lines)


def task_line(
    task_id: int,
    title: str,
    project: str,
    *,
    assignee: str | None,
    due: str | None,
    overdue: bool,
    with_project: bool = True,
) -> str:
    parts = [f"• #{task_id} {esc(title)}"]
    if with_project:
        parts.append(f"_{esc(project)}_")
    if assignee:
        parts.append(assignee)
    if due:
        parts.append(f"due {due}" + (" :warning: overdue" if overdue else ""))
    return " · ".join(parts)


def assignee_text(slack_user_id: str | None, label: str | None, *, pending: bool) -> str:
    who = person_text(slack_user_id, label)
    return f"{who} (not linked yet)" if pending else who


def tasks_heading(project: str | None, *, mine: bool) -> str:
    if project is None:
        return MY_TASKS_HEADING if mine else TASKS_HEADING
    template = MY_TASKS_OF_HEADING if mine else TASKS_OF_HEADING
    return template.format(project=esc(project))


def tasks_text(heading: str, lines: list[str]) -> str:
    return f"{heading}:\n" + "\n".join(lines) if lines else NO_TASKS


def status_summary(open_count: int, done_count: int, overdue_count: int) -> str:
    return f"*{open_count}* open · *{done_count}* done · *{overdue_count}* overdue"


STATUS_OVERDUE = "Overdue"
STATUS_NEXT = "Due next"
STATUS_NOTHING_DUE = "No open task has a due date."


def status_text(project: str, summary: str, sections: list[str]) -> str:
    return "\n".join([f"{STATUS_HEADING.format(project=esc(project))}: {summary}", *sections])


def task_added_text(task_id: int, title: str, project: str, *, pending_assignee: bool) -> str:
    text = f":white_check_mark: Added task #{task_id} *{esc(title)}* to *{esc(project)}*."
    if pending_assignee:
        text += (
            " Its assignee hasn't linked their account yet; the task becomes theirs when they do."
        )
    return text


def task_done_text(task_id: int, title: str, *, already: bool) -> str:
    if already:
        return f"Task #{task_id} *{esc(title)}* was already done."
    return f":white_check_mark: Task #{task_id} *{esc(title)}* is done."


# -- answers ------------------------------------------------------------------------------
# Answers to questions (bot.knowledge.answers; handlers.ask renders them). The answer's own
# text comes from the documents (quoted) or the language model; these are the words around
# it. Nothing here names, counts or hints at a document the reader may not view.

NOTHING_FOUND = "I found nothing you have access to about that."
ANSWER_EXTRACT_INTRO = "Here is what the documents say:"
SOURCES_HEADING = "Sources"
THINKING_STATUS = "is thinking…"
ANSWER_PRIVATE_NOTE = (
    ":lock: Only you can see this answer: it uses documents that not everyone in this "
    "channel may view."
)
FEEDBACK_UP = "👍 Helpful"
FEEDBACK_DOWN = "👎 Not helpful"
ASK_READ_PERMISSION = (
    ":no_entry: You aren't allowed to ask about project documents through pmbot. Your pmbot "
    "admin can give you access (your account doesn't have the `read:projects` permission)."
)
ASSISTANT_GREETING = (
    "Hi! Ask me about your projects: I answer from the documents you may read, and name my sources."
)
ASSISTANT_PROMPTS_TITLE = "Try asking"
# (title, message) of the assistant pane's suggested prompts.
ASSISTANT_PROMPTS: list[tuple[str, str]] = [
    ("What is blocking?", "What is blocking our launch?"),
    ("Open risks", "What are the open risks, and who owns them?"),
    ("Next deadlines", "What are the next deadlines?"),
]


def small_talk_reply(*, public: bool) -> str:
    """The answer to a greeting or to "what can you do?"."""
    if public:
        return (
            "Hi! I'm pmbot, a project manager in Slack. Ask me about your projects, as in "
            "`@pmbot what is blocking the launch?`: I answer from the documents everyone "
            "here may read, and name my sources. `/pm help` lists my commands."
        )
    return (
        "Hi! I'm pmbot, your project manager in Slack. Your account is linked, so I answer "
        "as you: ask me about your projects and I answer from the documents you may read, "
        "and name my sources. `/pm help` lists my commands."
    )


def question_refusal(problem: str, length: int, limit: int) -> str:
    """Words for an unusable question (``bot.knowledge.answers.QuestionProblem``)."""
    if problem == "too_long":
        return (
            f"That question is too long ({length:,} characters; the limit is {limit:,}). "
            "Please ask it in fewer words."
        )
    return (
        "What would you like to know? Ask a question after my name, as in "
        "`@pmbot what is blocking the launch?`, or with `/pm ask QUESTION`."
    )


def withheld_note(asker_user_id: str) -> str:
    """What the channel reads when the answer went to the asker alone (no content)."""
    return (
        f"<@{asker_user_id}>, I answered you privately: the best answer uses documents that "
        "not everyone in this channel may view."
    )


# Why the language model gave no answer (``bot.knowledge.llm.ModelFailure``).
MODEL_FAILURES: dict[str, str] = {
    "timeout": "the language model took too long to answer",
    "unreachable": "the language model is unreachable right now",
    "refused": "the language model refused the request",
    "empty": "the language model gave no answer",
}


def model_failure(failure: str, *, partial: bool) -> str:
    why = MODEL_FAILURES.get(failure, MODEL_FAILURES["refused"])
    if partial:
        return f":warning: I couldn't finish this answer: {why}. Please ask again in a moment."
    return f":warning: I can't answer right now: {why}. Please try again in a moment."


def source_line(number: int, title: str, url: str | None, document_id: str) -> str:
    """A numbered citation: the title linked to its source, or with its document id."""
    label = esc(title.strip() or document_id).replace("|", "¦")
    if url and not any(c in url for c in "<>| \n"):
        return f"[{number}] <{url}|{label}>"
    return f"[{number}] *{label}* · `{esc(document_id)}`"


# What a click on 👍/👎 is told (``bot.knowledge.feedback.VoteOutcome``).
FEEDBACK_OUTCOMES: dict[str, str] = {
    "recorded": "Thanks for your feedback.",
    "changed": "Thanks: your feedback is updated.",
    "unchanged": "Your feedback was already recorded.",
    "unknown": "I can't find that answer any more; nothing was recorded.",
    "not_yours": "Only the person who asked can rate this answer.",
}


# -- the agent: tools, plain commands, connected accounts and approvals -------------------

# The plain commands of the agent's tools (``bot.agent.parser``); the help lists them too.
AGENT_COMMANDS: list[tuple[str, str]] = [
    (
        "/pm events [WHEN]",
        "Your Google Calendar events, read as you. WHEN: today (the default), tomorrow or week.",
    ),
    (
        '/pm schedule "TITLE" DAY TIME [DURATION] [with @person ...]',
        "Book a meeting in your Google Calendar and invite people. DAY: today, tomorrow, a "
        "weekday, next WEEKDAY or YYYY-MM-DD; TIME: 15:00 or 3pm; DURATION: 30m, 1h, 90m.",
    ),
    ('/pm post #channel "text"', "Post a message to a channel as you (you must be a member)."),
    ("/pm delete project NAME", "Ask for a project's deletion; it waits for an approval."),
    ("/pm delete all my projects", "Ask for the deletion of every project you own (approval)."),
]
COMMANDS.extend(AGENT_COMMANDS)

PERMISSION_REFUSALS.update(
    {
        "manage:calendar": (
            ":no_entry: You aren't allowed to read calendars or book meetings through pmbot. "
            "Your pmbot admin can give you access (your account doesn't have the "
            "`manage:calendar` permission)."
        ),
        "manage:projects": (
            ":no_entry: You aren't allowed to ask for projects to be deleted through pmbot. "
            "Your pmbot admin can give you access (your account doesn't have the "
            "`manage:projects` permission)."
        ),
    }
)

CONNECTION_NAMES: dict[str, str] = {"calendar": "Google Calendar", "slack": "Slack"}


def connection_name(connection: str) -> str:
    return CONNECTION_NAMES.get(connection, connection)


def connect_button_text(connection: str) -> str:
    return f"Connect {connection_name(connection)}"


def connect_prompt_text(connection: str, *, missing_scopes: bool = False) -> str:
    name = connection_name(connection)
    if missing_scopes:
        return (
            f":link: Your {name} account is connected, but without the access this needs. "
            "Connect it again to grant it, and I'll finish your request on my own."
        )
    return (
        f":link: To do that I act as you in {name}, so I need your {name} account connected "
        "to pmbot first. Connect it, and I'll finish your request on my own."
    )


def not_set_up_text(connection: str) -> str:
    return (
        f":warning: {connection_name(connection)} is not set up for pmbot yet, so I can't do "
        "that. Nothing was changed; ask your pmbot admin."
    )


APPROVALS_NOT_SET_UP = (
    ":warning: Approvals are not set up for pmbot yet, so I can't ask for this. Nothing was "
    "deleted: destructive actions never run without an approval."
)
CONNECT_NOT_SET_UP = (
    ":warning: Connecting accounts is not set up for pmbot yet. Nothing was changed; ask your "
    "pmbot admin."
)

TOOL_FAILURES: dict[str, str] = {
    "unknown_tool": "I don't have a tool for that, so nothing was done.",
    "invalid_arguments": "The details of that request are not valid, so nothing was done.",
    "permission_missing": ":no_entry: You don't have the permission this needs.",
    "not_allowed": ":no_entry: You may not do that, so nothing was done.",
    "not_found": "I can't find that among what you can see.",
    "unavailable": (
        ":warning: A service I need is unavailable right now. Nothing was changed; please "
        "try again in a moment."
    ),
    "rate_limited": (
        ":hourglass: The service is limiting requests right now. Nothing was changed; please "
        "try again in a minute."
    ),
    "connection_required": ":link: I need your account connected first.",
    "in_the_past": "That time is in the past; pick a later one.",
    "conflict": "That conflicts with what exists, so nothing was changed.",
    "not_requested": ":no_entry: You didn't ask for that yourself, so nothing was done.",
    "failed": GENERIC_FAILURE,
}


def tool_failure_text(code: str, detail: str = "") -> str:
    """What a person reads for a tool that could not do its job."""
    return detail or TOOL_FAILURES.get(code, GENERIC_FAILURE)


def unknown_tool_text(name: str) -> str:
    return f"There is no tool called {_quote(name, 40)}; nothing was done."


def invalid_arguments_text(tool: str, fields: Sequence[str]) -> str:
    named = ", ".join(_quote(f, 30) for f in fields[:5]) or "the arguments"
    return (
        f"I couldn't run {_quote(tool, 40)}: {named} "
        f"{'is' if len(fields) == 1 else 'are'} missing or not valid. Nothing was done."
    )


def tool_timeout_text(tool: str) -> str:
    return f":warning: {_quote(tool, 40)} took too long, so I stopped it. Please try again."


def rate_limited_text(provider: str) -> str:
    return (
        f":hourglass: {esc(provider)} is limiting requests right now. Nothing was changed; "
        "please try again in a minute."
    )


def provider_unavailable_text(provider: str) -> str:
    return (
        f":warning: {esc(provider)} is unavailable right now. Nothing was changed; please try "
        "again in a moment."
    )


def provider_refused_text(provider: str, reason: str) -> str:
    return (
        f":warning: {esc(provider)} refused the request ({_quote(reason, 40)}); nothing was done."
    )


def channel_refusal(error: BaseException) -> str | None:
    """Words for the agent's channel and attendee errors (None for other errors)."""
    from bot.errors import ChannelNotFound, NoEmail, NotInChannel

    if isinstance(error, ChannelNotFound):
        return (
            f"I can't find a channel called {_quote(error.reference, 40)} that I can see. "
            "Name it as `#name` or pick it from Slack's list when you type #."
        )
    if isinstance(error, NotInChannel):
        return (
            f":no_entry: You're not a member of <#{error.channel_id}>, so I won't post there "
            "as you."
        )
    if isinstance(error, NoEmail):
        return (
            f"Slack doesn't tell me {person_text(error.slack_user_id)}'s email, so I can't "
            "invite them."
        )
    return None


def read_only_refusal_text(tool: str) -> str:
    """A tool that changes something, asked for in a request that only asks to look."""
    return (
        f":no_entry: Your request only asks to look, so I changed nothing ({_quote(tool, 40)} "
        "was not run). To change something, ask for it yourself, starting with what to do, "
        "as in `add a task to Apollo` or `schedule a review tomorrow at 10:00`."
    )


def change_not_requested_text(tool: str, verb: str) -> str:
    """A tool of another kind of change than the one the request asks for."""
    return (
        f":no_entry: You asked me to {_quote(verb, 20)}, which {_quote(tool, 40)} doesn't do, "
        "so it was not run. Ask for it yourself if you want it."
    )


def person_not_requested_text(person: str) -> str:
    """A person the asker did not name, taken from data the model read."""
    return (
        f":no_entry: You didn't name {_quote(person, 60)} in your request, so nothing was "
        "changed. I only assign, invite or add people you name yourself."
    )


CHANNEL_NOT_REQUESTED = (
    ":no_entry: I only post to a channel you named yourself in your request, so nothing was "
    'posted. Ask me as in `post "the text" to #channel`.'
)


def project_not_requested_text(project: str) -> str:
    """A change to a project the asker did not name."""
    return (
        f":no_entry: You didn't name the project {_quote(project, 80)} in your request, so I "
        "changed nothing in it and asked nobody to delete it."
    )


def task_not_requested_text(task_id: int) -> str:
    """A change to a task the asker named neither by number nor by title."""
    return (
        f":no_entry: You didn't name task #{task_id} in your request (by its number or its "
        "title), so it was not changed."
    )


DELETE_ALL_NOT_REQUESTED = (
    ":no_entry: You didn't ask me to delete all your projects, so I asked nobody to. Say "
    "`delete all my projects` yourself if you mean it."
)
POST_TEXT_NOT_REQUESTED = (
    ":no_entry: I only post, as you, words you wrote yourself in your request, so nothing was "
    'posted. Ask me as in `post "the text" to #channel`.'
)
DESCRIPTION_NOT_REQUESTED = (
    ":no_entry: A meeting's description goes to everyone invited, so I only use one you wrote "
    "yourself in your request. Nothing was booked."
)
ATTENDEE_EXTERNAL = (
    "I can only invite people of this Slack workspace, named as `@name`; nothing was booked."
)
MEETING_TOO_FAR = "That is more than a year ahead; pick an earlier time. Nothing was booked."

# Plain agent commands that could not be read (``bot.errors.CommandProblem``).
COMMAND_PROBLEMS: dict[str, str] = {
    "events_range": "Say which events: `today`, `tomorrow` or `week`.",
    "schedule_title": (
        'Give the meeting a title in double quotes, as in `/pm schedule "Apollo review" tue 15:00`.'
    ),
    "date_missing": "Say which day: today, tomorrow, a weekday, next WEEKDAY or YYYY-MM-DD.",
    "date_unreadable": (
        "I can't read {text} as a day. Use today, tomorrow, a weekday (`tue`), "
        "`next tuesday` or YYYY-MM-DD."
    ),
    "time_missing": "Say at what time, as in `15:00` or `3pm`.",
    "time_unreadable": "I can't read {text} as a time. Use `15:00` or `3pm`.",
    "duration_unreadable": (
        "I can't read {text} as a duration. Use `30m`, `1h` or `90m` (5 minutes to 8 hours)."
    ),
    "in_the_past": "{text} is in the past. Pick a later time.",
    "person_expected": (
        "After `with`, name people as `@name` (or their Slack name); {text} is not one."
    ),
    "unexpected_words": "I don't understand {text} there.",
    "post_channel": 'Say where to post, as in `/pm post #apollo "text"`.',
    "post_text": (
        'Put what to post in double quotes, as in `/pm post #apollo "Standup moved to 10:00"`.'
    ),
    "delete_what": "Say what to delete: `/pm delete project NAME` or `/pm delete all my projects`.",
}


def command_problem_text(problem: str, text: str = "") -> str:
    template = COMMAND_PROBLEMS.get(problem, COMMAND_PROBLEMS["unexpected_words"])
    return template.format(text=_quote(text or "?", 40))


def agent_refusal(error: BaseException) -> str:
    """Words for an error of the agent's tools and commands (others as the projects'
    refusals and :func:`user_message`)."""
    from bot.errors import BadCommand

    if isinstance(error, BadCommand):
        return command_problem_text(error.problem.value, error.text)
    return channel_refusal(error) or project_refusal(error)


def when_text(start: datetime, end: datetime | None = None) -> str:
    """A time (and an end) as people read it: ``Tue 8 Dec 15:00–15:30``."""
    text = f"{start:%a} {start.day} {start:%b} {start:%H:%M}"
    if end is not None:
        text += f"–{end:%H:%M}" if end.date() == start.date() else f" – {when_text(end)}"
    return text


EVENTS_HEADINGS: dict[str, str] = {
    "today": "Your events today",
    "tomorrow": "Your events tomorrow",
    "week": "Your events in the next 7 days",
}


def event_line(summary: str, when: str, link: str | None) -> str:
    title = esc(summary.strip() or "(no title)")
    if link and not any(c in link for c in "<>| \n") and link.startswith(("https://", "http://")):
        title = f"<{link}|{title.replace('|', '¦')}>"
    return f"• {when}: {title}"


def events_text(when: str, lines: Sequence[str], *, more: int = 0) -> str:
    heading = EVENTS_HEADINGS.get(when, EVENTS_HEADINGS["today"])
    if not lines:
        return f"{heading}: nothing in your calendar."
    text = f"*{heading}*\n" + "\n".join(lines)
    if more:
        text += f"\n…and {more} more."
    return text


def free_slot_text(when: str, people: Sequence[str]) -> str:
    who = ", ".join(person_text(p) for p in people)
    return f"The first free slot{f' for you and {who}' if who else ''} is *{when}*."


def no_free_slot_text(days: int) -> str:
    return f"I found no free slot in working hours (09:00–17:00) in the next {days} days."


def meeting_booked_text(title: str, when: str, people: Sequence[str], link: str | None) -> str:
    who = ", ".join(person_text(p) for p in people)
    name = f"*{esc(title)}*"
    if link and not any(c in link for c in "<>| \n") and link.startswith(("https://", "http://")):
        name = f"<{link}|{esc(title).replace('|', '¦')}>"
    text = f":calendar: Booked {name} on {when} in your calendar"
    return text + (f", with {who} invited." if who else ".")


def posted_text(channel_id: str, permalink: str | None) -> str:
    text = f":white_check_mark: Posted in <#{channel_id}> as you."
    if permalink and not any(c in permalink for c in "<>| \n"):
        text += f" <{permalink}|See it>."
    return text


def task_updated_text(task_id: int, title: str, changed: Sequence[str]) -> str:
    if not changed:
        return f"Task #{task_id} *{esc(title)}* already was so; nothing changed."
    what = ", ".join(changed)
    return f":white_check_mark: Task #{task_id} *{esc(title)}* is updated ({what})."


def search_result_lines(found: Sequence[tuple[str, str]]) -> str:
    if not found:
        return NOTHING_FOUND
    return "\n".join(f"• *{esc(title)}*: {esc(text[:200])}" for title, text in found)


def deletion_approval_text(
    target: str, approvers: Sequence[str], expires: str, *, created: bool
) -> str:
    """A destructive tool's answer: the deletion waits for an approval (``expires``: a
    :func:`slack_time`, shown in each reader's time zone)."""
    who = ", ".join(person_text(a) for a in approvers) or "an approver"
    if not created:
        return (
            f":hourglass: A request to delete {esc(target)} is already waiting for {who} "
            f"(until {expires}). Nothing is deleted until it is approved."
        )
    return (
        f":hourglass: I asked {who} to approve deleting {esc(target)}; nothing is deleted "
        f"until they do. The request expires {expires}."
    )


AGENT_STOPS: dict[str, str] = {
    "steps": "I stopped: this request needed more steps than I may take for one request.",
    "loop": "I stopped: I was repeating the same step without getting anywhere.",
    "timeout": "I stopped: this request took longer than I may take for one.",
    "tokens": "I stopped: my answer was getting longer than I may write.",
}


def agent_stopped_text(reason: str) -> str:
    return (
        f":warning: {AGENT_STOPS.get(reason, AGENT_STOPS['steps'])} Please ask again, more simply."
    )


def agent_model_failure_text(failure: str) -> str:
    why = MODEL_FAILURES.get(failure, MODEL_FAILURES["refused"])
    return f":warning: I can't handle that right now: {why}. Nothing more was done."


AGENT_DID_NOTHING = "I have nothing to add."
AGENT_DONE_HEADING = "What I did:"


def agent_private_note(asker_user_id: str) -> str:
    """The channel's note when the agent's reply went to the asker alone (no content)."""
    return f"<@{asker_user_id}>, I answered you privately: my answer uses what only you may see."


def connect_opened_text(connection: str) -> str:
    """The Connect message once its button was clicked (it replaces the button: the link is
    single use)."""
    name = connection_name(connection)
    return (
        f":link: Finish connecting {name} in the page that opened; I'll answer here once it "
        "is connected. (Closed it? Just ask me again.)"
    )


def resumed_text(connection: str) -> str:
    return f":white_check_mark: {connection_name(connection)} is connected; here is your request."


REQUEST_GONE = (
    "That request is no longer waiting (it was already finished, or it expired). Please ask again."
)


# -- connecting provider accounts (Token Vault's Connected Accounts flow) ------------------
# Pages are HTML: ``<code>`` and ``<strong>`` are markup, everything else is escaped text.

# The provider of each ``bot.vault.ports.Connection`` (their names: CONNECTION_NAMES).
CONNECTION_PROVIDERS: dict[str, str] = {"calendar": "Google", "slack": "Slack"}
# What pmbot does with each account, as the page tells the person before they connect it.
CONNECTION_USES: dict[str, str] = {
    "calendar": (
        "pmbot will read your events and free/busy times and book the meetings you ask it "
        "for, as you."
    ),
    "slack": "pmbot will post the messages you ask it for in Slack, as you.",
}
CONNECT_PAGE_TITLE = "Connect an account to pmbot"
CONNECT_WARNING = "Only continue if you are this person and asked pmbot for this in Slack yourself."
CONNECT_CONTINUE = "Continue to {provider}"
CONNECT_SCOPES_INTRO = "pmbot asks for these permissions:"
CONNECT_FAILED_TITLE = "Connecting failed"
CONNECT_AGAIN = "Ask pmbot again in Slack for a new link."
# Why connecting was refused (``bot.vault.connect.ConnectFailure``).
CONNECT_REASONS: dict[str, str] = {
    "unknown": f"This link is not valid. {CONNECT_AGAIN}",
    "used": f"This link was already used. {CONNECT_AGAIN}",
    "expired": f"This link has expired. {CONNECT_AGAIN}",
    "not_started": "This answer was not started from a pmbot page. Nothing was connected.",
    "browser_mismatch": (
        "This was started in another browser. Open the link from Slack in this browser. "
        "Nothing was connected."
    ),
    "forged_request": (
        "This request did not come from pmbot's own page, so it was refused and nothing was "
        "connected. Open the link from Slack again and press the button there."
    ),
    "not_linked": (
        "Your Slack account is no longer linked to the identity this link was made for. "
        "Run <code>/pm link</code> in Slack first. Nothing was connected."
    ),
    "rejected": f"Auth0 did not accept this connection. Nothing was connected. {CONNECT_AGAIN}",
    "denied": "You did not allow access, so nothing was connected.",
    "missing_parameters": "The answer from Auth0 is incomplete. Nothing was connected.",
}
CONNECT_UNAVAILABLE = (
    "{service} is unreachable right now. Nothing was connected; in a moment, open the same "
    "link from Slack again."
)
CONNECT_RESUMES = "pmbot now carries on with what you asked it for."
CONNECT_CLOSE = "You can close this page."


def connect_heading(account: str) -> str:
    return f"Connect {account}"


def connect_whom(account: str, person_html: str, workspace_html: str) -> str:
    return (
        f"You are connecting {account} for the Slack account of {person_html} in the "
        f"workspace {workspace_html}."
    )


def connected_heading(account: str) -> str:
    return f"{account} is connected: go back to Slack"


# -- approvals ----------------------------------------------------------------------------
# The approver's DM, the requester's message (both updated in place), the click replies,
# the App Home lists, the device's binding message and /pm audit.

APPROVE_BUTTON = "Approve"
DENY_BUTTON = "Deny"
CANCEL_REQUEST_BUTTON = "Cancel request"
ASK_AGAIN_BUTTON = "Ask again"
APPROVALS_TO_APPROVE_HEADING = "Waiting for your approval"
APPROVALS_REQUESTED_HEADING = "Your requests waiting for approval"

_ACTION_WORDS = {
    "delete_project": "delete {target}",
    "delete_all_my_projects": "delete {target}",
    "change_project_owner": "change {target}",
}
_ACTION_EFFECTS = {
    "delete_project": "The project, its tasks and its documents are deleted for everyone.",
    "delete_all_my_projects": "Each project, its tasks and its documents are deleted for everyone.",
    "change_project_owner": "The new owner becomes the only owner; the previous owners become "
    "editors.",
}


def approval_target_project(name: str) -> str:
    return f"project {name}"


def approval_target_all(names: Sequence[str]) -> str:
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    count = "1 project" if len(names) == 1 else f"{len(names)} projects"
    return f"their {count} ({shown})"


def approval_target_owner(name: str, new_owner: str) -> str:
    return f"the owner of project {name} to <@{new_owner}>"


def approval_binding_summary(action: str, target: str) -> str:
    """What the approver's device shows after the code (cut to fit by the service)."""
    return "pmbot: " + _ACTION_WORDS.get(str(action), "{target}").format(target=target)


def _what(action: str, target: str) -> str:
    return _ACTION_WORDS.get(str(action), "{target}").format(target=esc(target))


def slack_time(moment: datetime) -> str:
    """A time Slack shows in each reader's time zone (UTC where it cannot)."""
    epoch = int(moment.timestamp())
    return f"<!date^{epoch}^{{time}}|{moment.astimezone(UTC):%H:%M} UTC>"


def approver_dm_text(
    *,
    action: str,
    target: str,
    requester: str,
    expires_at: datetime,
    status: str,
    viewer: str,
    confirming: str | None,
    code: str | None,
    decided_by: str | None,
    reason: str | None,
) -> str:
    """The approver's DM at each state of the approval."""
    what = _what(action, target)
    if status == "pending":
        return (
            f":raised_hand: <@{requester}> asks to *{what}*. "
            f"{_ACTION_EFFECTS.get(str(action), '')} "
            f"Approve (you will confirm on your device) or deny before {slack_time(expires_at)}."
        )
    if status == "confirming" and confirming == viewer:
        return (
            f":iphone: Confirm code *{code}* on your device to *{what}* "
            f"(asked by <@{requester}>, expires {slack_time(expires_at)})."
        )
    if status == "confirming":
        return (
            f":hourglass: <@{confirming}> is confirming *{what}* on their device "
            f"(asked by <@{requester}>)."
        )
    return approval_final_text(
        action=action,
        target=target,
        status=status,
        decided_by=decided_by,
        reason=reason,
        confirming=confirming,
    )


def requester_text(
    *,
    action: str,
    target: str,
    approvers: Sequence[str],
    expires_at: datetime,
    status: str,
    confirming: str | None,
    decided_by: str | None,
    reason: str | None,
) -> str:
    """The requester's message at each state."""
    what = _what(action, target)
    if status == "pending":
        who = " or ".join(f"<@{a}>" for a in approvers)
        return (
            f":hourglass_flowing_sand: Waiting for approval by {who}, expires "
            f"{slack_time(expires_at)}: *{what}*."
        )
    if status == "confirming":
        return (
            f":iphone: <@{confirming}> is confirming on their device: *{what}* "
            f"(expires {slack_time(expires_at)})."
        )
    return approval_final_text(
        action=action,
        target=target,
        status=status,
        decided_by=decided_by,
        reason=reason,
        confirming=confirming,
    )


_FINAL_REASONS = {
    "denied_on_device": "denied on the approver's device",
    "grant_for_another_user": "the confirmation came from another account, so it was refused",
    "device_confirmation_expired": "the confirmation on the device expired",
    "deadline_passed": "nobody approved it in time",
}
_FAILURE_REASONS = {
    ApprovalProblem.PROJECT_GONE.value: "the project no longer exists",
    ApprovalProblem.REQUESTER_NOT_ALLOWED.value: "the requester no longer has access to it",
    ApprovalProblem.APPROVER_NOT_ALLOWED.value: "the approver is no longer an approver of it",
    ApprovalProblem.PERSON_NOT_LINKED.value: "the new owner is no longer linked",
    ApprovalProblem.BAD_ARGUMENTS.value: "the request was malformed",
}


def approval_final_text(
    *,
    action: str,
    target: str,
    status: str,
    decided_by: str | None,
    reason: str | None,
    confirming: str | None,
) -> str:
    what = _what(action, target)
    if status == "executing":
        return f":gear: Approved by <@{confirming}>; now doing it: *{what}*."
    if status == "executed":
        return f":white_check_mark: Done: *{what}* (approved by <@{confirming}>)."
    if status == "failed":
        why = _FAILURE_REASONS.get(reason or "", "something went wrong on my side")
        return f":warning: Approved, but not done: *{what}*; {why}. Nothing was changed."
    if status == "cancelled":
        return f":no_entry_sign: Cancelled by <@{decided_by}>: *{what}*. Nothing was changed."
    if status == "expired":
        why = _FINAL_REASONS.get(reason or "", _FINAL_REASONS["deadline_passed"])
        return f":alarm_clock: Expired ({why}): *{what}*. Nothing was changed."
    if decided_by:
        return f":x: Denied by <@{decided_by}>: *{what}*. Nothing was changed."
    why = _FINAL_REASONS.get(reason or "", "denied")
    return f":x: Not approved ({why}): *{what}*. Nothing was changed."


def approval_reminder_text(
    *, action: str, target: str, requester: str, expires_at: datetime
) -> str:
    return (
        f":bell: Reminder: <@{requester}> is still waiting for your approval to "
        f"*{_what(action, target)}*; it expires {slack_time(expires_at)}."
    )


def approval_click_text(outcome: str, *, code: str | None = None, who: str | None = None) -> str:
    """What a click on Approve, Deny or Cancel is told (only the clicker sees it)."""
    # This note stays under the request, which is updated in place: it says so, so that it
    # does not read as still to do once the request is done.
    texts = {
        "confirming": (
            f"You pressed Approve. Confirm code *{code}* on your device; the request above "
            "shows when it is done."
        ),
        "denied": "Denied. Nothing was changed.",
        "cancelled": "Your request is cancelled. Nothing was changed.",
        "not_found": "I can't find that request any more; nothing was changed.",
        "not_approver": ":no_entry: You are not an approver of this request; nothing was changed.",
        "not_requester": ":no_entry: Only the person who asked can cancel it; nothing was changed.",
        "already_confirming": (
            f"Confirm code *{code}* on your device."
            if code
            else f"<@{who}> is already confirming this on their device."
        ),
        "already_finished": "This request is already finished; nothing was changed.",
        "expired": ":alarm_clock: This request has expired; nothing was done.",
        "provider_unavailable": (
            ":warning: I couldn't start the confirmation on your device (the identity "
            "provider is unreachable). Nothing was changed; please press Approve again."
        ),
    }
    return texts.get(outcome, texts["already_finished"])


def approval_requested_text(
    target: str, approvers: Sequence[str], expires_at: datetime, *, created: bool
) -> str:
    """The answer to a request (a tool or a command) that asked for an approval."""
    who = " or ".join(f"<@{a}>" for a in approvers)
    lead = "I asked" if created else "You already asked; still waiting for"
    return f"{lead} {who} to approve: {esc(target)} (expires {slack_time(expires_at)})."


def approval_home_line(
    action: str,
    target: str,
    other: str,
    expires_at: datetime,
    *,
    mine: bool,
    approvers: Sequence[str] = (),
) -> str:
    """One open approval on the App Home: who asked (to an approver), whom it waits for
    (to the requester)."""
    if mine:
        by = " or ".join(f"<@{a}>" for a in approvers)
        who = f"waiting for approval by {by}" if by else "waiting for approval"
    else:
        who = f"asked by <@{other}>"
    return f"• *{_what(action, target)}*, {who}, expires {slack_time(expires_at)}"


def approval_refusal(error: ApprovalRefused | ApprovedActionInvalid) -> str:
    texts = {
        ApprovalProblem.NO_APPROVER: "Nobody linked can approve that, so I can't ask.",
        ApprovalProblem.NOTHING_TO_DO: "You don't own any project, so there is nothing to delete.",
        ApprovalProblem.PERSON_NOT_LINKED: "That person hasn't linked their account yet.",
        ApprovalProblem.ALREADY_OWNER: "That person already owns this project.",
        ApprovalProblem.BAD_ARGUMENTS: "I couldn't understand what to act on.",
        ApprovalProblem.NOT_FINISHED: "That request is still waiting for approval.",
        ApprovalProblem.NOT_YOURS: "Only the person who asked can ask again.",
    }
    return ":no_entry: " + texts.get(error.problem, "That can't be done any more.")


AUDIT_USAGE = "Usage: `/pm audit [NAME]`"
AUDIT_NOT_OWNER = (
    ":no_entry: Only a project's owners can read its audit log, and you don't own {project}."
)
AUDIT_NO_PROJECTS = ":no_entry: You don't own any project, so there is no audit log to show you."
AUDIT_EMPTY = "Nothing is in the audit log for {project} yet."
AUDIT_HEADING = "Audit log of {project}"
AUDIT_ALL = "your projects"


def audit_line(
    at: datetime, actor: str | None, action: str, outcome: str, reason: str | None
) -> str:
    who = f"<@{actor}>" if actor else "pmbot"
    why = f" ({esc(reason)})" if reason else ""
    when = f"{at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    return f"• {when} · {who} · `{esc(action)}` · {esc(outcome)}{why}"
