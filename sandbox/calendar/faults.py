"""Injected faults of the sandbox calendar: the next calls answer as an overloaded or
broken Google would (in memory only; for tests and for trying the bot's error paths)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class FaultKind(enum.StrEnum):
    RATE_LIMITED = "rate_limited"  # 429 rateLimitExceeded, with Retry-After
    RATE_LIMITED_403 = "rate_limited_403"  # 403 rateLimitExceeded (Google's other spelling)
    SERVER_ERROR = "server_error"  # 500 backendError
    UNAVAILABLE = "unavailable"  # 503 backendError
    SLOW = "slow"  # answers normally after ``delay`` seconds


# The API methods, as Google names them.
METHODS = frozenset({"events.list", "events.get", "events.insert", "freebusy.query"})


@dataclass
class Fault:
    kind: FaultKind
    remaining: int
    retry_after: int
    delay: float
    method: str | None  # None: any method


class Faults:
    """Pending faults, taken first-in first-out by the calls they match."""

    def __init__(self) -> None:
        self._pending: list[Fault] = []

    def add(
        self,
        kind: FaultKind | str,
        *,
        times: int = 1,
        retry_after: int = 1,
        delay: float = 0.0,
        method: str | None = None,
    ) -> None:
        kind = FaultKind(kind)
        if not 1 <= times <= 1000:
            raise ValueError("times must be 1..1000")
        if not 0 <= retry_after <= 3600:
            raise ValueError("retry_after must be 0..3600 seconds")
        if not 0 <= delay <= 120:
            raise ValueError("delay must be 0..120 seconds")
        if method is not None and method not in METHODS:
            raise ValueError(f"method must be one of {sorted(METHODS)}")
        self._pending.append(Fault(kind, times, retry_after, delay, method))

    def take(self, method: str) -> Fault | None:
        """The fault this call of ``method`` answers with, if any (uses one up)."""
        for fault in self._pending:
            if fault.method is None or fault.method == method:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._pending.remove(fault)
                return fault
        return None

    def clear(self) -> None:
        self._pending.clear()
