"""Account linking: every Slack user is bound to one Auth0 identity.

Flow: ``start_link`` stores a one-time request (random id = OAuth ``state``, PKCE verifier
encrypted, nonce, 10 minutes) for ``(team_id, slack_user_id)`` and returns the URL to give
the user. Opening it (``begin_login``) shows which Slack user is being linked, marks the
request started (once), binds it to that browser with a cookie and redirects to Universal
Login. ``complete_link`` (the callback) consumes the request (once), exchanges the code
with the verifier and client credentials, verifies the ID token fully and stores the link
and the encrypted refresh token. Nothing is written unless every step succeeded.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from authz.ports import Authorizer, AuthzError, TupleKey
from bot.errors import AuthorizationUnavailable, NotLinked, PermissionDenied, ServiceUnavailable
from bot.identity.auth0 import Auth0Client, Auth0Rejected, pkce_pair, s256_challenge
from bot.identity.crypto import DecryptionError, TokenCipher
from bot.identity.tokens import JwksUnavailable, TokenInvalid, TokenVerifier
from bot.storage.db import Database
from bot.storage.models import LinkRequest, SlackLink

log = logging.getLogger(__name__)

PERMISSIONS = ("read:projects", "write:projects", "manage:calendar", "delete:projects")


class LinkFailed(Exception):
    """Linking was refused; ``reason`` is a stable code the web page turns into text."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Identity:
    team_id: str
    slack_user_id: str
    sub: str
    email: str | None
    name: str | None
    permissions: frozenset[str]
    linked_at: datetime

    @property
    def fga_user(self) -> str:
        return f"user:{self.sub}"


@dataclass(frozen=True)
class LoginStart:
    authorize_url: str
    browser_binding: str
    team_id: str
    slack_user_id: str


