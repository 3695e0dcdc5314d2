"""Encryption of tokens at rest: AES-256-GCM with a key id, so keys can rotate.

Keyring format (setting ``TOKEN_ENCRYPTION_KEYS``): ``kid:base64key[,kid:base64key...]``
with 32-byte keys; the first key encrypts, every key decrypts. A ciphertext is
``kid.base64url(nonce || ciphertext+tag)``; the key id and the purpose are bound as
associated data so a ciphertext cannot be moved to another column or row kind.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class KeyringError(ValueError):
    pass


class DecryptionError(Exception):
    """The ciphertext was tampered with, or its key is no longer configured."""


def parse_keyring(spec: str) -> list[tuple[str, bytes]]:
    keys: list[tuple[str, bytes]] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        kid, sep, encoded = part.partition(":")
        if not sep or not kid or "." in kid:
            raise KeyringError("each key must be written kid:base64key (kid without dots)")
        try:
            key = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise KeyringError(f"key {kid!r} is not valid base64") from None
        if len(key) != 32:
            raise KeyringError(f"key {kid!r} must be 32 bytes (AES-256), got {len(key)}")
        keys.append((kid, key))
    if not keys:
        raise KeyringError("at least one key is required")
    return keys


class TokenCipher:
    def __init__(self, keyring: str) -> None:
        keys = parse_keyring(keyring)
        self.active_kid = keys[0][0]
        self._keys = {kid: AESGCM(key) for kid, key in keys}
        # MAC keys are derived from the encryption keys, one per key id, so that no key
        # is used for two algorithms.
        self._mac_keys = {
            kid: hmac.new(key, b"pmbot mac key", hashlib.sha256).digest() for kid, key in keys
        }

    def encrypt(self, plaintext: str, *, purpose: str) -> str:
        nonce = os.urandom(12)
        aad = f"{self.active_kid}|{purpose}".encode()
        sealed = self._keys[self.active_kid].encrypt(nonce, plaintext.encode(), aad)
        return f"{self.active_kid}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str, *, purpose: str) -> str:
        kid, _, body = token.partition(".")
        aead = self._keys.get(kid)
        if aead is None:
            raise DecryptionError(f"key {kid!r} is not configured")
        try:
            raw = base64.urlsafe_b64decode(body.encode())
            plain = aead.decrypt(raw[:12], raw[12:], f"{kid}|{purpose}".encode())
        except (InvalidTag, ValueError):
            raise DecryptionError("ciphertext does not verify") from None
        return plain.decode()

    def sign(self, message: str, *, purpose: str) -> str:
        """A MAC of ``message`` for ``purpose`` (e.g. an anti-forgery token)."""
        digest = hmac.new(
            self._mac_keys[self.active_kid], f"{purpose}|{message}".encode(), hashlib.sha256
        ).digest()
        return f"{self.active_kid}.{base64.urlsafe_b64encode(digest).decode().rstrip('=')}"

    def verify(self, message: str, tag: str, *, purpose: str) -> bool:
        """True when ``tag`` is :meth:`sign` of ``message`` under any configured key."""
        kid, _, _ = tag.partition(".")
        key = self._mac_keys.get(kid)
        if key is None:
            return False
        digest = hmac.new(key, f"{purpose}|{message}".encode(), hashlib.sha256).digest()
        expected = f"{kid}.{base64.urlsafe_b64encode(digest).decode().rstrip('=')}"
        return hmac.compare_digest(expected.encode(), tag.encode("utf-8", "replace"))

    def key_id(self, token: str) -> str:
        return token.partition(".")[0]
