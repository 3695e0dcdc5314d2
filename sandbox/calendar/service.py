"""The sandbox calendar service: a local Google Calendar (the API subset the bot calls, and
pages to look at what it booked).

Routes, relative to wherever it is mounted (``/sandbox/calendar/`` in sandbox mode):

- ``calendar/v3/calendars/{calendarId}/events`` (GET list, POST insert),
  ``calendar/v3/calendars/{calendarId}/events/{eventId}`` (GET) and
  ``calendar/v3/freeBusy`` (POST): see :mod:`sandbox.calendar.api`;
- ``event/{eventId}``: the event's page (its ``htmlLink``); ``""``: every calendar's week.

So the bot's ``GOOGLE_CALENDAR_API_URL`` is ``<mount>/calendar/v3/``, as Google's is
``https://www.googleapis.com/calendar/v3/``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from aiohttp import web

from sandbox.federation import Federation
from sandbox.people import PEOPLE

from .api import CalendarApi
from .faults import FaultKind, Faults
from .page import calendars_page, event_page
from .store import EVENT_ID, Calendars, seed_demo

#: Where the application built by :meth:`CalendarService.app` keeps its service.
CALENDAR_KEY: web.AppKey[CalendarService] = web.AppKey("calendar_service")
GOOGLE_CONNECTION = "google-oauth2"


class CalendarService:
    """One primary calendar per seeded person, in memory (a restart re-seeds the demo
    week); accepts tokens ``federation`` issued for ``connection``.

    ``public_url`` (ending in ``/``) is where the service is reached, for the events'
    ``htmlLink``; without it the links follow the URL each API request came to.
    """

    def __init__(
        self,
        *,
        federation: Federation,
        connection: str = GOOGLE_CONNECTION,
        public_url: str | None = None,
        seed: bool = True,
        now: datetime | None = None,
    ) -> None:
        self.federation = federation
        self.calendars = Calendars(p.email for p in PEOPLE)
        if seed:
            seed_demo(self.calendars, now or datetime.now(UTC))
        self.faults = Faults()
        self.public_url = _with_slash(public_url) if public_url else None
        self.api = CalendarApi(
            self.calendars,
            federation=federation,
            connection=connection,
            faults=self.faults,
            public_url=self._base_for,
        )

    def _base_for(self, request: web.Request) -> str:
        if self.public_url is not None:
            return self.public_url
        url = str(request.url.with_query(None))
        return url.split("calendar/v3/", 1)[0]

    def fail_next(
        self,
        kind: FaultKind | str,
        *,
        times: int = 1,
        retry_after: int = 1,
        delay: float = 0.0,
        method: str | None = None,
    ) -> None:
        """Answer the next ``times`` calls (of ``method``, or any) with a fault:
        ``rate_limited`` (429 + Retry-After), ``rate_limited_403``, ``server_error``
        (500), ``unavailable`` (503) or ``slow`` (answer after ``delay`` seconds)."""
        self.faults.add(kind, times=times, retry_after=retry_after, delay=delay, method=method)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=256 * 1024)
        self.api.routes(app)

        async def event(request: web.Request) -> web.Response:
            event_id = request.match_info["event"]
            found = self.calendars.events.get(event_id) if EVENT_ID.fullmatch(event_id) else None
            return event_page(found)

        async def index(request: web.Request) -> web.StreamResponse:
            if not request.path.endswith("/"):
                raise web.HTTPFound(request.path + "/")
            owners = sorted(self.calendars.owners)
            return calendars_page(self.calendars, owners, datetime.now(UTC))

        app.router.add_get("/event/{event}", event)
        app.router.add_get("", index)
        app.router.add_get("/", index)
        app[CALENDAR_KEY] = self
        return app

    @asynccontextmanager
    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """Run standalone; yields the service's base URL (ending in ``/``)."""
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            bound = runner.addresses[0][1]
            yield f"http://{host}:{bound}/"
        finally:
            await runner.cleanup()


def _with_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"
