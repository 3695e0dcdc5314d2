"""Verification of Auth0 ID and access tokens against the tenant's JWKS.

Only RS256 is accepted (``alg: none`` and HS256 are refused before any key is used). An
unknown ``kid`` triggers at most one JWKS refetch per ``refetch_interval`` so a flood of
forged tokens cannot turn into a flood of requests to Auth0.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt
from jwt.algorithms import RSAAlgorithm

ALLOWED_ALG = "RS256"


class TokenInvalid(Exception):
    """The token failed verification; ``reason`` is a short, log-safe code."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class JwksUnavailable(Exception):
    """The JWKS could not be fetched."""


@dataclass(frozen=True)
class VerifiedClaims:
    claims: dict[str, Any]

    @property
    def sub(self) -> str:
        return str(self.claims["sub"])


class JwksCache:
    def __init__(
        self,
        *,
        jwks_url: str,
        session: aiohttp.ClientSession,
        refetch_interval: float = 60.0,
        timeout: float = 10.0,
    ) -> None:
        self._url = jwks_url
        self._session = session
        self._refetch_interval = refetch_interval
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetch_count = 0

    async def _fetch(self) -> None:
        # The fetch time is recorded only on success: a failed fetch must not hold back
        # the next one (valid logins would fail as "unknown key" for a minute).
        self.fetch_count += 1
        try:
            async with self._session.get(self._url, timeout=self._timeout) as resp:
                if resp.status != 200:
                    raise JwksUnavailable(f"JWKS answered {resp.status}")
                doc = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
            raise JwksUnavailable(type(exc).__name__) from None
        if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
            raise JwksUnavailable("JWKS is not a key set")
        keys: dict[str, Any] = {}
        for jwk in doc["keys"]:
            if not isinstance(jwk, dict):
                continue
            if jwk.get("kty") == "RSA" and jwk.get("kid") and jwk.get("use", "sig") == "sig":
                try:
                    keys[str(jwk["kid"])] = RSAAlgorithm.from_jwk(json.dumps(jwk))
                except (jwt.PyJWTError, ValueError, KeyError):
                    continue
        self._keys = keys
        self._fetched_at = time.monotonic()

    async def key(self, kid: str) -> Any:
        async with self._lock:
            if kid in self._keys:
                return self._keys[kid]
            due = (
                self._fetched_at is None
                or time.monotonic() - self._fetched_at >= self._refetch_interval
            )
            if due:
                await self._fetch()
            if kid not in self._keys:
                raise TokenInvalid("unknown_kid")
            return self._keys[kid]


class TokenVerifier:
    def __init__(self, *, jwks: JwksCache, issuer: str, leeway: int) -> None:
        self._jwks = jwks
        self._issuer = issuer
        self._leeway = leeway

    async def _verify(self, token: str, audience: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenInvalid("malformed") from None
        if header.get("alg") != ALLOWED_ALG:
            raise TokenInvalid("bad_alg")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenInvalid("no_kid")
        key = await self._jwks.key(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALLOWED_ALG],
                audience=audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenInvalid("expired") from None
        except jwt.InvalidIssuerError:
            raise TokenInvalid("bad_iss") from None
        except jwt.InvalidAudienceError:
            raise TokenInvalid("bad_aud") from None
        except jwt.InvalidSignatureError:
            raise TokenInvalid("bad_signature") from None
        except jwt.PyJWTError as exc:
            raise TokenInvalid(f"invalid:{type(exc).__name__}") from None
        return claims

    async def verify_id_token(self, token: str, *, client_id: str, nonce: str) -> VerifiedClaims:
        claims = await self._verify(token, client_id)
        aud = claims.get("aud")
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != client_id:
            raise TokenInvalid("bad_azp")
        token_nonce = claims.get("nonce")
        if not isinstance(token_nonce, str) or not hmac.compare_digest(token_nonce, nonce):
            raise TokenInvalid("bad_nonce")
        return VerifiedClaims(claims)

    async def verify_backchannel_id_token(self, token: str, *, client_id: str) -> VerifiedClaims:
        """An ID token from the CIBA grant: signature, ``iss``, ``aud`` = ``client_id``
        (``azp`` when several audiences), ``exp``. CIBA requests carry no ``nonce``, so
        none is checked; the ``auth_req_id`` the token answers binds it instead."""
        claims = await self._verify(token, client_id)
        aud = claims.get("aud")
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != client_id:
            raise TokenInvalid("bad_azp")
        return VerifiedClaims(claims)

    async def verify_access_token(self, token: str, *, audience: str) -> VerifiedClaims:
        return VerifiedClaims(await self._verify(token, audience))
