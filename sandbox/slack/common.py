"""What every part of the Slack sandbox speaks: JSON-shaped dicts, Slack-style errors and
ids, and Slack's lenient booleans."""

from __future__ import annotations

import secrets
from typing import Any

JsonDict = dict[str, Any]


class SandboxError(Exception):
    """A request the sandbox refuses; ``error`` is a Slack-style error code."""

    def __init__(self, error: str, detail: str | None = None, *, extra: JsonDict | None = None):
        super().__init__(detail or error)
        self.error = error
        self.detail = detail
        self.extra = extra or {}


def random_id(prefix: str, length: int = 10) -> str:
    """An uppercase alphanumeric Slack-style id such as ``Ev0A1B2C3D4E``."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


def truthy(value: Any) -> bool:
    """A boolean parameter as Slack reads it (``"true"``, ``"1"``, ``"yes"`` or a truthy value)."""
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return bool(value)
