"""Domain errors: they carry data, never Slack wording (see ``bot.messages``).

Authorization that cannot be decided is ``authz.ports.AuthzUnavailable`` (or
``AuthzEvaluationError``): one class for it, raised by the authorization layer itself."""

from __future__ import annotations


class PmbotError(Exception):
    """Base of the errors that ``bot.messages.user_message`` turns into user text."""


class PermissionDenied(PmbotError):
    def __init__(self, action: str, resource: str | None = None) -> None:
        super().__init__(f"{action} on {resource}" if resource else action)
        self.action = action
        self.resource = resource


class NotLinked(PmbotError):
    """The Slack user has no linked identity yet."""


class RelinkRequired(PmbotError):
    """The person's permissions could not be refreshed (no usable refresh token, or the
    grant was revoked): they have none until they link again."""


class UnknownCommand(PmbotError):
    def __init__(self, command: str) -> None:
        super().__init__(command)
        self.command = command


class InputTooLong(PmbotError):
    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"{length} > {limit}")
        self.length = length
        self.limit = limit


class ServiceUnavailable(PmbotError):
    """A dependency (identity provider, calendar...) could not be reached."""

    def __init__(self, service: str) -> None:
        super().__init__(service)
        self.service = service
