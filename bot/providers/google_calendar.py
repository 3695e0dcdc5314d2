"""Google Calendar API v3 over aiohttp: the :class:`~bot.providers.ports.CalendarApi` the
calendar tools use, called with the asker's Token Vault token.

The token only ever travels in the ``Authorization`` header: it is not logged, not put in
an exception, and exceptions raised here are built from the HTTP status and Google's short
``reason`` code alone (never Google's message, which may echo the request). Nothing is
retried here: a 429 (or Google's 403 ``rateLimitExceeded``) is raised as
:class:`ProviderRateLimited` with the ``Retry-After`` seconds, for the caller to decide.

``insert_event`` with a ``request_id`` is idempotent: the event id is derived from it
(base32hex, as Google allows client-chosen ids), so a retried insert finds Google answering
409 ``duplicate`` and returns the event the first attempt created instead of a second one.
"""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import aiohttp

from bot.providers.ports import (
    BusyInterval,
    CalendarEvent,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)
from bot.vault.ports import ProviderToken

PROVIDER = "google_calendar"
_AUTH = "https://www.googleapis.com/auth/"
#: Scopes a token needs (any one of each set), as Google documents each method.
READ_EVENTS_SCOPES = frozenset(
    {_AUTH + "calendar", _AUTH + "calendar.readonly", _AUTH + "calendar.events"}
    | {_AUTH + "calendar.events.readonly"}
)
WRITE_EVENTS_SCOPES = frozenset({_AUTH + "calendar", _AUTH + "calendar.events"})
FREEBUSY_SCOPES = frozenset(
    {_AUTH + "calendar", _AUTH + "calendar.readonly", _AUTH + "calendar.freebusy"}
    | {_AUTH + "calendar.events.freebusy"}
)
PAGE_SIZE = 250
MAX_PAGES = 20  # at most 5000 events in one window; a longer list is cut there
MAX_RETRY_AFTER = 3600.0
_REASON = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
_RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})

JsonDict = dict[str, Any]


def event_id_for(request_id: str) -> str:
    """The event id a request id stands for: 32 base32hex characters (``0-9a-v``)."""
    digest = hashlib.sha256(request_id.encode()).digest()
    return base64.b32hexencode(digest).decode().lower().rstrip("=")[:32]


