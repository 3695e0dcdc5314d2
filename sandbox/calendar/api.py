"""The Google Calendar API v3 subset, over HTTP: ``events.list``, ``events.get``,
``events.insert`` and ``freebusy.query`` under ``calendar/v3/``.

Requests carry ``Authorization: Bearer <token>``; only tokens the shared
:class:`~sandbox.federation.Federation` issued for the Google connection are accepted, and
the calendar they open is the connected account's (its email). Scopes are checked per
method as Google documents them (:data:`METHOD_SCOPES`): writing needs ``calendar`` or
``calendar.events``; reading events ``calendar``, ``calendar.readonly``,
``calendar.events`` or ``calendar.events.readonly``; free/busy ``calendar``,
``calendar.readonly``, ``calendar.freebusy`` or ``calendar.events.freebusy``.

Errors have Google's shape: ``{"error": {"code", "message", "status", "errors": [{"domain",
"reason", "message"}]}}``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

from sandbox.federation import ConnectedAccount, Federation

from .faults import FaultKind, Faults
from .store import CalendarError, Calendars, Event, is_email

JsonDict = dict[str, Any]
_AUTH = "https://www.googleapis.com/auth/"
SCOPE_CALENDAR = _AUTH + "calendar"
SCOPE_READONLY = _AUTH + "calendar.readonly"
SCOPE_EVENTS = _AUTH + "calendar.events"
SCOPE_EVENTS_READONLY = _AUTH + "calendar.events.readonly"
SCOPE_EVENTS_OWNED = _AUTH + "calendar.events.owned"
SCOPE_EVENTS_OWNED_READONLY = _AUTH + "calendar.events.owned.readonly"
SCOPE_FREEBUSY = _AUTH + "calendar.freebusy"
SCOPE_EVENTS_FREEBUSY = _AUTH + "calendar.events.freebusy"
_READ_EVENTS = frozenset(
    {
        SCOPE_CALENDAR,
        SCOPE_READONLY,
        SCOPE_EVENTS,
        SCOPE_EVENTS_READONLY,
        SCOPE_EVENTS_OWNED,
        SCOPE_EVENTS_OWNED_READONLY,
    }
)
#: Any one of these scopes lets a token call the method.
METHOD_SCOPES: dict[str, frozenset[str]] = {
    "events.list": _READ_EVENTS,
    "events.get": _READ_EVENTS,
    "events.insert": frozenset({SCOPE_CALENDAR, SCOPE_EVENTS, SCOPE_EVENTS_OWNED}),
    "freebusy.query": frozenset(
        {SCOPE_CALENDAR, SCOPE_READONLY, SCOPE_FREEBUSY, SCOPE_EVENTS_FREEBUSY}
    ),
}
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
_DOMAIN = {"rateLimitExceeded": "usageLimits", "timeRangeEmpty": "calendar"}
MAX_RESULTS = 2500
DEFAULT_RESULTS = 250
MAX_FREEBUSY_ITEMS = 50


def google_error(
    status: int, reason: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {
        "error": {
            "code": status,
            "message": message,
            "errors": [
                {"message": message, "domain": _DOMAIN.get(reason, "global"), "reason": reason}
            ],
            "status": _STATUS.get(status, "UNKNOWN"),
        }
    }
    return web.json_response(body, status=status, headers=headers)


Handler = Callable[[web.Request, ConnectedAccount], Awaitable[web.Response]]


class CalendarApi:
    """The HTTP handlers over :class:`Calendars`; ``base_url`` gives event links."""

    def __init__(
        self,
        calendars: Calendars,
        *,
        federation: Federation,
        connection: str,
        faults: Faults,
        public_url: Callable[[web.Request], str],
    ) -> None:
        self.calendars = calendars
        self.federation = federation
        self.connection = connection
        self.faults = faults
        self.public_url = public_url
        self.calls: list[JsonDict] = []

    def routes(self, app: web.Application) -> None:
        v3 = "/calendar/v3"
        app.router.add_get(f"{v3}/calendars/{{calendar}}/events", self._guard("events.list"))
        app.router.add_post(f"{v3}/calendars/{{calendar}}/events", self._guard("events.insert"))
        app.router.add_get(
            f"{v3}/calendars/{{calendar}}/events/{{event}}", self._guard("events.get")
        )
        app.router.add_post(f"{v3}/freeBusy", self._guard("freebusy.query"))

    # -- authentication, scopes and faults -------------------------------------------------

    def _guard(self, method: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        handler: Handler = {
            "events.list": self.events_list,
            "events.get": self.events_get,
            "events.insert": self.events_insert,
            "freebusy.query": self.freebusy_query,
        }[method]

        async def guarded(request: web.Request) -> web.Response:
            response = await self._answer(method, handler, request)
            self.calls.append({"method": method, "status": response.status})
            del self.calls[:-1000]
            return response

        return guarded

    async def _answer(self, method: str, handler: Handler, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        realm = 'Bearer realm="https://accounts.google.com/"'
        if scheme.lower() != "bearer" or not token.strip():
            return google_error(401, "required", "Login Required.", {"WWW-Authenticate": realm})
        account = self.federation.resolve(token.strip())
        if account is None or account.connection != self.connection:
            return google_error(
                401,
                "authError",
                "Request had invalid authentication credentials.",
                {"WWW-Authenticate": realm + ', error="invalid_token"'},
            )
        needed = METHOD_SCOPES[method]
        if not needed & account.scopes:
            scope = " ".join(sorted(needed))
            return google_error(
                403,
                "insufficientPermissions",
                "Request had insufficient authentication scopes.",
                {"WWW-Authenticate": f'{realm}, error="insufficient_scope", scope="{scope}"'},
            )
        fault = self.faults.take(method)
        if fault is not None:
            if fault.kind is FaultKind.SLOW:
                await asyncio.sleep(fault.delay)
            elif fault.kind is FaultKind.RATE_LIMITED:
                return google_error(
                    429,
                    "rateLimitExceeded",
                    "Rate Limit Exceeded",
                    {"Retry-After": str(fault.retry_after)},
                )
            elif fault.kind is FaultKind.RATE_LIMITED_403:
                return google_error(403, "rateLimitExceeded", "Rate Limit Exceeded")
            elif fault.kind is FaultKind.SERVER_ERROR:
                return google_error(500, "backendError", "Backend Error")
            else:
                return google_error(503, "backendError", "The service is currently unavailable.")
        self.calendars.ensure(account.account)
        try:
            return await handler(request, account)
        except CalendarError as exc:
            return google_error(exc.status, exc.reason, exc.message)

    def _own_calendar(self, request: web.Request, account: ConnectedAccount) -> str:
        """The calendar in the path: ``primary`` or the account's own email; any other
        calendar is not shared with this account (Google answers 404)."""
        calendar = request.match_info["calendar"]
        if calendar == "primary" or calendar.lower() == account.account.lower():
            return account.account
        raise CalendarError(404, "notFound", "Not Found")

    # -- methods ---------------------------------------------------------------------------

    async def events_list(self, request: web.Request, account: ConnectedAccount) -> web.Response:
        email = self._own_calendar(request, account)
        q = request.query
        time_min = _time_param(q.get("timeMin"), "timeMin")
        time_max = _time_param(q.get("timeMax"), "timeMax")
        if time_min and time_max and time_max <= time_min:
            raise CalendarError(400, "timeRangeEmpty", "The specified time range is empty.")
        if q.get("orderBy") not in (None, "startTime", "updated"):
            raise CalendarError(400, "invalid", "Invalid value for orderBy.")
        if q.get("orderBy") == "startTime" and q.get("singleEvents") != "true":
            raise CalendarError(
                400,
                "badRequest",
                "The requested ordering is not available for the particular query.",
            )
        limit = _int_param(q.get("maxResults"), DEFAULT_RESULTS, 1, MAX_RESULTS, "maxResults")
        events = self.calendars.window(email, time_min, time_max)
        fingerprint = _fingerprint(email, q.get("timeMin"), q.get("timeMax"))
        offset = _read_page_token(q.get("pageToken"), fingerprint)
        page = events[offset : offset + limit]
        base = self.public_url(request)
        body: JsonDict = {
            "kind": "calendar#events",
            "etag": _etag(email, str(len(events))),
            "summary": email,
            "updated": _rfc3339(datetime.now(UTC)),
            "timeZone": "UTC",
            "accessRole": "owner",
            "items": [event_resource(e, base, viewer=email) for e in page],
        }
        if offset + limit < len(events):
            body["nextPageToken"] = _page_token(offset + limit, fingerprint)
        return web.json_response(body)

    async def events_get(self, request: web.Request, account: ConnectedAccount) -> web.Response:
        email = self._own_calendar(request, account)
        event = self.calendars.get(email, request.match_info["event"])
        return web.json_response(event_resource(event, self.public_url(request), viewer=email))

    async def events_insert(self, request: web.Request, account: ConnectedAccount) -> web.Response:
        email = self._own_calendar(request, account)
        if request.query.get("sendUpdates", "none") not in ("all", "externalOnly", "none"):
            raise CalendarError(400, "invalid", "Invalid value for sendUpdates.")
        body = await _json_body(request)
        start, zone = _event_time(body.get("start"), "start")
        end, _ = _event_time(body.get("end"), "end")
        attendees: list[str] = []
        raw = body.get("attendees", [])
        if not isinstance(raw, list):
            raise CalendarError(400, "invalid", "Invalid attendees.")
        for item in raw:
            if not isinstance(item, dict) or not is_email(item.get("email")):
                raise CalendarError(400, "invalid", "Invalid attendee email.")
            if str(item["email"]).lower() != email.lower():
                attendees.append(str(item["email"]))
        event_id = body.get("id")
        if event_id is not None and not isinstance(event_id, str):
            raise CalendarError(400, "invalid", "Invalid resource id value.")
        event = self.calendars.insert(
            organizer=email,
            summary=_text(body, "summary"),
            description=_text(body, "description"),
            start=start,
            end=end,
            attendees=attendees,
            event_id=event_id,
            time_zone=zone,
        )
        return web.json_response(event_resource(event, self.public_url(request), viewer=email))

    async def freebusy_query(self, request: web.Request, account: ConnectedAccount) -> web.Response:
        body = await _json_body(request)
        time_min = _time_param(body.get("timeMin"), "timeMin")
        time_max = _time_param(body.get("timeMax"), "timeMax")
        if time_min is None or time_max is None:
            raise CalendarError(400, "required", "timeMin and timeMax are required.")
        if time_max <= time_min:
            raise CalendarError(400, "timeRangeEmpty", "The specified time range is empty.")
        items = body.get("items")
        if not isinstance(items, list) or len(items) > MAX_FREEBUSY_ITEMS:
            raise CalendarError(400, "invalid", "Invalid items.")
        calendars: JsonDict = {}
        owners = {o.lower(): o for o in self.calendars.owners}
        for item in items:
            ref = item.get("id") if isinstance(item, dict) else None
            if not isinstance(ref, str) or not ref:
                raise CalendarError(400, "invalid", "Invalid calendar id.")
            email = account.account if ref == "primary" else owners.get(ref.lower())
            if email is None:
                not_found = [{"domain": "global", "reason": "notFound"}]
                calendars[ref] = {"errors": not_found, "busy": []}
                continue
            busy = self.calendars.busy(email, time_min, time_max)
            calendars[ref] = {
                "busy": [{"start": _rfc3339(b.start), "end": _rfc3339(b.end)} for b in busy]
            }
        return web.json_response(
            {
                "kind": "calendar#freeBusy",
                "timeMin": _rfc3339(time_min),
                "timeMax": _rfc3339(time_max),
                "calendars": calendars,
            }
        )


# -- resources ------------------------------------------------------------------------------


def event_link(base: str, event_id: str) -> str:
    return f"{base}event/{event_id}"


def event_resource(event: Event, base: str, *, viewer: str) -> JsonDict:
    """The event as Google returns it, seen from ``viewer``'s calendar."""
    me = viewer.lower()

    def when(value: datetime) -> JsonDict:
        out: JsonDict = {"dateTime": _rfc3339(value)}
        if event.time_zone:
            out["timeZone"] = event.time_zone
        return out

    person: JsonDict = {"email": event.organizer}
    if event.organizer.lower() == me:
        person["self"] = True
    attendees: list[JsonDict] = [
        {"email": event.organizer, "organizer": True, "responseStatus": "accepted"}
    ]
    attendees += [{"email": a, "responseStatus": "needsAction"} for a in event.attendees]
    for attendee in attendees:
        if str(attendee["email"]).lower() == me:
            attendee["self"] = True
    resource: JsonDict = {
        "kind": "calendar#event",
        "etag": _etag(event.id, event.created.isoformat()),
        "id": event.id,
        "status": "confirmed",
        "htmlLink": event_link(base, event.id),
        "created": _rfc3339(event.created),
        "updated": _rfc3339(event.created),
        "summary": event.summary,
        "creator": dict(person),
        "organizer": dict(person),
        "start": when(event.start),
        "end": when(event.end),
        "iCalUID": f"{event.id}@sandbox.calendar",
        "sequence": 0,
        "eventType": "default",
    }
    if event.description:
        resource["description"] = event.description
    if event.attendees:
        resource["attendees"] = attendees
    return resource


