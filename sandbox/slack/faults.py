"""Injected faults: the next calls of a Web API method answer HTTP 429 (in memory only)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .common import SandboxError


@dataclass
class Fault:
    """Pending 429 answers for one Web API method."""

    remaining: int
    retry_after: int


class Faults:
    """The pending faults, by Web API method."""

    def __init__(self) -> None:
        self._pending: dict[str, Fault] = {}

    def add(self, method: str, times: int, retry_after: int) -> None:
        if not isinstance(method, str) or not re.fullmatch(r"[a-zA-Z]+(\.[a-zA-Z]+)+", method):
            raise SandboxError("invalid_method", "method must look like chat.postMessage")
        if not isinstance(times, int) or isinstance(times, bool) or not 1 <= times <= 1000:
            raise SandboxError("invalid_times", "times must be an integer from 1 to 1000")
        if (
            not isinstance(retry_after, int)
            or isinstance(retry_after, bool)
            or not 0 <= retry_after <= 3600
        ):
            raise SandboxError("invalid_retry_after", "retry_after must be 0..3600 seconds")
        self._pending[method] = Fault(times, retry_after)

    def take(self, method: str) -> Fault | None:
        """The fault to answer this call of ``method`` with, if any (uses one up)."""
        fault = self._pending.get(method)
        if fault is None:
            return None
        fault.remaining -= 1
        if fault.remaining <= 0:
            del self._pending[method]
        return fault

    def pending(self) -> dict[str, Fault]:
        return dict(self._pending)
