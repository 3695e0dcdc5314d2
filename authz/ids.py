"""Object ids for OpenFGA, built from outside identifiers in one place.

OpenFGA ids may not contain ``#``, ``:`` or white space (and ``*`` alone is the wildcard),
but an Auth0 ``sub`` can hold any of them (``samlp|corp|Jane Doe``, ``oidc|idp|a:b``).
:func:`fga_id` percent-encodes every such character (and ``%`` itself), so the mapping is
reversible with :func:`from_fga_id`, two different values never share an id, and the usual
subs (``auth0|abc``, ``google-oauth2|123``) stay readable and unchanged.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

# Kept as they are: letters, digits and the punctuation Auth0 subs and Slack ids use.
_SAFE = "|-_.@+=~!$&'(),;/"


def fga_id(value: str) -> str:
    """The OpenFGA object id for ``value`` (ValueError for an empty value)."""
    if not value:
        raise ValueError("an empty identifier has no FGA id")
    # quote() also encodes '*', so no id is ever read as the wildcard.
    return quote(value, safe=_SAFE)


def from_fga_id(encoded: str) -> str:
    """The value :func:`fga_id` encoded."""
    return unquote(encoded)


def fga_user(sub: str) -> str:
    """The FGA user of the person with Auth0 ``sub``."""
    return f"user:{fga_id(sub)}"


def fga_workspace(team_id: str) -> str:
    """The FGA object of a Slack workspace."""
    return f"workspace:{fga_id(team_id)}"
