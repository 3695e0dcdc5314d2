"""Every sentence a person reads, in one place: Slack messages and blocks
(``handlers.blocks`` arranges them), the linking pages (``bot.identity.pages``) and the
text for each domain error (:func:`user_message`, installed once as the app's error
handler). Nothing else writes words for people."""

from __future__ import annotations

from authz.ports import AuthzEvaluationError, AuthzUnavailable
from bot.errors import (
    InputTooLong,
    NotLinked,
    PermissionDenied,
    RelinkRequired,
    ServiceUnavailable,
    UnknownCommand,
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
]


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
    "Not available yet: answering project questions from documents, scheduling meetings and "
    "approvals. I'll say so when you ask."
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
