"""The collaborators of account linking, as ports: Auth0 (or the dev identity provider),
the verifier of its tokens, and Slack's directory. ``IdentityService`` depends on these
only; the implementations live beside them (``auth0.py``, ``tokens.py``,
``slack_directory.py``) and tests may pass small stand-ins."""

from __future__ import annotations

from typing import Protocol

from bot.identity.auth0 import TokenSet
from bot.identity.model import Membership
from bot.identity.tokens import VerifiedClaims


class IdentityProvider(Protocol):
    """Auth0's Authentication API as linking uses it. Raises ``Auth0Rejected`` for an
    OAuth error and ``ServiceUnavailable`` when Auth0 cannot be reached."""

    @property
    def client_id(self) -> str: ...

    @property
    def audience(self) -> str: ...

    def authorize_url(
        self, *, redirect_uri: str, state: str, nonce: str, code_challenge: str
    ) -> str: ...

    async def exchange_code(
        self, *, code: str, code_verifier: str, redirect_uri: str
    ) -> TokenSet: ...

    async def refresh(self, refresh_token: str) -> TokenSet: ...

    async def revoke(self, refresh_token: str) -> None: ...


class TokenVerification(Protocol):
    """Verifies Auth0's ID and access tokens (``TokenInvalid`` / ``JwksUnavailable``)."""

    async def verify_id_token(
        self, token: str, *, client_id: str, nonce: str
    ) -> VerifiedClaims: ...

    async def verify_access_token(self, token: str, *, audience: str) -> VerifiedClaims: ...


class SlackDirectory(Protocol):
    """What linking needs to know from Slack about a person (a port: tests and the
    sandbox answer it over the real Web API)."""

    async def membership(self, team_id: str, slack_user_id: str) -> Membership: ...
