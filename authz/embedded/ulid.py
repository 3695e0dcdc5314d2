"""ULIDs, OpenFGA's ids for stores and models."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from typing import Final

_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class _UlidFactory:
    """ULIDs (48-bit millisecond time + 80 random bits, Crockford base32), monotonic within
    the process so that ids created in the same millisecond still sort by creation."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_rand = 0

    def __call__(self) -> str:
        with self._lock:
            ms = time.time_ns() // 1_000_000
            if ms <= self._last_ms:
                ms, rand = self._last_ms, self._last_rand + 1
                if rand >= 1 << 80:
                    ms, rand = ms + 1, secrets.randbits(79)
            else:
                rand = secrets.randbits(79)  # room to increment within the millisecond
            self._last_ms, self._last_rand = ms, rand
        value = (ms << 80) | rand
        return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -5, -5))


new_ulid: Callable[[], str] = _UlidFactory()
"""A new 26-character ULID (OpenFGA's id format for stores and models)."""