class GoogleCalendarClient:
    """``CalendarApi`` against ``base_url`` (``https://www.googleapis.com/calendar/v3/``
    in production, the sandbox calendar in sandbox mode), on a shared session; each call
    is bounded by ``timeout`` seconds. Lists are read ``page_size`` events a page, at most
    :data:`MAX_PAGES` pages."""

    def __init__(
        self,
        *,
        base_url: str,
        session: aiohttp.ClientSession,
        timeout: float,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self._base = base_url if base_url.endswith("/") else base_url + "/"
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._page_size = page_size

    # -- CalendarApi -----------------------------------------------------------------------

    async def list_events(
        self, token: ProviderToken, *, time_min: datetime, time_max: datetime
    ) -> list[CalendarEvent]:
        params = {
            "timeMin": _rfc3339(time_min),
            "timeMax": _rfc3339(time_max),
            "singleEvents": "true",
            "orderBy": "startTime",
            "maxResults": str(self._page_size),
        }
        events: list[CalendarEvent] = []
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            body = await self._call("GET", "calendars/primary/events", token, params=params)
            items = body.get("items")
            if not isinstance(items, list):
                raise ProviderUnavailable(PROVIDER)
            events += [e for e in (_event(item) for item in items) if e is not None]
            next_token = body.get("nextPageToken")
            if not isinstance(next_token, str) or not next_token or next_token in seen:
                break
            seen.add(next_token)
            params = {**params, "pageToken": next_token}
        return events

    async def free_busy(
        self, token: ProviderToken, *, emails: list[str], time_min: datetime, time_max: datetime
    ) -> dict[str, list[BusyInterval]]:
        """Emails whose calendar Google could not read (unknown, not shared) are left out
        of the answer: their absence means "unknown", never "free"."""
        if not emails:
            return {}
        request = {
            "timeMin": _rfc3339(time_min),
            "timeMax": _rfc3339(time_max),
            "timeZone": "UTC",
            "items": [{"id": email} for email in emails],
        }
        body = await self._call("POST", "freeBusy", token, json=request)
        calendars = body.get("calendars")
        if not isinstance(calendars, dict):
            raise ProviderUnavailable(PROVIDER)
        out: dict[str, list[BusyInterval]] = {}
        for email in emails:
            entry = calendars.get(email)
            if not isinstance(entry, dict) or entry.get("errors"):
                continue
            busy = entry.get("busy", [])
            if not isinstance(busy, list):
                continue
            intervals = []
            for item in busy:
                start = _parse_time(item.get("start")) if isinstance(item, dict) else None
                end = _parse_time(item.get("end")) if isinstance(item, dict) else None
                if start is not None and end is not None:
                    intervals.append(BusyInterval(start=start, end=end))
            out[email] = intervals
        return out

    async def insert_event(
        self,
        token: ProviderToken,
        *,
        summary: str,
        start: datetime,
        end: datetime,
        attendees: list[str],
        description: str = "",
        request_id: str = "",
    ) -> CalendarEvent:
        resource: JsonDict = {
            "summary": summary,
            "start": _when(start),
            "end": _when(end),
            "attendees": [{"email": email} for email in attendees],
        }
        if description:
            resource["description"] = description
        event_id = event_id_for(request_id) if request_id else None
        if event_id is not None:
            resource["id"] = event_id
        try:
            body = await self._call(
                "POST",
                "calendars/primary/events",
                token,
                params={"sendUpdates": "all"},
                json=resource,
            )
        except ProviderRejected as exc:
            if exc.status != 409 or event_id is None:
                raise
            # The same request already created it (a retry after a lost answer).
            body = await self._call("GET", f"calendars/primary/events/{event_id}", token)
        event = _event(body)
        if event is None:
            raise ProviderUnavailable(PROVIDER)
        return event

    # -- HTTP ------------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        token: ProviderToken,
        *,
        params: dict[str, str] | None = None,
        json: JsonDict | None = None,
    ) -> JsonDict:
        url = self._base + quote(path, safe="/")
        headers = {"Authorization": f"Bearer {token.access_token}", "Accept": "application/json"}
        try:
            async with self._session.request(
                method, url, params=params, json=json, headers=headers, timeout=self._timeout
            ) as resp:
                status = resp.status
                retry_after = _retry_after(resp.headers.get("Retry-After"))
                try:
                    body = await resp.json(content_type=None)
                except ValueError:
                    body = None
        except (TimeoutError, aiohttp.ClientError):
            # Not chained: the aiohttp error carries the request it failed on.
            raise ProviderUnavailable(PROVIDER) from None
        if 200 <= status < 300:
            if not isinstance(body, dict):
                raise ProviderUnavailable(PROVIDER)
            return body
        reason = _reason(body)
        if status == 429 or (status == 403 and reason in _RATE_LIMIT_REASONS):
            raise ProviderRateLimited(PROVIDER, retry_after)
        if status >= 500:
            raise ProviderUnavailable(PROVIDER)
        raise ProviderRejected(PROVIDER, status, reason or _default_reason(status))


def _reason(body: object) -> str | None:
    """Google's first ``errors[].reason`` (or ``status``), if it is a plain code."""
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return None
    error = body["error"]
    errors = error.get("errors")
    candidates = []
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        candidates.append(errors[0].get("reason"))
    candidates.append(error.get("status"))
    for candidate in candidates:
        if isinstance(candidate, str) and _REASON.fullmatch(candidate):
            return candidate
    return None


def _default_reason(status: int) -> str:
    return {401: "authError", 403: "forbidden", 404: "notFound", 409: "duplicate"}.get(
        status, "badRequest"
    )


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date), bounded; None if absent
    or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _rfc3339(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("times sent to Google need a time zone")
    return value.isoformat()


def _when(value: datetime) -> JsonDict:
    out: JsonDict = {"dateTime": _rfc3339(value)}
    key = getattr(value.tzinfo, "key", None)  # a zoneinfo.ZoneInfo's IANA name
    if isinstance(key, str):
        out["timeZone"] = key
    return out


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _event(item: object) -> CalendarEvent | None:
    """A timed event from Google's resource (all-day and malformed ones are skipped)."""
    if not isinstance(item, dict) or not isinstance(item.get("id"), str):
        return None
    start = item.get("start")
    end = item.get("end")
    start_at = _parse_time(start.get("dateTime")) if isinstance(start, dict) else None
    end_at = _parse_time(end.get("dateTime")) if isinstance(end, dict) else None
    if start_at is None or end_at is None:
        return None
    attendees = tuple(
        str(a["email"])
        for a in item.get("attendees") or []
        if isinstance(a, dict) and isinstance(a.get("email"), str) and not a.get("organizer")
    )
    organizer = item.get("organizer")
    link = item.get("htmlLink")
    return CalendarEvent(
        id=item["id"],
        summary=str(item.get("summary") or ""),
        start=start_at,
        end=end_at,
        html_link=link if isinstance(link, str) else None,
        description=str(item.get("description") or ""),
        attendees=attendees,
        organizer=(
            str(organizer["email"])
            if isinstance(organizer, dict) and isinstance(organizer.get("email"), str)
            else None
        ),
    )
