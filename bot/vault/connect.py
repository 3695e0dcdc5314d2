"""Connecting a provider account through Auth0's Connected Accounts flow (My Account API),
then resuming the request that needed it.

``connect_url`` stores a one-time request bound to the Slack user and the identity linked
to it (``CONNECT_TTL``) and returns pmbot's page for it. That page names the person and
the account; its *Continue* (an anti-forgery protected POST, see ``bot.vault.routes``)
calls :meth:`ConnectFlows.begin`: the request is marked started (once) and bound to that
browser, a My Account API token is had from the person's refresh token, and
``/me/v1/connected-accounts/connect`` is called with a fresh ``state`` and a PKCE S256
challenge; the browser goes to ``connect_uri?ticket=...``. The provider sends it back to
``/connect/callback`` with ``connect_code`` and ``state``: :meth:`ConnectFlows.complete`
finds the request by ``state`` (single use, same browser), calls
``/me/v1/connected-accounts/complete`` with the verifier, forgets any cached token of
that account and hands the waiting request's ``resume_id`` to the resume hook.
"""

from __future__ import annotations

import asyncio
import enum
import hmac
import json
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from sqlalchemy import delete, select, update

from bot.errors import ServiceUnavailable
from bot.identity.auth0 import Auth0Rejected, TokenSet, pkce_pair
from bot.identity.crypto import DecryptionError, TokenCipher
from bot.identity.grants import Grants
from bot.identity.model import Identity, aware, utcnow, valid_slack_ids
from bot.storage.db import Database
from bot.storage.models import SlackLink
from bot.vault.client import VaultClient
from bot.vault.models import ConnectRequest
from bot.vault.my_account import CONNECT_SCOPE, MyAccountApi, MyAccountRejected
from bot.vault.ports import Connection, ResumeHook

log = logging.getLogger(__name__)

# Request ids and states are ``secrets.token_urlsafe(32)``; anything else is refused
# before it reaches a query.
_TOKEN_ID = re.compile(r"[A-Za-z0-9_-]{32,64}")
_RESUME_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_SCOPE = re.compile(r"[\x21-\x7e]{1,200}")


class ConnectFailure(enum.StrEnum):
    """Why connecting was refused (words in ``bot.messages.CONNECT_REASONS``)."""

    UNKNOWN = "unknown"
    USED = "used"
    EXPIRED = "expired"
    NOT_STARTED = "not_started"
    BROWSER_MISMATCH = "browser_mismatch"
    FORGED_REQUEST = "forged_request"
    NOT_LINKED = "not_linked"
    REJECTED = "rejected"
    DENIED = "denied"
    MISSING_PARAMETERS = "missing_parameters"


class ConnectFailed(Exception):
    def __init__(self, reason: ConnectFailure) -> None:
        super().__init__(reason.value)
        self.reason = reason


class MyAccountTokens(Protocol):
    """A My Account API token from a refresh token (``Auth0Client.my_account_token``)."""

    async def my_account_token(self, refresh_token: str, scope: str) -> TokenSet: ...


@dataclass(frozen=True)
class PendingConnect:
    request_id: str
    team_id: str
    slack_user_id: str
    connection: Connection
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class ConnectStart:
    browser_url: str  # connect_uri?ticket=...
    browser_binding: str
    state: str


@dataclass(frozen=True)
class Connected:
    team_id: str
    slack_user_id: str
    connection: Connection
    resume_id: str | None


def valid_token_id(value: str) -> bool:
    return bool(_TOKEN_ID.fullmatch(value))