# -- parameters -----------------------------------------------------------------------------


def _rfc3339(value: datetime) -> str:
    text = value.astimezone(UTC).isoformat(timespec="seconds")
    return text.replace("+00:00", "Z")


def _time_param(value: object, name: str) -> datetime | None:
    """An RFC 3339 timestamp with its offset (Google refuses one without)."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise CalendarError(400, "badRequest", f"Bad Request: invalid {name}.")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise CalendarError(400, "badRequest", f"Bad Request: invalid {name}.") from None
    if parsed.tzinfo is None:
        raise CalendarError(400, "badRequest", f"Bad Request: {name} needs a time zone offset.")
    return parsed


def _event_time(value: object, name: str) -> tuple[datetime, str | None]:
    """``{"dateTime", "timeZone"}``: a local dateTime is read in ``timeZone``."""
    if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
        raise CalendarError(400, "required", f"Missing {name} time.")
    zone_name = value.get("timeZone")
    zone = None
    if zone_name is not None:
        if not isinstance(zone_name, str) or len(zone_name) > 64:
            raise CalendarError(400, "invalid", "Invalid time zone definition.")
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise CalendarError(400, "invalid", "Invalid time zone definition.") from None
    try:
        parsed = datetime.fromisoformat(str(value["dateTime"]))
    except ValueError:
        raise CalendarError(400, "invalid", f"Invalid {name} time.") from None
    if parsed.tzinfo is None:
        if zone is None:
            raise CalendarError(400, "required", f"Missing time zone definition for {name} time.")
        parsed = parsed.replace(tzinfo=zone)
    return parsed, zone_name


def _int_param(value: str | None, default: int, low: int, high: int, name: str) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise CalendarError(400, "invalid", f"Invalid value for {name}.") from None
    if number < low:
        raise CalendarError(400, "invalid", f"Invalid value for {name}.")
    return min(number, high)


def _text(body: JsonDict, key: str) -> str:
    value = body.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise CalendarError(400, "invalid", f"Invalid {key}.")
    return value


async def _json_body(request: web.Request) -> JsonDict:
    if request.content_type != "application/json":
        raise CalendarError(
            400, "parseError", "This API does not support parsing form-encoded input."
        )
    try:
        body = json.loads(await request.read())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CalendarError(400, "parseError", "Parse Error") from None
    if not isinstance(body, dict):
        raise CalendarError(400, "parseError", "Parse Error")
    return body


def _fingerprint(*parts: str | None) -> str:
    return hashlib.sha256("\x00".join(p or "" for p in parts).encode()).hexdigest()[:16]


def _page_token(offset: int, fingerprint: str) -> str:
    raw = json.dumps({"o": offset, "q": fingerprint}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_page_token(token: str | None, fingerprint: str) -> int:
    """The offset an opaque page token stands for; it only continues the query it came
    from (another window or calendar is a bad request, as at Google)."""
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        offset = data["o"]
        same = data["q"] == fingerprint
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise CalendarError(400, "invalid", "Invalid page token.") from None
    if not isinstance(offset, int) or offset < 0 or not same:
        raise CalendarError(400, "invalid", "Invalid page token.")
    return offset


def _etag(*parts: str) -> str:
    return '"' + hashlib.sha256("|".join(parts).encode()).hexdigest()[:16] + '"'
