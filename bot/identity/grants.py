"""The Auth0 grant behind a link: its refresh token, kept encrypted and bound to its row,
and the RBAC permissions it yields. Refreshing fails closed: permissions that cannot be
refreshed are none."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update

from bot.errors import ServiceUnavailable
from bot.identity.auth0 import Auth0Rejected, TokenSet
from bot.identity.crypto import DecryptionError, TokenCipher
from bot.identity.model import LEGACY_REFRESH_PURPOSE, refresh_purpose, utcnow
from bot.identity.ports import IdentityProvider, TokenVerification
from bot.identity.tokens import JwksUnavailable, TokenInvalid
from bot.storage.db import Database
from bot.storage.models import SlackLink

log = logging.getLogger(__name__)


class Grants:
    def __init__(
        self,
        *,
        db: Database,
        auth0: IdentityProvider,
        verifier: TokenVerification,
        cipher: TokenCipher,
    ) -> None:
        self._db = db
        self._auth0 = auth0
        self._verifier = verifier
        self._cipher = cipher

    def seal(self, refresh_token: str, team_id: str, slack_user_id: str) -> str:
        """The refresh token encrypted for the row of (team, Slack user)."""
        return self._cipher.encrypt(refresh_token, purpose=refresh_purpose(team_id, slack_user_id))

    async def revoke_quietly(
        self, refresh_token_enc: str | None, team_id: str, slack_user_id: str
    ) -> None:
        refresh = self.open(refresh_token_enc, team_id, slack_user_id)
        if refresh is None:
            return
        try:
            await self._auth0.revoke(refresh)
        except Auth0Rejected as exc:
            log.info("Auth0 refused revocation: %s", exc.error)
        except ServiceUnavailable:
            log.warning("could not revoke a refresh token that is no longer used: Auth0 down")

    async def permissions_from(self, tokens: TokenSet) -> tuple[list[str], datetime]:
        access = tokens.access_token
        expires_in = tokens.expires_in
        permissions: list[str] = []
        if access is not None:
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
        return permissions, utcnow() + timedelta(seconds=max(60, expires_in))

    # -- lookups ----------------------------------------------------------------

    def open(self, refresh_token_enc: str | None, team_id: str, slack_user_id: str) -> str | None:
        if not refresh_token_enc:
            return None
        try:
            return self._cipher.decrypt(
                refresh_token_enc, purpose=refresh_purpose(team_id, slack_user_id)
            )
        except DecryptionError:
            pass
        try:
            # Tokens stored before ciphertexts were bound to their row.
            return self._cipher.decrypt(refresh_token_enc, purpose=LEGACY_REFRESH_PURPOSE)
        except DecryptionError:
            log.warning("a stored refresh token does not decrypt (key dropped or tampered)")
            return None

    async def refresh_permissions(self, link: SlackLink) -> None:
        """Fail closed: permissions that cannot be refreshed are none, and the person is
        told to link again. A rotated refresh token replaces the stored one."""
        refresh = self.open(link.refresh_token_enc, link.team_id, link.slack_user_id)
        if refresh is None:
            await self._save_permissions(link, [], None)
            return
        try:
            tokens = await self._auth0.refresh(refresh)
        except Auth0Rejected:
            # The grant is gone (revoked at Auth0): no permissions until relinked.
            await self._save_permissions(link, [], None)
            return
        permissions, expires_at = await self.permissions_from(tokens)
        rotated = tokens.refresh_token
        enc = (
            self.seal(rotated, link.team_id, link.slack_user_id)
            if rotated is not None and rotated != refresh
            else None
        )
        await self._save_permissions(link, permissions, expires_at, refresh_token_enc=enc)

    async def _save_permissions(
        self,
        link: SlackLink,
        permissions: list[str],
        expires_at: datetime | None,
        *,
        refresh_token_enc: str | None = None,
    ) -> None:
        values: dict[str, Any] = {
            "permissions": json.dumps(permissions),
            "permissions_expire_at": expires_at,
        }
        if refresh_token_enc is not None:
            values["refresh_token_enc"] = refresh_token_enc
            values["key_id"] = self._cipher.key_id(refresh_token_enc)
        async with self._db.session() as session:
            await session.execute(
                update(SlackLink)
                .where(
                    SlackLink.team_id == link.team_id,
                    SlackLink.slack_user_id == link.slack_user_id,
                    SlackLink.sub == link.sub,
                )
                .values(**values)
            )
        for key, value in values.items():
            setattr(link, key, value)
