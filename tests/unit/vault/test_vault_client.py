"""The Token Vault client against the dev identity provider (served on port 0): the real
exchange through auth0-python, the in-memory cache, and what each answer becomes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bot.errors import RelinkRequired, ServiceUnavailable
from bot.identity.auth0 import Auth0Client
from bot.identity.grants import Grants
from bot.identity.model import Identity
from bot.identity.tokens import JwksCache, TokenVerifier
from bot.vault.client import VaultClient
from bot.vault.ports import Connection, ConnectionRequired, ProviderToken
from sandbox.federation import ConnectedAccount
from tests.fakes.connect import linked, stored_refresh_token
from tests.support import CLIENT_ID, CLIENT_SECRET, TEAM, Harness, running_bot

CALENDAR = frozenset(
    {
        "https://www.googleapis.com/auth/calendar.events",
        "https://www.googleapis.com/auth/calendar.freebusy",
    }
)


@pytest.fixture
async def bot(database_url: str) -> AsyncIterator[Harness]:
    async with running_bot(database_url) as harness:
        yield harness


@pytest.fixture
async def alice(bot: Harness) -> Identity:
    return await linked(bot, "U0ALICE", "alice@example.com")


def connect(bot: Harness, who: Identity, connection: str, account: str, scopes: set[str]) -> None:
    bot.idp.federation.connect(
        ConnectedAccount(
            sub=who.sub, connection=connection, account=account, scopes=frozenset(scopes)
        )
    )


async def test_a_cold_exchange_asks_the_provider_and_a_warm_one_does_not(
    bot: Harness, alice: Identity
) -> None:
    connect(bot, alice, "google-oauth2", "alice@example.com", set(CALENDAR))
    vault = bot.deps.vault
    before = bot.idp.token_vault.exchanges
    first = await vault.access_token(alice, Connection.GOOGLE_CALENDAR)
    assert bot.idp.token_vault.exchanges == before + 1
    second = await vault.access_token(alice, Connection.GOOGLE_CALENDAR)
    assert second == first
    assert bot.idp.token_vault.exchanges == before + 1, "the warm call reached the provider"
    # The token is one the sandbox providers accept, for Alice's Google account.
    account = bot.idp.federation.resolve(first.access_token)
    assert account is not None and account.account == "alice@example.com"
    assert first.scopes == CALENDAR


async def test_slack_tokens_are_user_tokens_of_the_person(bot: Harness, alice: Identity) -> None:
    connect(bot, alice, "sign-in-with-slack", "U0ALICE", {"chat:write"})
    token = await bot.deps.vault.access_token(alice, Connection.SLACK)
    assert token.access_token.startswith("xoxp-")
    account = bot.idp.federation.resolve(token.access_token)
    assert account is not None and account.account == "U0ALICE"


async def test_concurrent_cold_calls_make_one_exchange(bot: Harness, alice: Identity) -> None:
    connect(bot, alice, "google-oauth2", "alice@example.com", set(CALENDAR))
    before = bot.idp.token_vault.exchanges
    tokens = await asyncio.gather(
        *(bot.deps.vault.access_token(alice, Connection.GOOGLE_CALENDAR) for _ in range(5))
    )
    assert len({t.access_token for t in tokens}) == 1
    assert bot.idp.token_vault.exchanges == before + 1


async def test_a_dropped_token_is_fetched_again(bot: Harness, alice: Identity) -> None:
    connect(bot, alice, "google-oauth2", "alice@example.com", set(CALENDAR))
    vault = bot.deps.vault
    first = await vault.access_token(alice, Connection.GOOGLE_CALENDAR)
    vault.invalidate(alice, Connection.GOOGLE_CALENDAR)
    assert not vault.cached(alice, Connection.GOOGLE_CALENDAR)
    before = bot.idp.token_vault.exchanges
    second = await vault.access_token(alice, Connection.GOOGLE_CALENDAR)
    assert bot.idp.token_vault.exchanges == before + 1
    assert second.access_token != first.access_token


async def test_a_token_about_to_expire_is_not_kept(bot: Harness, alice: Identity) -> None:
    """Tokens living less than TOKEN_VAULT_EXPIRY_MARGIN are used once, never cached."""
    connect(bot, alice, "google-oauth2", "alice@example.com", set(CALENDAR))
    bot.idp.federation.token_ttl = 30  # below the 60 s margin
    vault = bot.deps.vault
    before = bot.idp.token_vault.exchanges
    await vault.access_token(alice, Connection.GOOGLE_CALENDAR)
    await vault.access_token(alice, Connection.GOOGLE_CALENDAR)
    assert bot.idp.token_vault.exchanges == before + 2
    assert not vault.cached(alice, Connection.GOOGLE_CALENDAR)


async def test_the_cache_is_per_person(bot: Harness, alice: Identity) -> None:
    bob = await linked(bot, "U0BOB", "bob@example.com")
    connect(bot, alice, "google-oauth2", "alice@example.com", set(CALENDAR))
    await bot.deps.vault.access_token(alice, Connection.GOOGLE_CALENDAR)
    with pytest.raises(ConnectionRequired):
        await bot.deps.vault.access_token(bob, Connection.GOOGLE_CALENDAR)


async def test_an_account_not_connected_needs_connecting(bot: Harness, alice: Identity) -> None:
    """The exchange answers 401 federated_connection_refresh_token_not_found."""
    with pytest.raises(ConnectionRequired) as caught:
        await bot.deps.vault.access_token(alice, Connection.GOOGLE_CALENDAR)
    assert caught.value.connection is Connection.GOOGLE_CALENDAR
    assert caught.value.missing_scopes == frozenset()
    with pytest.raises(ConnectionRequired) as slack:
        await bot.deps.vault.access_token(alice, Connection.SLACK)
    assert slack.value.connection is Connection.SLACK


async def test_missing_scopes_are_named(bot: Harness, alice: Identity) -> None:
    connect(
        bot,
        alice,
        "google-oauth2",
        "alice@example.com",
        {"https://www.googleapis.com/auth/calendar.events"},
    )
    with pytest.raises(ConnectionRequired) as caught:
        await bot.deps.vault.access_token(alice, Connection.GOOGLE_CALENDAR)
    assert caught.value.missing_scopes == {"https://www.googleapis.com/auth/calendar.freebusy"}
    # A caller that needs only what was granted gets its token.
    token = await bot.deps.vault.access_token(
        alice,
        Connection.GOOGLE_CALENDAR,
        scopes=frozenset({"https://www.googleapis.com/auth/calendar.events"}),
    )
    assert token.access_token.startswith("ya29.")


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_rate_limits_and_server_errors_are_unavailability(
    bot: Harness, alice: Identity, status: int
) -> None:
    connect(bot, alice, "google-oauth2", "alice@example.com", set(CALENDAR))
    bot.idp.token_vault.faults.add(status)
    with pytest.raises(ServiceUnavailable) as caught:
        await bot.deps.vault.access_token(alice, Connection.GOOGLE_CALENDAR)
    assert caught.value.service == "Auth0"
    assert not bot.deps.vault.cached(alice, Connection.GOOGLE_CALENDAR)
    # Nothing was remembered of the failure: the next call works.
    await bot.deps.vault.access_token(alice, Connection.GOOGLE_CALENDAR)


async def test_an_unreachable_provider_is_unavailability(bot: Harness, alice: Identity) -> None:
    dead = Auth0Client(
        domain="127.0.0.1:9",
        protocol="http",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        audience="https://pmbot.test/api",
        timeout=2,
    )
    try:
        vault = VaultClient(
            db=bot.deps.db,
            grants=Grants(
                db=bot.deps.db,
                auth0=dead,
                verifier=TokenVerifier(
                    jwks=JwksCache(
                        jwks_url=f"{dead.base_url}/.well-known/jwks.json", session=bot.deps.http
                    ),
                    issuer=f"{dead.base_url}/",
                    leeway=0,
                ),
                cipher=bot.deps.identity.cipher,
            ),
            exchange=dead,
            connections={Connection.GOOGLE_CALENDAR: "google-oauth2"},
            default_scopes={Connection.GOOGLE_CALENDAR: CALENDAR},
            expiry_margin=timedelta(seconds=60),
        )
        with pytest.raises(ServiceUnavailable):
            await vault.access_token(alice, Connection.GOOGLE_CALENDAR)
    finally:
        dead.close()


async def test_a_revoked_grant_needs_a_new_link(bot: Harness, alice: Identity) -> None:
    """The refresh token itself is revoked (403 invalid_grant): connecting cannot help."""
    connect(bot, alice, "google-oauth2", "alice@example.com", set(CALENDAR))
    await bot.deps.auth0.revoke(await stored_refresh_token(bot, "U0ALICE"))
    with pytest.raises(RelinkRequired):
        await bot.deps.vault.access_token(alice, Connection.GOOGLE_CALENDAR)


async def test_an_identity_no_longer_linked_gets_nothing(bot: Harness, alice: Identity) -> None:
    connect(bot, alice, "google-oauth2", "alice@example.com", set(CALENDAR))
    assert await bot.deps.identity.unlink(TEAM, "U0ALICE")
    with pytest.raises(RelinkRequired):
        await bot.deps.vault.access_token(alice, Connection.GOOGLE_CALENDAR)


async def test_tokens_never_reach_logs_or_reprs(
    bot: Harness, alice: Identity, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    refresh = await stored_refresh_token(bot, "U0ALICE")
    with pytest.raises(ConnectionRequired):
        await bot.deps.vault.access_token(alice, Connection.GOOGLE_CALENDAR)
    connect(bot, alice, "google-oauth2", "alice@example.com", {"openid"})
    with pytest.raises(ConnectionRequired):
        await bot.deps.vault.access_token(alice, Connection.GOOGLE_CALENDAR)
    connect(bot, alice, "google-oauth2", "alice@example.com", set(CALENDAR))
    bot.idp.token_vault.faults.add(503)
    with pytest.raises(ServiceUnavailable):
        await bot.deps.vault.access_token(alice, Connection.GOOGLE_CALENDAR)
    token = await bot.deps.vault.access_token(alice, Connection.GOOGLE_CALENDAR)
    logging.getLogger("test").info("got %r and %s", token, token)
    assert token.access_token not in caplog.text
    assert refresh not in caplog.text
    assert "ya29." not in caplog.text
    for shown in (repr(token), str(token), f"{token!r}", repr([token])):
        assert token.access_token not in shown
    assert "ProviderToken(expires_at=" in repr(token)
    assert isinstance(token, ProviderToken)
