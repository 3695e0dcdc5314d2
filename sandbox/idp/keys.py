"""RS256 signing keys with rotation, published as a JWKS."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

ALGORITHM = "RS256"
_KEY_SIZE = 2048


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()

    def public_jwk(self) -> dict[str, str]:
        numbers = self.public_key.public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "alg": ALGORITHM,
            "kid": self.kid,
            "n": _b64url_uint(numbers.n),
            "e": _b64url_uint(numbers.e),
        }


def _new_key() -> SigningKey:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_SIZE)
    return SigningKey(kid=secrets.token_urlsafe(16), private_key=private_key)


class KeyRing:
    """Published keys, the newest of which signs.

    Rotation follows Auth0's "rotate then revoke": a new key signs from now on, while
    older keys stay in the JWKS (so tokens they signed still verify) until retired.
    """

    def __init__(self) -> None:
        self._keys: list[SigningKey] = [_new_key()]

    @property
    def active(self) -> SigningKey:
        return self._keys[-1]

    def rotate(self) -> str:
        """Add a new signing key and return its kid."""
        key = _new_key()
        self._keys.append(key)
        return key.kid

    def retire(self, kid: str) -> None:
        """Remove a key from the JWKS; tokens it signed stop verifying.

        Raises:
            KeyError: no published key has this kid.
            ValueError: the key is the one currently signing (rotate first).
        """
        index = next((i for i, key in enumerate(self._keys) if key.kid == kid), None)
        if index is None:
            raise KeyError(kid)
        if index == len(self._keys) - 1:
            raise ValueError("the active signing key cannot be retired; rotate first")
        del self._keys[index]

    def public_key(self, kid: str) -> rsa.RSAPublicKey | None:
        for key in self._keys:
            if key.kid == kid:
                return key.public_key
        return None

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        # Newest first, like Auth0 lists its current key before the previous one.
        return {"keys": [key.public_jwk() for key in reversed(self._keys)]}

    def sign(self, claims: dict[str, Any]) -> str:
        key = self.active
        return jwt.encode(
            claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid, "typ": "JWT"}
        )
