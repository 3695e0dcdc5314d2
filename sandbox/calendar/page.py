"""The sandbox calendar's pages: one event (where an event's ``htmlLink`` leads) and the
week of every calendar. Everything shown is escaped; the pages load nothing and run no
script (their Content-Security-Policy says so)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from html import escape

from aiohttp import web

from sandbox.people import person_by_email

from .store import Calendars, Event

_STYLE = """
body{font-family:system-ui,sans-serif;background:#f1f3f4;margin:0;padding:2rem;color:#202124}
main{max-width:46rem;margin:0 auto;background:#fff;border-radius:8px;padding:1.5rem 2rem;
box-shadow:0 1px 3px rgba(60,64,67,.3)}
h1{font-size:1.4rem;margin:.2rem 0 1rem}h2{font-size:1.05rem;margin:1.4rem 0 .4rem}
.when{color:#3c4043;margin-bottom:1rem}.label{color:#5f6368;font-size:.85rem}
.desc{white-space:pre-wrap;background:#f8f9fa;border-radius:6px;padding:.7rem}
ul{padding-left:1.2rem}li{margin:.15rem 0}.chip{display:inline-block;width:.7rem;height:.7rem;
border-radius:3px;background:#1a73e8;margin-right:.4rem}a{color:#1a73e8}
table{border-collapse:collapse;width:100%;table-layout:fixed}td{padding:.3rem .4rem;
border-top:1px solid #eee;vertical-align:top;overflow-wrap:anywhere}.none{color:#5f6368}
td.day{width:7.5rem;color:#3c4043;font-weight:600}td.time{width:7rem;color:#3c4043;
white-space:nowrap}.email{color:#5f6368;font-weight:400;font-size:.9rem}
.intro{color:#3c4043}
@media (max-width:600px){body{padding:.6rem}main{padding:1rem}td.day{width:4.6rem}
td.time{width:5.8rem}}
"""
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def _page(title: str, body: str, status: int = 200) -> web.Response:
    html = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )
    return web.Response(text=html, content_type="text/html", status=status, headers=_HEADERS)


def _name(email: str) -> str:
    person = person_by_email(email)
    return email if person is None else f"{person.name} <{person.email}>"


def _when(event: Event) -> str:
    start, end = event.start.astimezone(UTC), event.end.astimezone(UTC)
    same_day = start.date() == end.date()
    tail = f"{end:%H:%M}" if same_day else f"{end:%A %d %B %Y, %H:%M}"
    return f"{start:%A %d %B %Y, %H:%M} – {tail} (UTC)"


def event_page(event: Event | None) -> web.Response:
    if event is None:
        return _page("Event not found", "<h1>Event not found</h1>", status=404)
    guests = "".join(f"<li data-testid='attendee'>{escape(_name(a))}</li>" for a in event.attendees)
    description = (
        f"<h2>Description</h2><div class='desc' data-testid='description'>"
        f"{escape(event.description)}</div>"
        if event.description
        else ""
    )
    body = (
        "<div class='label'>Sandbox calendar · event</div>"
        f"<h1 data-testid='summary'><span class='chip'></span>"
        f"{escape(event.summary or '(No title)')}</h1>"
        f"<div class='when' data-testid='when'>{escape(_when(event))}</div>"
        f"<h2>Organizer</h2><div data-testid='organizer'>{escape(_name(event.organizer))}</div>"
        f"<h2>Guests</h2><ul>{guests or '<li class=none>No guests</li>'}</ul>"
        f"{description}"
        "<p><a href='../'>All calendars</a></p>"
    )
    return _page(event.summary or "Event", body)


def calendars_page(calendars: Calendars, owners: Iterable[str], now: datetime) -> web.Response:
    """Each calendar's events from today for a week, a day's name once per day."""
    start = datetime(now.year, now.month, now.day, tzinfo=UTC)
    end = start + timedelta(days=8)
    sections = []
    for email in owners:
        rows = []
        shown_day = None
        for e in calendars.window(email, start, end):
            begin, finish = e.start.astimezone(UTC), e.end.astimezone(UTC)
            day = f"{begin:%a %d %b}"
            rows.append(
                f"<tr data-testid='calendar-row'><td class='day'>"
                f"{escape(day) if day != shown_day else ''}</td>"
                f"<td class='time'>{begin:%H:%M}–{finish:%H:%M}</td>"
                f"<td><a href='event/{escape(e.id)}'>{escape(e.summary or '(No title)')}</a>"
                "</td></tr>"
            )
            shown_day = day
        person = _person(email)
        sections.append(
            f"<h2>{person}</h2>"
            f"<table>{''.join(rows) or '<tr><td class=none>No events this week</td></tr>'}"
            "</table>"
        )
    body = (
        "<h1>Sandbox calendars</h1>"
        "<p class='intro'>Everyone's meetings from today for a week, in UTC. Meetings pmbot "
        "books for you show up here; open one to see its guests.</p>" + "".join(sections)
    )
    return _page("Sandbox calendars", body)


def _person(email: str) -> str:
    """A person's name with their email beside it, escaped."""
    person = person_by_email(email)
    if person is None:
        return escape(email)
    return f"{escape(person.name)} <span class='email'>{escape(person.email)}</span>"
