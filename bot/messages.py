"""The one place that turns domain errors into the text users read in Slack."""

from __future__ import annotations

from authz.ports import AuthzUnavailable
from bot.errors import (
    AuthorizationUnavailable,
    InputTooLong,
    NotLinked,
    PermissionDenied,
    RelinkRequired,
    ServiceUnavailable,
    UnknownCommand,
)

GENERIC_FAILURE = (
    ":warning: Something went wrong on my side and nothing was changed. Please try again; "
    "if it keeps happening, tell your pmbot admin."
)


def user_message(error: BaseException) -> str:
    """User-facing text for ``error``; unknown errors get a generic, leak-free message."""
    if isinstance(error, AuthorizationUnavailable | AuthzUnavailable):
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
