"""Users and applications known to the dev identity provider."""

from __future__ import annotations

from dataclasses import dataclass, field

from sandbox.people import PEOPLE

#: The Auth0 RBAC permissions of the pmbot API, most to least powerful.
ALL_PERMISSIONS: tuple[str, ...] = (
    "read:projects",
    "write:projects",
    "manage:calendar",
    "manage:projects",
)

GRANT_AUTHORIZATION_CODE = "authorization_code"
GRANT_REFRESH_TOKEN = "refresh_token"  # noqa: S105 - a grant type name, not a secret
GRANT_CLIENT_CREDENTIALS = "client_credentials"


@dataclass
class IdpUser:
    """A database-connection user, as Auth0 would store it.

    ``permissions`` are the user's RBAC permissions for the API audience; they are
    put in the access token's ``permissions`` claim, like Auth0 does when "Add
    Permissions in the Access Token" is enabled.
    """

    sub: str
    email: str
    name: str
    password: str
    permissions: list[str] = field(default_factory=list)
    email_verified: bool = True


@dataclass
class IdpClient:
    """An application registered with the provider.

    A client with a non-empty ``client_secret`` is confidential (Auth0's "Regular Web
    Application" / "Machine to Machine"): it must authenticate at ``/oauth/token`` and
    ``/oauth/revoke`` with ``client_secret`` in the body or HTTP Basic. A client with an
    empty secret is public (Auth0's "Native" / "Single Page Application", token endpoint
    authentication method "None").

    ``grant_types`` limits the grants the client may use; ``None`` means the defaults
    for its kind (confidential: authorization_code, refresh_token, client_credentials
    and any grant registered later; public: authorization_code, refresh_token).
    """

    client_id: str
    client_secret: str
    callback_urls: list[str]
    grant_types: list[str] | None = None
    name: str = ""  # shown to people (the authenticator page); the client id when empty

    @property
    def is_confidential(self) -> bool:
        return bool(self.client_secret)


def default_users() -> list[IdpUser]:
    """The seeded users of the embedded default, from most to least privileged.

    ``sub`` is ``auth0|<handle>``, the email ``<handle>@example.com`` and the password
    ``<handle>-password``: for local development only, and shown on the login page.
    """
    permissions = {
        "alice": list(ALL_PERMISSIONS),
        "bob": ["read:projects", "write:projects", "manage:calendar", "manage:projects"],
        "carol": ["read:projects"],
        "dave": [],
    }
    return [
        IdpUser(
            sub=f"auth0|{p.handle}",
            email=p.email,
            name=p.name,
            password=f"{p.handle}-password",
            permissions=permissions.get(p.handle, []),
        )
        for p in PEOPLE
    ]
