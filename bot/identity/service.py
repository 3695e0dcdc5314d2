"""Account linking: every Slack user is bound to one Auth0 identity.

Flow: ``start_link`` stores a one-time request (random id = OAuth ``state``, PKCE verifier
encrypted, nonce, ``LINK_TTL``) for ``(team_id, slack_user_id)`` and returns the URL to give
the user. Opening it shows which Slack person is being linked; *Continue* (an anti-forgery
protected POST) calls ``begin_login``, which marks the request started (once), binds it to
that browser with a cookie and returns the Universal Login URL (``prompt=login``, so an
existing Auth0 session cannot finish it silently). ``complete_login`` (the callback)
consumes the request (once), exchanges the code with the verifier and client credentials,
verifies the ID token fully and keeps the verified identity on the request. Nothing is
linked yet: the link takes effect only when the Slack user confirms it in Slack
(``confirm_link``, from a button only they see), so a login finished in somebody else's
browser links nothing. A request that is not confirmed in time is swept and its refresh
token revoked.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from authz.ids import fga_user
from authz.ports import Authorizer, AuthzError, AuthzUnavailable, AuthzValidationError
from bot.errors import (
    NotLinked,
    PermissionDenied,
    RelinkRequired,
    ServiceUnavailable,
)
from bot.identity.auth0 import (
    Auth0Rejected,
    pkce_pair,
    s256_challenge,
)
from bot.identity.crypto import TokenCipher
from bot.identity.grants import Grants
from bot.identity.model import (
    FINISHED,
    MAX_FGA_USER_LENGTH,
    MAX_SUB_LENGTH,
    Identity,
    LinkFailed,
    LinkFailure,
    LoginStart,
    Membership,
    PendingRequest,
    VerifiedLogin,
    aware,
    display_identity,
    identity_of_link,
    link_state,
    pkce_purpose,
    str_or_none,
    utcnow,
    valid_request_id,
    valid_slack_ids,
    workspace_member,
)
from bot.identity.ports import IdentityProvider, SlackDirectory, TokenVerification
from bot.identity.prompts import PromptUrls
from bot.identity.tokens import JwksUnavailable, TokenInvalid
from bot.storage.db import Database
from bot.storage.models import LinkRequest, SlackLink

log = logging.getLogger(__name__)


class IdentityService:
    def __init__(
        self,
        *,
        db: Database,
        auth0: IdentityProvider,
        verifier: TokenVerification,
        cipher: TokenCipher,
        authorizer: Authorizer,
        directory: SlackDirectory,
        callback_url: str,
        link_base_url: str,
        link_ttl: timedelta,
    ) -> None:
        self._db = db
        self._auth0 = auth0
        self._verifier = verifier
        self._cipher = cipher
        self._grants = Grants(db=db, auth0=auth0, verifier=verifier, cipher=cipher)
        self._prompts = PromptUrls(db=db, cipher=cipher)
        self._authz = authorizer
        self._directory = directory
        self._callback_url = callback_url
        self._link_base_url = link_base_url.rstrip("/")
        self._ttl = link_ttl
        self._refresh_locks: dict[tuple[str, str], asyncio.Lock] = {}

    @property
    def link_ttl(self) -> timedelta:
        return self._ttl

    @property
    def cipher(self) -> TokenCipher:
        return self._cipher

    # -- linking ----------------------------------------------------------------

    async def start_link(
        self, team_id: str, slack_user_id: str, *, prompt_url: str | None = None
    ) -> str:
        """A one-time URL that links this Slack user (valid ``link_ttl``, single use; a live
        one is reused)."""
        if not valid_slack_ids(team_id, slack_user_id):
            raise ValueError("not a Slack team and user id")
        now = utcnow()
        async with self._db.session() as session:
            # A person who writes three times before opening the link gets one link, not
            # three: a live request with at least half its life left is given again.
            live = await session.scalar(
                select(LinkRequest.id)
                .where(
                    LinkRequest.team_id == team_id,
                    LinkRequest.slack_user_id == slack_user_id,
                    LinkRequest.started_at.is_(None),
                    LinkRequest.expires_at > now + self._ttl / 2,
                )
                .order_by(LinkRequest.expires_at.desc())
                .limit(1)
            )
        if live is not None:
            if prompt_url:
                await self._prompts.remember(live, prompt_url)
            return f"{self._link_base_url}/auth/link/{live}"
        verifier, _ = pkce_pair()
        request_id = secrets.token_urlsafe(32)
        async with self._db.session() as session:
            session.add(
                LinkRequest(
                    id=request_id,
                    team_id=team_id,
                    slack_user_id=slack_user_id,
                    code_verifier_enc=self._cipher.encrypt(
                        verifier, purpose=pkce_purpose(request_id)
                    ),
                    nonce=secrets.token_urlsafe(24),
                    created_at=now,
                    expires_at=now + self._ttl,
                    prompt_urls_enc=self._prompts.seal(request_id, [prompt_url])
                    if prompt_url
                    else None,
                )
            )
        return f"{self._link_base_url}/auth/link/{request_id}"

    async def take_prompt_urls(self, request_id: str) -> list[str]:
        """The response_urls of the prompts that showed this link, forgotten as they are
        given (so each prompt is replaced once)."""
        return await self._prompts.take(request_id)

    async def _load_request(self, session: Any, request_id: str) -> LinkRequest:
        if not valid_request_id(request_id):
            raise LinkFailed(LinkFailure.STATE_UNKNOWN)
        request: LinkRequest | None = await session.get(LinkRequest, request_id)
        if request is None:
            raise LinkFailed(LinkFailure.STATE_UNKNOWN)
        return request

    async def describe_request(self, request_id: str) -> PendingRequest:
        """The pending request behind a link URL (for the confirmation page)."""
        async with self._db.session() as session:
            request = await self._load_request(session, request_id)
        self._check_usable(request, started_ok=False)
        return PendingRequest(request.id, request.team_id, request.slack_user_id)

    async def begin_login(self, request_id: str) -> LoginStart:
        """Mark the request started (once) and return where to send the browser."""
        binding = secrets.token_urlsafe(24)
        now = utcnow()
        async with self._db.session() as session:
            request = await self._load_request(session, request_id)
            self._check_usable(request, started_ok=False)
            result = await session.execute(
                update(LinkRequest)
                .where(LinkRequest.id == request_id, LinkRequest.started_at.is_(None))
                .values(started_at=now, browser_binding=binding)
            )
            if getattr(result, "rowcount", 0) != 1:
                raise LinkFailed(LinkFailure.STATE_USED)
            verifier = self._cipher.decrypt(
                request.code_verifier_enc, purpose=pkce_purpose(request_id)
            )
            nonce = request.nonce
            team_id, slack_user_id = request.team_id, request.slack_user_id
        url = self._auth0.authorize_url(
            redirect_uri=self._callback_url,
            state=request_id,
            nonce=nonce,
            code_challenge=s256_challenge(verifier),
        )
        return LoginStart(url, binding, team_id, slack_user_id)

    def _check_usable(self, request: LinkRequest, *, started_ok: bool) -> None:
        if request.consumed_at is not None or request.finished_at is not None:
            raise LinkFailed(LinkFailure.STATE_USED)
        if not started_ok and request.started_at is not None:
            raise LinkFailed(LinkFailure.STATE_USED)
        if aware(request.expires_at) <= utcnow():
            raise LinkFailed(LinkFailure.STATE_EXPIRED)

    async def complete_login(
        self, *, state: str, code: str, browser_binding: str | None
    ) -> VerifiedLogin:
        """The OAuth callback: verify who signed in and keep it for the Slack user's
        confirmation. Raises :class:`LinkFailed` or ``ServiceUnavailable``; when Auth0 is
        unreachable the request is put back, so the same link can be opened again."""
        async with self._db.session() as session:
            request = await self._load_request(session, state)
            self._check_usable(request, started_ok=True)
            if request.started_at is None or not request.browser_binding:
                raise LinkFailed(LinkFailure.STATE_NOT_STARTED)
            if not browser_binding or not hmac.compare_digest(
                request.browser_binding.encode(), browser_binding.encode()
            ):
                raise LinkFailed(LinkFailure.BROWSER_MISMATCH)
            # Consume first: a replayed callback finds the state used, whatever happens next.
            result = await session.execute(
                update(LinkRequest)
                .where(LinkRequest.id == state, LinkRequest.consumed_at.is_(None))
                .values(consumed_at=utcnow())
            )
            if getattr(result, "rowcount", 0) != 1:
                raise LinkFailed(LinkFailure.STATE_USED)
            verifier = self._cipher.decrypt(request.code_verifier_enc, purpose=pkce_purpose(state))
            nonce = request.nonce
            team_id, slack_user_id = request.team_id, request.slack_user_id
        try:
            return await self._verify_and_keep(
                state=state,
                code=code,
                verifier=verifier,
                nonce=nonce,
                team_id=team_id,
                slack_user_id=slack_user_id,
            )
        except ServiceUnavailable:
            await self._put_back(state)
            raise

    async def _verify_and_keep(
        self,
        *,
        state: str,
        code: str,
        verifier: str,
        nonce: str,
        team_id: str,
        slack_user_id: str,
    ) -> VerifiedLogin:
        try:
            tokens = await self._auth0.exchange_code(
                code=code, code_verifier=verifier, redirect_uri=self._callback_url
            )
        except Auth0Rejected as exc:
            log.info("Auth0 refused the code exchange: %s", exc.error)
            raise LinkFailed(LinkFailure.CODE_REJECTED, exc.error) from None
        id_token = tokens.id_token
        if id_token is None:
            raise LinkFailed(LinkFailure.NO_ID_TOKEN)
        try:
            claims = await self._verifier.verify_id_token(
                id_token, client_id=self._auth0.client_id, nonce=nonce
            )
        except TokenInvalid as exc:
            log.warning("ID token rejected: %s", exc.reason)
            raise LinkFailed(LinkFailure.ID_TOKEN_INVALID, exc.reason) from None
        except JwksUnavailable:
            raise ServiceUnavailable("Auth0") from None
        sub = claims.sub
        if len(sub) > MAX_SUB_LENGTH or len(fga_user(sub)) > MAX_FGA_USER_LENGTH:
            log.warning("an identity's sub is too long to record (%d characters)", len(sub))
            raise LinkFailed(LinkFailure.IDENTITY_UNSUPPORTED, "sub_too_long")
        permissions, expires_at = await self._grants.permissions_from(tokens)
        email = str_or_none(claims.claims.get("email"))
        email_verified = claims.claims.get("email_verified") is True
        name = str_or_none(claims.claims.get("name"))
        refresh = tokens.refresh_token
        now = utcnow()
        confirm_by = now + self._ttl
        async with self._db.session() as session:
            taken = await session.scalar(
                select(SlackLink).where(SlackLink.team_id == team_id, SlackLink.sub == sub)
            )
            if taken is not None and taken.slack_user_id != slack_user_id:
                raise LinkFailed(LinkFailure.IDENTITY_TAKEN)
            current = await session.get(SlackLink, (team_id, slack_user_id))
            await session.execute(
                update(LinkRequest)
                .where(LinkRequest.id == state)
                .values(
                    sub=sub,
                    email=email,
                    email_verified=email_verified,
                    name=name,
                    refresh_token_enc=(
                        self._grants.seal(refresh, team_id, slack_user_id)
                        if refresh is not None
                        else None
                    ),
                    permissions=json.dumps(permissions),
                    permissions_expire_at=expires_at,
                    verified_at=now,
                    confirm_by=confirm_by,
                )
            )
        replaces = None
        if current is not None:
            replaces = display_identity(
                current.email, current.email_verified, current.name, current.sub
            )
        return VerifiedLogin(
            request_id=state,
            team_id=team_id,
            slack_user_id=slack_user_id,
            sub=sub,
            display=display_identity(email, email_verified, name, sub),
            replaces=replaces,
            confirm_by=confirm_by,
        )

    async def _put_back(self, request_id: str) -> None:
        """Make a request usable again after an outage of Auth0 (fresh verifier, nonce
        and browser binding: nothing of the failed attempt can be reused)."""
        verifier, _ = pkce_pair()
        async with self._db.session() as session:
            await session.execute(
                update(LinkRequest)
                .where(LinkRequest.id == request_id, LinkRequest.verified_at.is_(None))
                .values(
                    started_at=None,
                    consumed_at=None,
                    browser_binding=None,
                    nonce=secrets.token_urlsafe(24),
                    code_verifier_enc=self._cipher.encrypt(
                        verifier, purpose=pkce_purpose(request_id)
                    ),
                )
            )

    async def confirm_link(self, *, request_id: str, team_id: str, slack_user_id: str) -> Identity:
        """The Slack user confirmed the verified login: the link takes effect now.

        Only the Slack user the request was made for can confirm it, once, before
        ``confirm_by``. Raises :class:`LinkFailed`, ``ServiceUnavailable`` (Slack or
        Auth0) or :class:`AuthzUnavailable` (then nothing changed and the person
        can press the button again)."""
        async with self._db.session() as session:
            request = await self._load_request(session, request_id)
        self._check_confirmable(request, team_id, slack_user_id)
        # Guests and Slack Connect users are linked but never made workspace members.
        membership = await self._directory.membership(team_id, slack_user_id)
        assert request.sub is not None
        sub = request.sub
        now = utcnow()
        async with self._db.session() as session:
            finished = await session.execute(
                update(LinkRequest)
                .where(LinkRequest.id == request_id, LinkRequest.finished_at.is_(None))
                .values(finished_at=now, outcome="linked", refresh_token_enc=None)
            )
            if getattr(finished, "rowcount", 0) != 1:
                raise LinkFailed(LinkFailure.STATE_USED)
            taken = await session.scalar(
                select(SlackLink).where(SlackLink.team_id == team_id, SlackLink.sub == sub)
            )
            if taken is not None and taken.slack_user_id != slack_user_id:
                raise LinkFailed(LinkFailure.IDENTITY_TAKEN)
            old = await session.get(SlackLink, (team_id, slack_user_id))
            old_state = link_state(old) if old is not None else None
            if old is not None:
                await session.delete(old)
                await session.flush()
            link = SlackLink(
                team_id=team_id,
                slack_user_id=slack_user_id,
                sub=sub,
                email=request.email,
                email_verified=bool(request.email_verified),
                name=request.name,
                refresh_token_enc=request.refresh_token_enc,
                key_id=(
                    self._cipher.key_id(request.refresh_token_enc)
                    if request.refresh_token_enc
                    else None
                ),
                permissions=request.permissions or "[]",
                permissions_expire_at=request.permissions_expire_at,
                linked_at=now,
                membership=membership.value,
            )
            session.add(link)
            try:
                await session.flush()
            except IntegrityError:
                raise LinkFailed(LinkFailure.IDENTITY_TAKEN) from None
        try:
            await self._apply_membership(team_id, slack_user_id, sub, membership, old_state)
        except AuthzError as exc:
            await self._undo_confirm(request_id, team_id, slack_user_id, sub, old_state)
            if isinstance(exc, AuthzValidationError):
                log.error("the authorization engine refused an identity: %s", exc.message)
                raise LinkFailed(LinkFailure.IDENTITY_UNSUPPORTED) from None
            raise AuthzUnavailable("the membership tuple could not be written") from None
        if old_state is not None and old_state["sub"] != sub:
            # The replaced identity's refresh token is of no more use to anyone.
            replaced = old_state["refresh_token_enc"]
            await self._grants.revoke_quietly(replaced, team_id, slack_user_id)
        return identity_of_link(link)

    def _check_confirmable(self, request: LinkRequest, team_id: str, slack_user_id: str) -> None:
        if not (
            hmac.compare_digest(request.team_id.encode(), team_id.encode())
            and hmac.compare_digest(request.slack_user_id.encode(), slack_user_id.encode())
        ):
            raise LinkFailed(LinkFailure.NOT_YOURS)
        if request.finished_at is not None:
            raise LinkFailed(FINISHED.get(request.outcome or "", LinkFailure.STATE_USED))
        if request.verified_at is None or request.sub is None:
            raise LinkFailed(LinkFailure.STATE_NOT_STARTED)
        if request.confirm_by is None or aware(request.confirm_by) <= utcnow():
            raise LinkFailed(LinkFailure.CONFIRM_EXPIRED)

    async def _apply_membership(
        self,
        team_id: str,
        slack_user_id: str,
        sub: str,
        membership: Membership,
        old_state: dict[str, Any] | None,
    ) -> None:
        """Write the FGA tuples of a new link, after it is committed (the engine may use
        the same database, and SQLite allows one writer)."""
        if membership is Membership.MEMBER:
            await self._authz.write([workspace_member(team_id, sub)])
        if old_state is not None and old_state["sub"] != sub:
            await self._authz.delete([workspace_member(team_id, old_state["sub"])])
        if membership is Membership.MEMBER and not await self._link_exists(
            team_id, slack_user_id, sub
        ):
            # An unlink ran between our commit and the tuple write: it may have deleted
            # the tuple before we wrote it. No link, no membership.
            await self._authz.delete([workspace_member(team_id, sub)])

    async def _undo_confirm(
        self,
        request_id: str,
        team_id: str,
        slack_user_id: str,
        sub: str,
        old_state: dict[str, Any] | None,
    ) -> None:
        """Authorization failed after the link was committed: take it back, restore the
        link it replaced and make the confirmation button work again."""
        async with self._db.session() as session:
            link = await session.get(SlackLink, (team_id, slack_user_id))
            refresh = link.refresh_token_enc if link is not None and link.sub == sub else None
            await session.execute(
                delete(SlackLink).where(
                    SlackLink.team_id == team_id,
                    SlackLink.slack_user_id == slack_user_id,
                    SlackLink.sub == sub,
                )
            )
            if old_state is not None:
                await session.flush()
                session.add(SlackLink(**old_state))
            await session.execute(
                update(LinkRequest)
                .where(LinkRequest.id == request_id)
                .values(finished_at=None, outcome=None, refresh_token_enc=refresh)
            )

    async def cancel_link(self, *, request_id: str, team_id: str, slack_user_id: str) -> None:
        """The Slack user refused the verified login: nothing is linked and the refresh
        token it brought is revoked."""
        async with self._db.session() as session:
            request = await self._load_request(session, request_id)
        self._check_confirmable(request, team_id, slack_user_id)
        async with self._db.session() as session:
            result = await session.execute(
                update(LinkRequest)
                .where(LinkRequest.id == request_id, LinkRequest.finished_at.is_(None))
                .values(finished_at=utcnow(), outcome="cancelled", refresh_token_enc=None)
            )
            if getattr(result, "rowcount", 0) != 1:
                raise LinkFailed(LinkFailure.STATE_USED)
        await self._drop_pending_token(request)

    async def _drop_pending_token(self, request: LinkRequest) -> None:
        if not request.refresh_token_enc or request.sub is None:
            return
        async with self._db.session() as session:
            in_use = await session.scalar(select(SlackLink).where(SlackLink.sub == request.sub))
        if in_use is not None:
            # Auth0 revokes every refresh token of the same user and application at once:
            # revoking this one would also end the grant a live link is using.
            return
        await self._grants.revoke_quietly(
            request.refresh_token_enc, request.team_id, request.slack_user_id
        )

    async def _link_exists(self, team_id: str, slack_user_id: str, sub: str) -> bool:
        async with self._db.session() as session:
            link = await session.get(SlackLink, (team_id, slack_user_id))
        return link is not None and link.sub == sub

    async def lookup(self, team_id: str, slack_user_id: str) -> Identity | None:
        """The stored link, as it is (one database read, nothing else). Its permissions may
        be stale (``permissions_stale``): use :meth:`current` before relying on them."""
        async with self._db.session() as session:
            link = await session.get(SlackLink, (team_id, slack_user_id))
        return None if link is None else identity_of_link(link)

    async def current(self, team_id: str, slack_user_id: str) -> Identity | None:
        """The linked identity with fresh permissions. When the access token they came
        from has expired this refreshes them at Auth0 (network) and stores the result
        (a write); when they cannot be refreshed the identity has none."""
        identity = await self.lookup(team_id, slack_user_id)
        if identity is None or not identity.permissions_stale:
            return identity
        lock = self._refresh_locks.setdefault((team_id, slack_user_id), asyncio.Lock())
        async with lock:
            async with self._db.session() as session:
                link = await session.get(SlackLink, (team_id, slack_user_id))
            if link is None:
                return None
            if link.permissions_expire_at and aware(link.permissions_expire_at) <= utcnow():
                await self._grants.refresh_permissions(link)
            return identity_of_link(link)

    async def require(self, team_id: str, slack_user_id: str) -> Identity:
        """:meth:`current`, or :class:`NotLinked`."""
        identity = await self.current(team_id, slack_user_id)
        if identity is None:
            raise NotLinked()
        return identity

    @staticmethod
    def require_permission(identity: Identity, permission: str) -> None:
        """Raise unless the Auth0 RBAC permission was granted and is fresh."""
        if identity.needs_relink:
            raise RelinkRequired()
        if permission not in identity.permissions:
            raise PermissionDenied(permission)

    async def unlink(self, team_id: str, slack_user_id: str) -> bool:
        """Revoke the refresh token at Auth0, remove the membership, then forget the link.
        False if there was none."""
        async with self._db.session() as session:
            link = await session.get(SlackLink, (team_id, slack_user_id))
        if link is None:
            return False
        refresh = self._grants.open(link.refresh_token_enc, team_id, slack_user_id)
        if refresh is not None:
            try:
                await self._auth0.revoke(refresh)
            except Auth0Rejected as exc:
                # Already invalid at Auth0 (revoked or expired): nothing left to revoke.
                log.info("Auth0 refused revocation: %s", exc.error)
        # The tuple goes first: if authorization is down nothing changed; a link left
        # without its tuple (the database failing next) grants less, never more.
        try:
            await self._authz.delete([workspace_member(team_id, link.sub)])
        except AuthzError:
            raise AuthzUnavailable("the membership tuple could not be removed") from None
        async with self._db.session() as session:
            # Only the link we revoked: one that replaced it meanwhile stays.
            await session.execute(
                delete(SlackLink).where(
                    SlackLink.team_id == team_id,
                    SlackLink.slack_user_id == slack_user_id,
                    SlackLink.sub == link.sub,
                )
            )
        # A confirmation running at the same time may have written the tuple again after
        # our first delete. Linking writes the tuple and then re-reads the link; deleting
        # the tuple after the row makes one of the two always see the other's work.
        if not await self._link_exists(team_id, slack_user_id, link.sub):
            try:
                await self._authz.delete([workspace_member(team_id, link.sub)])
            except AuthzError:
                log.error("membership of an unlinked identity could not be removed")
        return True

    async def sweep_link_requests(self) -> int:
        """Forget link requests that can no longer be used; a verified login that was
        never confirmed in Slack has its refresh token revoked."""
        now = utcnow()
        async with self._db.session() as session:
            unconfirmed = list(
                await session.scalars(
                    select(LinkRequest).where(
                        LinkRequest.verified_at.is_not(None),
                        LinkRequest.finished_at.is_(None),
                        LinkRequest.confirm_by < now,
                    )
                )
            )
        for request in unconfirmed:
            async with self._db.session() as session:
                result = await session.execute(
                    update(LinkRequest)
                    .where(LinkRequest.id == request.id, LinkRequest.finished_at.is_(None))
                    .values(finished_at=now, outcome="expired", refresh_token_enc=None)
                )
            if getattr(result, "rowcount", 0) == 1:
                await self._drop_pending_token(request)
        cutoff = now - timedelta(hours=1)
        async with self._db.session() as session:
            result = await session.execute(
                delete(LinkRequest).where(
                    LinkRequest.expires_at < cutoff,
                    LinkRequest.refresh_token_enc.is_(None),
                    (LinkRequest.confirm_by.is_(None)) | (LinkRequest.confirm_by < cutoff),
                )
            )
        return int(getattr(result, "rowcount", 0) or 0)
