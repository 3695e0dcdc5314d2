"""Auth0-compatible dev identity provider (embedded default and test fake)."""

from sandbox.idp.models import ALL_PERMISSIONS, IdpClient, IdpUser, default_users
from sandbox.idp.oauth import GrantHandler, OAuthError, TokenRequest, s256
from sandbox.idp.server import DevIdentityProvider, serve

__all__ = [
    "ALL_PERMISSIONS",
    "DevIdentityProvider",
    "GrantHandler",
    "IdpClient",
    "IdpUser",
    "OAuthError",
    "TokenRequest",
    "default_users",
    "s256",
    "serve",
]