class ConnectFlows:
    """The :class:`~bot.vault.ports.ConnectLinks` of pmbot and the flow behind its pages.

    ``resume_hook`` is settable: the composition root gives it the agent's resume once
    the agent exists; without one, a connected account resumes nothing."""

    def __init__(
        self,
        *,
        db: Database,
        cipher: TokenCipher,
        grants: Grants,
        tokens: MyAccountTokens,
        my_account: MyAccountApi,
        vault: VaultClient,
        base_url: str,
        ttl: timedelta,
        resume_hook: ResumeHook | None = None,
    ) -> None:
        self._db = db
        self._cipher = cipher
        self._grants = grants
        self._tokens = tokens
        self._my_account = my_account
        self._vault = vault
        self._base_url = base_url.rstrip("/")
        self._ttl = ttl
        self.resume_hook = resume_hook
        self._resuming: set[asyncio.Task[None]] = set()

    @property
    def ttl(self) -> timedelta:
        return self._ttl

    @property
    def callback_url(self) -> str:
        """The ``redirect_uri`` of the flow (an allowed callback URL of the application)."""
        return f"{self._base_url}/connect/callback"

    # -- ConnectLinks ----------------------------------------------------------------

    async def connect_url(
        self,
        identity: Identity,
        connection: Connection,
        *,
        scopes: frozenset[str] = frozenset(),
        resume_id: str | None = None,
    ) -> str:
        if not valid_slack_ids(identity.team_id, identity.slack_user_id):
            raise ValueError("not a Slack team and user id")
        if resume_id is not None and not _RESUME_ID.fullmatch(resume_id):
            raise ValueError("resume_id must be 1-64 letters, digits or . _ : -")
        wanted = sorted(self._vault.scopes_for(connection, scopes))
        if not all(_SCOPE.fullmatch(s) for s in wanted):
            raise ValueError("a scope is not a printable word")
        request_id = secrets.token_urlsafe(32)
        now = utcnow()
        async with self._db.session() as session:
            session.add(
                ConnectRequest(
                    id=request_id,
                    team_id=identity.team_id,
                    slack_user_id=identity.slack_user_id,
                    sub=identity.sub,
                    connection=connection.value,
                    scopes=json.dumps(wanted),
                    resume_id=resume_id,
                    created_at=now,
                    expires_at=now + self._ttl,
                )
            )
        return f"{self._base_url}/connect/{request_id}"

    # -- the page ----------------------------------------------------------------------

    async def describe(self, request_id: str) -> PendingConnect:
        """The request behind a page URL, while it can still be started."""
        request = await self._load(request_id)
        self._check_startable(request)
        return _pending(request)

    async def begin(self, request_id: str) -> ConnectStart:
        """*Continue* was pressed: start the flow at the My Account API (once)."""
        request = await self._load(request_id)
        self._check_startable(request)
        binding = secrets.token_urlsafe(24)
        state = secrets.token_urlsafe(32)
        async with self._db.session() as session:
            result = await session.execute(
                update(ConnectRequest)
                .where(ConnectRequest.id == request_id, ConnectRequest.started_at.is_(None))
                .values(started_at=utcnow(), browser_binding=binding, state=state)
            )
            if getattr(result, "rowcount", 0) != 1:
                raise ConnectFailed(ConnectFailure.USED)
        try:
            access = await self._my_account_token(request)
            verifier, challenge = pkce_pair()
            ticket = await self._my_account.connect(
                access,
                connection=self._vault.connection_name(Connection(request.connection)),
                redirect_uri=self.callback_url,
                state=state,
                scopes=json.loads(request.scopes),
                code_challenge=challenge,
            )
        except ServiceUnavailable:
            await self._put_back(request_id)
            raise
        except MyAccountRejected:
            await self._finish(request_id, "failed")
            raise ConnectFailed(ConnectFailure.REJECTED) from None
        except ConnectFailed:
            await self._finish(request_id, "failed")
            raise
        async with self._db.session() as session:
            await session.execute(
                update(ConnectRequest)
                .where(ConnectRequest.id == request_id)
                .values(
                    auth_session_enc=self._cipher.encrypt(
                        ticket.auth_session, purpose=_purpose("auth_session", request_id)
                    ),
                    code_verifier_enc=self._cipher.encrypt(
                        verifier, purpose=_purpose("pkce", request_id)
                    ),
                )
            )
        return ConnectStart(ticket.browser_url, binding, state)

    # -- the callback ------------------------------------------------------------------

    async def complete(
        self, *, state: str, connect_code: str, browser_binding: str | None
    ) -> Connected:
        """The provider sent the browser back with a ``connect_code``: finish the flow
        (once, in the browser that started it) and resume the waiting request."""
        request = await self._by_state(state, browser_binding)
        async with self._db.session() as session:
            # Consume first: a replayed callback finds the request finished.
            result = await session.execute(
                update(ConnectRequest)
                .where(ConnectRequest.id == request.id, ConnectRequest.finished_at.is_(None))
                .values(finished_at=utcnow(), outcome="completing")
            )
            if getattr(result, "rowcount", 0) != 1:
                raise ConnectFailed(ConnectFailure.USED)
        try:
            auth_session = self._open(request.auth_session_enc, "auth_session", request.id)
            verifier = self._open(request.code_verifier_enc, "pkce", request.id)
            access = await self._my_account_token(request)
            await self._my_account.complete(
                access,
                auth_session=auth_session,
                connect_code=connect_code,
                redirect_uri=self.callback_url,
                code_verifier=verifier,
            )
        except ServiceUnavailable:
            await self._reopen(request.id)
            raise
        except MyAccountRejected:
            await self._set_outcome(request.id, "failed")
            raise ConnectFailed(ConnectFailure.REJECTED) from None
        except ConnectFailed:
            await self._set_outcome(request.id, "failed")
            raise
        await self._set_outcome(request.id, "connected")
        connection = Connection(request.connection)
        # The account may have new scopes: the next exchange asks Auth0 again.
        self._vault.forget(request.team_id, request.slack_user_id, request.sub, connection)
        log.info("a %s account was connected", connection.value)
        return Connected(request.team_id, request.slack_user_id, connection, request.resume_id)

    async def deny(self, *, state: str, browser_binding: str | None) -> None:
        """The person refused at the provider (``error=access_denied``): the request ends."""
        request = await self._by_state(state, browser_binding)
        if not await self._finish(request.id, "denied"):
            raise ConnectFailed(ConnectFailure.USED)

    def resume(self, resume_id: str | None) -> None:
        """Run the waiting request again through the resume hook, in the background (the
        page does not wait for it); a failure is logged, never raised here."""
        hook = self.resume_hook
        if resume_id is None or hook is None:
            return

        async def run() -> None:
            try:
                await hook(resume_id)
            except Exception:
                log.exception("resuming a request after an account was connected failed")

        task = asyncio.get_running_loop().create_task(run())
        self._resuming.add(task)
        task.add_done_callback(self._resuming.discard)

    async def close(self, within: float = 10.0) -> None:
        """Let resumed requests finish (up to ``within`` seconds), then cancel the rest."""
        if not self._resuming:
            return
        _done, pending = await asyncio.wait(set(self._resuming), timeout=within)
        for task in pending:
            task.cancel()

    async def sweep(self) -> int:
        """Delete requests that can no longer be used (an hour past their expiry)."""
        cutoff = utcnow() - timedelta(hours=1)
        async with self._db.session() as session:
            result = await session.execute(
                delete(ConnectRequest).where(ConnectRequest.expires_at < cutoff)
            )
        return int(getattr(result, "rowcount", 0) or 0)

    # -- plumbing ------------------------------------------------------------------------

    async def _load(self, request_id: str) -> ConnectRequest:
        if not valid_token_id(request_id):
            raise ConnectFailed(ConnectFailure.UNKNOWN)
        async with self._db.session() as session:
            request = await session.get(ConnectRequest, request_id)
        if request is None:
            raise ConnectFailed(ConnectFailure.UNKNOWN)
        return request

    async def _by_state(self, state: str, browser_binding: str | None) -> ConnectRequest:
        if not valid_token_id(state):
            raise ConnectFailed(ConnectFailure.UNKNOWN)
        async with self._db.session() as session:
            request = await session.scalar(
                select(ConnectRequest).where(ConnectRequest.state == state)
            )
        if request is None:
            raise ConnectFailed(ConnectFailure.UNKNOWN)
        if request.finished_at is not None:
            raise ConnectFailed(ConnectFailure.USED)
        if aware(request.expires_at) <= utcnow():
            raise ConnectFailed(ConnectFailure.EXPIRED)
        if request.started_at is None or not request.browser_binding:
            raise ConnectFailed(ConnectFailure.NOT_STARTED)
        if not browser_binding or not hmac.compare_digest(
            request.browser_binding.encode(), browser_binding.encode("utf-8", "replace")
        ):
            raise ConnectFailed(ConnectFailure.BROWSER_MISMATCH)
        if request.auth_session_enc is None or request.code_verifier_enc is None:
            raise ConnectFailed(ConnectFailure.NOT_STARTED)
        return request

    @staticmethod
    def _check_startable(request: ConnectRequest) -> None:
        if request.finished_at is not None or request.started_at is not None:
            raise ConnectFailed(ConnectFailure.USED)
        if aware(request.expires_at) <= utcnow():
            raise ConnectFailed(ConnectFailure.EXPIRED)

    async def _my_account_token(self, request: ConnectRequest) -> str:
        """A My Account API token of the identity the request was made for, from its
        stored refresh token; the link must still be that identity's."""
        async with self._db.session() as session:
            link = await session.get(SlackLink, (request.team_id, request.slack_user_id))
        if link is None or link.sub != request.sub:
            raise ConnectFailed(ConnectFailure.NOT_LINKED)
        refresh = self._grants.open(link.refresh_token_enc, link.team_id, link.slack_user_id)
        if refresh is None:
            raise ConnectFailed(ConnectFailure.NOT_LINKED)
        try:
            tokens = await self._tokens.my_account_token(refresh, CONNECT_SCOPE)
        except Auth0Rejected as exc:
            log.info("Auth0 refused a My Account API token: %s", exc.error)
            raise ConnectFailed(ConnectFailure.REJECTED) from None
        if tokens.access_token is None:
            raise ConnectFailed(ConnectFailure.REJECTED)
        return tokens.access_token

    def _open(self, sealed: str | None, kind: str, request_id: str) -> str:
        try:
            return self._cipher.decrypt(sealed or "", purpose=_purpose(kind, request_id))
        except DecryptionError:
            raise ConnectFailed(ConnectFailure.NOT_STARTED) from None

    async def _put_back(self, request_id: str) -> None:
        """Auth0 could not be reached when starting: the same link may be opened again
        (with a new state and binding; nothing of the failed attempt is reused)."""
        async with self._db.session() as session:
            await session.execute(
                update(ConnectRequest)
                .where(ConnectRequest.id == request_id, ConnectRequest.finished_at.is_(None))
                .values(
                    started_at=None,
                    browser_binding=None,
                    state=None,
                    auth_session_enc=None,
                    code_verifier_enc=None,
                )
            )

    async def _reopen(self, request_id: str) -> None:
        """Auth0 could not be reached when completing: the callback may be loaded again."""
        async with self._db.session() as session:
            await session.execute(
                update(ConnectRequest)
                .where(ConnectRequest.id == request_id, ConnectRequest.outcome == "completing")
                .values(finished_at=None, outcome=None)
            )

    async def _finish(self, request_id: str, outcome: str) -> bool:
        async with self._db.session() as session:
            result = await session.execute(
                update(ConnectRequest)
                .where(ConnectRequest.id == request_id, ConnectRequest.finished_at.is_(None))
                .values(finished_at=utcnow(), outcome=outcome)
            )
        return getattr(result, "rowcount", 0) == 1

    async def _set_outcome(self, request_id: str, outcome: str) -> None:
        async with self._db.session() as session:
            await session.execute(
                update(ConnectRequest)
                .where(ConnectRequest.id == request_id)
                .values(outcome=outcome, auth_session_enc=None, code_verifier_enc=None)
            )


def _purpose(kind: str, request_id: str) -> str:
    # Binds a ciphertext to its request: copied to another row it does not decrypt.
    return f"connect_{kind}|{request_id}"


def _pending(request: ConnectRequest) -> PendingConnect:
    return PendingConnect(
        request_id=request.id,
        team_id=request.team_id,
        slack_user_id=request.slack_user_id,
        connection=Connection(request.connection),
        scopes=tuple(json.loads(request.scopes)),
    )


__all__ = [
    "ConnectFailed",
    "ConnectFailure",
    "ConnectFlows",
    "Connected",
    "PendingConnect",
    "valid_token_id",
]