def workspace_member(team_id: str, sub: str) -> TupleKey:
    return TupleKey(user=f"user:{sub}", relation="member", object=f"workspace:{team_id}")


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    # SQLite returns naive datetimes; everything is stored in UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class IdentityService:
    def __init__(
        self,
        *,
        db: Database,
        auth0: Auth0Client,
        verifier: TokenVerifier,
        cipher: TokenCipher,
        authorizer: Authorizer,
        callback_url: str,
        link_base_url: str,
        link_ttl: timedelta,
    ) -> None:
        self._db = db
        self._auth0 = auth0
        self._verifier = verifier
        self._cipher = cipher
        self._authz = authorizer
        self._callback_url = callback_url
        self._link_base_url = link_base_url.rstrip("/")
        self._ttl = link_ttl

    # -- linking ----------------------------------------------------------------

    async def start_link(self, team_id: str, slack_user_id: str) -> str:
        """A one-time URL that links this Slack user (valid ``link_ttl``, single use)."""
        verifier, _ = pkce_pair()
        request_id = secrets.token_urlsafe(32)
        now = _now()
        async with self._db.session() as session:
            session.add(
                LinkRequest(
                    id=request_id,
                    team_id=team_id,
                    slack_user_id=slack_user_id,
                    code_verifier_enc=self._cipher.encrypt(verifier, purpose="pkce"),
                    nonce=secrets.token_urlsafe(24),
                    created_at=now,
                    expires_at=now + self._ttl,
                )
            )
        return f"{self._link_base_url}/auth/link/{request_id}"

    async def describe_request(self, request_id: str) -> LinkRequest:
        """The pending request behind a link URL (for the confirmation page)."""
        async with self._db.session() as session:
            request = await session.get(LinkRequest, request_id)
        self._check_usable(request, started_ok=False)
        assert request is not None
        return request

    async def begin_login(self, request_id: str) -> LoginStart:
        """Mark the request started (once) and return where to send the browser."""
        binding = secrets.token_urlsafe(24)
        now = _now()
        async with self._db.session() as session:
            request = await session.get(LinkRequest, request_id)
            self._check_usable(request, started_ok=False)
            assert request is not None
            result = await session.execute(
                update(LinkRequest)
                .where(LinkRequest.id == request_id, LinkRequest.started_at.is_(None))
                .values(started_at=now, browser_binding=binding)
            )
            if getattr(result, "rowcount", 0) != 1:
                raise LinkFailed("state_used")
            verifier = self._cipher.decrypt(request.code_verifier_enc, purpose="pkce")
            nonce = request.nonce
            team_id, slack_user_id = request.team_id, request.slack_user_id
        challenge = s256_challenge(verifier)
        url = self._auth0.authorize_url(
            redirect_uri=self._callback_url,
            state=request_id,
            nonce=nonce,
            code_challenge=challenge,
        )
        return LoginStart(url, binding, team_id, slack_user_id)

    def _check_usable(self, request: LinkRequest | None, *, started_ok: bool) -> None:
        if request is None:
            raise LinkFailed("state_unknown")
        if request.consumed_at is not None:
            raise LinkFailed("state_used")
        if not started_ok and request.started_at is not None:
            raise LinkFailed("state_used")
        if _aware(request.expires_at) <= _now():
            raise LinkFailed("state_expired")

    async def complete_link(
        self, *, state: str, code: str, browser_binding: str | None
    ) -> Identity:
        """The OAuth callback. Raises :class:`LinkFailed` or ``ServiceUnavailable``."""
        async with self._db.session() as session:
            request = await session.get(LinkRequest, state)
            self._check_usable(request, started_ok=True)
            assert request is not None
            if request.started_at is None or not request.browser_binding:
                raise LinkFailed("state_not_started")
            if not browser_binding or not hmac.compare_digest(
                request.browser_binding, browser_binding
            ):
                raise LinkFailed("browser_mismatch")
            # Consume first: a replayed callback finds the state used, whatever happens next.
            result = await session.execute(
                update(LinkRequest)
                .where(LinkRequest.id == state, LinkRequest.consumed_at.is_(None))
                .values(consumed_at=_now())
            )
            if getattr(result, "rowcount", 0) != 1:
                raise LinkFailed("state_used")
            verifier = self._cipher.decrypt(request.code_verifier_enc, purpose="pkce")
            nonce = request.nonce
            team_id, slack_user_id = request.team_id, request.slack_user_id

        try:
            tokens = await self._auth0.exchange_code(
                code=code, code_verifier=verifier, redirect_uri=self._callback_url
            )
        except Auth0Rejected as exc:
            log.info("Auth0 refused the code exchange: %s", exc.error)
            raise LinkFailed("code_rejected") from None
        id_token = tokens.get("id_token") if isinstance(tokens, dict) else None
        if not isinstance(id_token, str):
            raise LinkFailed("no_id_token")
        try:
            claims = await self._verifier.verify_id_token(
                id_token, client_id=self._auth0.client_id, nonce=nonce
            )
        except TokenInvalid as exc:
            log.warning("ID token rejected: %s", exc.reason)
            raise LinkFailed(f"id_token_{exc.reason}") from None
        except JwksUnavailable:
            raise ServiceUnavailable("Auth0") from None
        permissions, expires_at = await self._permissions_from(tokens)
        refresh = tokens.get("refresh_token")
        identity = await self._store_link(
            team_id=team_id,
            slack_user_id=slack_user_id,
            claims=claims.claims,
            refresh_token=refresh if isinstance(refresh, str) else None,
            permissions=permissions,
            permissions_expire_at=expires_at,
        )
        return identity

    async def _permissions_from(self, tokens: dict[str, Any]) -> tuple[list[str], datetime]:
        access = tokens.get("access_token")
        expires_in = int(tokens.get("expires_in") or 300)
        permissions: list[str] = []
        if isinstance(access, str):
            try:
                verified = await self._verifier.verify_access_token(
                    access, audience=self._auth0.audience
                )
            except TokenInvalid as exc:
                log.warning("access token rejected: %s", exc.reason)
            except JwksUnavailable:
                raise ServiceUnavailable("Auth0") from None
            else:
                raw = verified.claims.get("permissions") or []
                permissions = sorted(str(p) for p in raw if isinstance(p, str))
        return permissions, _now() + timedelta(seconds=max(60, expires_in))

    async def _store_link(
        self,
        *,
        team_id: str,
        slack_user_id: str,
        claims: dict[str, Any],
        refresh_token: str | None,
        permissions: list[str],
        permissions_expire_at: datetime,
    ) -> Identity:
        sub = str(claims["sub"])
        now = _now()
        async with self._db.session() as session:
            taken = await session.scalar(
                select(SlackLink).where(SlackLink.team_id == team_id, SlackLink.sub == sub)
            )
            if taken is not None and taken.slack_user_id != slack_user_id:
                raise LinkFailed("identity_taken")
            existing = await session.get(SlackLink, (team_id, slack_user_id))
            old_sub = existing.sub if existing is not None else None
            if existing is not None:
                await session.delete(existing)
                await session.flush()
            enc = (
                self._cipher.encrypt(refresh_token, purpose="refresh_token")
                if refresh_token
                else None
            )
            session.add(
                SlackLink(
                    team_id=team_id,
                    slack_user_id=slack_user_id,
                    sub=sub,
                    email=_str_or_none(claims.get("email")),
                    name=_str_or_none(claims.get("name")),
                    refresh_token_enc=enc,
                    key_id=self._cipher.key_id(enc) if enc else None,
                    permissions=json.dumps(permissions),
                    permissions_expire_at=permissions_expire_at,
                    linked_at=now,
                )
            )
            try:
                await session.flush()
            except IntegrityError:
                raise LinkFailed("identity_taken") from None
        # The membership tuple is written after the link is committed (the engine may use
        # the same database, and SQLite allows one writer); if authorization is down the
        # link is removed again, so nothing is half-written and the user can retry.
        try:
            if old_sub and old_sub != sub:
                await self._authz.delete([workspace_member(team_id, old_sub)])
            await self._authz.write([workspace_member(team_id, sub)])
        except AuthzError:
            async with self._db.session() as session:
                await session.execute(
                    delete(SlackLink).where(
                        SlackLink.team_id == team_id,
                        SlackLink.slack_user_id == slack_user_id,
                        SlackLink.sub == sub,
                    )
                )
            raise AuthorizationUnavailable() from None
        return Identity(
            team_id=team_id,
            slack_user_id=slack_user_id,
            sub=sub,
            email=_str_or_none(claims.get("email")),
            name=_str_or_none(claims.get("name")),
            permissions=frozenset(permissions),
            linked_at=now,
        )

    # -- lookups ----------------------------------------------------------------

    async def get(self, team_id: str, slack_user_id: str) -> Identity | None:
        async with self._db.session() as session:
            link = await session.get(SlackLink, (team_id, slack_user_id))
        if link is None:
            return None
        if link.permissions_expire_at and _aware(link.permissions_expire_at) <= _now():
            await self._refresh_permissions(link)
        return _identity(link)

    async def require(self, team_id: str, slack_user_id: str) -> Identity:
        identity = await self.get(team_id, slack_user_id)
        if identity is None:
            raise NotLinked()
        return identity

    @staticmethod
    def require_permission(identity: Identity, permission: str) -> None:
        """Raise :class:`PermissionDenied` unless the Auth0 RBAC permission was granted."""
        if permission not in identity.permissions:
            raise PermissionDenied(permission)

    async def _refresh_permissions(self, link: SlackLink) -> None:
        if not link.refresh_token_enc:
            return
        try:
            refresh = self._cipher.decrypt(link.refresh_token_enc, purpose="refresh_token")
        except DecryptionError:
            log.warning("a stored refresh token no longer decrypts; keeping old permissions")
            return
        try:
            tokens = await self._auth0.refresh(refresh)
        except Auth0Rejected:
            # The grant is gone (revoked at Auth0): no permissions until relinked.
            link.permissions = "[]"
            link.permissions_expire_at = None
            await self._save_permissions(link, [], None)
            return
        permissions, expires_at = await self._permissions_from(tokens)
        link.permissions = json.dumps(permissions)
        link.permissions_expire_at = expires_at
        await self._save_permissions(link, permissions, expires_at)

    async def _save_permissions(
        self, link: SlackLink, permissions: list[str], expires_at: datetime | None
    ) -> None:
        async with self._db.session() as session:
            await session.execute(
                update(SlackLink)
                .where(
                    SlackLink.team_id == link.team_id, SlackLink.slack_user_id == link.slack_user_id
                )
                .values(permissions=json.dumps(permissions), permissions_expire_at=expires_at)
            )

    async def unlink(self, team_id: str, slack_user_id: str) -> bool:
        """Revoke the refresh token at Auth0, then forget the link. False if none."""
        async with self._db.session() as session:
            link = await session.get(SlackLink, (team_id, slack_user_id))
        if link is None:
            return False
        if link.refresh_token_enc:
            try:
                refresh = self._cipher.decrypt(link.refresh_token_enc, purpose="refresh_token")
            except DecryptionError:
                refresh = None
            if refresh is not None:
                try:
                    await self._auth0.revoke(refresh)
                except Auth0Rejected as exc:
                    # Already invalid at Auth0 (revoked or expired): nothing left to revoke.
                    log.info("Auth0 refused revocation: %s", exc.error)
        try:
            await self._authz.delete([workspace_member(team_id, link.sub)])
        except AuthzError:
            raise AuthorizationUnavailable() from None
        async with self._db.session() as session:
            await session.execute(
                delete(SlackLink).where(
                    SlackLink.team_id == team_id, SlackLink.slack_user_id == slack_user_id
                )
            )
        return True

    async def sweep_link_requests(self) -> int:
        """Delete link requests past their expiry (they can no longer be used)."""
        async with self._db.session() as session:
            result = await session.execute(
                delete(LinkRequest).where(LinkRequest.expires_at < _now() - timedelta(hours=1))
            )
        return int(getattr(result, "rowcount", 0) or 0)


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _identity(link: SlackLink) -> Identity:
    return Identity(
        team_id=link.team_id,
        slack_user_id=link.slack_user_id,
        sub=link.sub,
        email=link.email,
        name=link.name,
        permissions=frozenset(json.loads(link.permissions or "[]")),
        linked_at=_aware(link.linked_at),
    )
