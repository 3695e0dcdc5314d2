"""The values of account linking: why linking failed, what a person is to a workspace,
the linked identity and the steps of a link request, plus the small pure helpers around
them. No I/O here."""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from authz.ids import fga_user, fga_workspace
from authz.ports import TupleKey
from bot.storage.models import SlackLink

PERMISSIONS = ("read:projects", "write:projects", "manage:calendar", "manage:projects")

# Link request ids are ``secrets.token_urlsafe(32)``: anything else is refused before it
# reaches a query (a NUL byte, for one, makes PostgreSQL's driver raise).
_REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{32,64}")
# Slack ids: upper-case letters and digits (team T…/E…, user U…/W…).
_SLACK_ID = re.compile(r"[A-Z0-9]{2,32}")


class LinkFailure(enum.StrEnum):
    """Why linking was refused: one code per reason, turned into words by the pages."""

    STATE_UNKNOWN = "state_unknown"
    STATE_USED = "state_used"
    STATE_EXPIRED = "state_expired"
    STATE_NOT_STARTED = "state_not_started"
    BROWSER_MISMATCH = "browser_mismatch"
    FORGED_REQUEST = "forged_request"
    CODE_REJECTED = "code_rejected"
    NO_ID_TOKEN = "no_id_token"  # noqa: S105 - a reason code, not a secret
    ID_TOKEN_INVALID = "id_token_invalid"  # noqa: S105 - a reason code, not a secret
    IDENTITY_TAKEN = "identity_taken"
    IDENTITY_UNSUPPORTED = "identity_unsupported"
    LOGIN_CANCELLED = "login_cancelled"
    MISSING_PARAMETERS = "missing_parameters"
    NOT_YOURS = "not_yours"
    CONFIRM_EXPIRED = "confirm_expired"
    CANCELLED = "cancelled"


class LinkFailed(Exception):
    """Linking was refused; ``reason`` says why, ``detail`` is a log-safe code."""

    def __init__(self, reason: LinkFailure, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail


class Membership(enum.StrEnum):
    """What a Slack account is to its workspace. Only members get ``workspace#member``:
    guests see only the channels they were invited to, and Slack Connect users belong to
    another organisation."""

    MEMBER = "member"
    GUEST = "guest"
    EXTERNAL = "external"


def display_identity(email: str | None, email_verified: bool, name: str | None, sub: str) -> str:
    """How an identity is named to people: a verified email, else the name or ``sub``; an
    unverified email is never presented as if it proved anything."""
    if email and email_verified:
        return email
    if email:
        return f"{name or sub} ({email}, email not verified)"
    return name or sub


@dataclass(frozen=True)
class Identity:
    team_id: str
    slack_user_id: str
    sub: str
    email: str | None
    email_verified: bool
    name: str | None
    permissions: frozenset[str]
    linked_at: datetime
    membership: Membership = Membership.MEMBER
    # No fresh permissions could be had (no usable refresh token, or the grant is gone):
    # the person has none until they link again.
    needs_relink: bool = False
    # The access token the permissions came from has expired (``current`` refreshes).
    permissions_stale: bool = False

    @property
    def fga_user(self) -> str:
        return fga_user(self.sub)

    @property
    def display(self) -> str:
        return display_identity(self.email, self.email_verified, self.name, self.sub)


@dataclass(frozen=True)
class PendingRequest:
    """A link request as its page shows it."""

    request_id: str
    team_id: str
    slack_user_id: str


@dataclass(frozen=True)
class LoginStart:
    authorize_url: str
    browser_binding: str
    team_id: str
    slack_user_id: str


@dataclass(frozen=True)
class VerifiedLogin:
    """A login the callback verified, waiting for the Slack user's confirmation."""

    request_id: str
    team_id: str
    slack_user_id: str
    sub: str
    display: str
    replaces: str | None  # the identity a confirmation would replace, if any
    confirm_by: datetime


def workspace_member(team_id: str, sub: str) -> TupleKey:
    return TupleKey(user=fga_user(sub), relation="member", object=fga_workspace(team_id))


def valid_slack_ids(team_id: str, slack_user_id: str) -> bool:
    return bool(_SLACK_ID.fullmatch(team_id) and _SLACK_ID.fullmatch(slack_user_id))


def valid_request_id(value: str) -> bool:
    return bool(_REQUEST_ID.fullmatch(value))


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime) -> datetime:
    # SQLite returns naive datetimes; everything is stored in UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def refresh_purpose(team_id: str, slack_user_id: str) -> str:
    # Binds a stored refresh token to its row: a ciphertext copied to another person's
    # row (or to a link request of someone else) does not decrypt there.
    return f"refresh_token|{team_id}|{slack_user_id}"


def pkce_purpose(request_id: str) -> str:
    return f"pkce|{request_id}"


LEGACY_REFRESH_PURPOSE = "refresh_token"
# The ``sub`` column's size, and OpenFGA's limit on a tuple's user field.
MAX_SUB_LENGTH = 255
MAX_FGA_USER_LENGTH = 512
FINISHED = {"cancelled": LinkFailure.CANCELLED, "expired": LinkFailure.CONFIRM_EXPIRED}


def str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def link_state(link: SlackLink) -> dict[str, Any]:
    """The columns of a link, to restore it."""
    return {column.key: getattr(link, column.key) for column in SlackLink.__table__.columns}


def identity_of_link(link: SlackLink) -> Identity:
    return Identity(
        team_id=link.team_id,
        slack_user_id=link.slack_user_id,
        sub=link.sub,
        email=link.email,
        email_verified=bool(link.email_verified),
        name=link.name,
        permissions=frozenset(json.loads(link.permissions or "[]")),
        linked_at=aware(link.linked_at),
        membership=Membership(link.membership or Membership.MEMBER.value),
        needs_relink=link.permissions_expire_at is None,
        permissions_stale=link.permissions_expire_at is not None
        and aware(link.permissions_expire_at) <= utcnow(),
    )
