"""The sandbox calendars: one primary calendar per person (its id is their email), the
events on them, and what Google Calendar computes from them (windows, free/busy).

An invitation is one event shown on several calendars: the organizer's and each attendee's
who has a calendar here (as Google places an invited event on its guests' calendars). Event
ids are unique across the sandbox (Google only promises per calendar): a client-chosen id
that is already taken is a duplicate whoever took it.

Everything is in memory and synchronous (one event loop, no awaits inside a change).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sandbox.people import PEOPLE

# What Google accepts as a client-chosen event id: base32hex characters, 5 to 1024 long.
EVENT_ID = re.compile(r"[0-9a-v]{5,1024}")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,190}\.[A-Za-z]{2,24}")
MAX_SUMMARY = 1024
MAX_DESCRIPTION = 8192
MAX_ATTENDEES = 100


class CalendarError(Exception):
    """A request Google would refuse: HTTP ``status``, Google's ``reason`` and message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


def is_email(value: object) -> bool:
    return isinstance(value, str) and _EMAIL.fullmatch(value) is not None


@dataclass
class Event:
    """One event; ``calendars`` are the emails of the calendars it appears on."""

    id: str
    organizer: str
    summary: str
    description: str
    start: datetime
    end: datetime
    attendees: list[str]
    created: datetime
    calendars: set[str] = field(default_factory=set)
    time_zone: str | None = None

    def overlaps(self, time_min: datetime | None, time_max: datetime | None) -> bool:
        """Google's window: the event ends after ``time_min`` and starts before ``time_max``."""
        return (time_min is None or self.end > time_min) and (
            time_max is None or self.start < time_max
        )


@dataclass(frozen=True)
class Busy:
    start: datetime
    end: datetime


class Calendars:
    """The calendars and their events."""

    def __init__(self, people: Iterable[str] = ()) -> None:
        self.owners: set[str] = set(people)
        self.events: dict[str, Event] = {}

    def ensure(self, email: str) -> None:
        """Every Google account has a primary calendar: one is made on first use."""
        self.owners.add(email)

    def on_calendar(self, email: str) -> list[Event]:
        return [e for e in self.events.values() if email in e.calendars]

    def window(
        self, email: str, time_min: datetime | None, time_max: datetime | None
    ) -> list[Event]:
        """The events of ``email``'s calendar in the window, by start time (then id)."""
        found = [e for e in self.on_calendar(email) if e.overlaps(time_min, time_max)]
        return sorted(found, key=lambda e: (e.start, e.id))

    def get(self, email: str, event_id: str) -> Event:
        event = self.events.get(event_id)
        if event is None or email not in event.calendars:
            raise CalendarError(404, "notFound", "Not Found")
        return event

    def insert(
        self,
        *,
        organizer: str,
        summary: str,
        description: str,
        start: datetime,
        end: datetime,
        attendees: list[str],
        event_id: str | None = None,
        time_zone: str | None = None,
    ) -> Event:
        """Add an event to the organizer's calendar and to each attendee's who has one."""
        if event_id is None:
            event_id = new_event_id()
        elif not EVENT_ID.fullmatch(event_id):
            raise CalendarError(400, "invalid", "Invalid resource id value.")
        if event_id in self.events:
            raise CalendarError(409, "duplicate", "The requested identifier already exists.")
        if end <= start:
            raise CalendarError(400, "timeRangeEmpty", "The specified time range is empty.")
        if len(summary) > MAX_SUMMARY or len(description) > MAX_DESCRIPTION:
            raise CalendarError(400, "invalid", "The event is too long.")
        if len(attendees) > MAX_ATTENDEES:
            raise CalendarError(400, "invalid", "Too many attendees.")
        guests: list[str] = []
        for email in attendees:
            if not is_email(email):
                raise CalendarError(400, "invalid", "Invalid attendee email.")
            if email.lower() not in (g.lower() for g in guests):
                guests.append(email)
        self.ensure(organizer)
        event = Event(
            id=event_id,
            organizer=organizer,
            summary=summary,
            description=description,
            start=start,
            end=end,
            attendees=guests,
            created=datetime.now(UTC),
            time_zone=time_zone,
        )
        owners = {o.lower(): o for o in self.owners}
        event.calendars.add(organizer)
        for email in guests:
            owner = owners.get(email.lower())
            if owner is not None:
                event.calendars.add(owner)
        self.events[event_id] = event
        return event

    def busy(self, email: str, time_min: datetime, time_max: datetime) -> list[Busy]:
        """Busy intervals of ``email``'s calendar in the window, merged and clipped."""
        merged: list[Busy] = []
        for event in self.window(email, time_min, time_max):
            start, end = max(event.start, time_min), min(event.end, time_max)
            if merged and start <= merged[-1].end:
                last = merged.pop()
                merged.append(Busy(last.start, max(last.end, end)))
            else:
                merged.append(Busy(start, end))
        return merged


def new_event_id() -> str:
    """A server-chosen id: 26 base32hex characters, as Google's look."""
    alphabet = "0123456789abcdefghijklmnopqrstuv"
    return "".join(secrets.choice(alphabet) for _ in range(26))


def seed_demo(calendars: Calendars, now: datetime) -> None:
    """The demo week: meetings for alice, bob, carol and dave over the coming days (UTC),
    so free/busy has something to say. Days are counted from ``now``'s date; weekends are
    skipped so every seeded day is a working day."""
    emails = {p.handle: p.email for p in PEOPLE}
    for email in emails.values():
        calendars.ensure(email)
    days: list[datetime] = []
    day = datetime(now.year, now.month, now.day, tzinfo=UTC)
    while len(days) < 5:
        day += timedelta(days=1)
        if day.weekday() < 5:
            days.append(day)
    plan = [
        # (day index, hour, minutes, organizer, attendees, summary, description)
        (0, 9, 30, "alice", ["bob", "carol"], "Apollo stand-up", "Daily sync on Apollo."),
        (0, 14, 60, "bob", [], "Focus time", ""),
        (1, 10, 60, "carol", ["dave"], "Design review: Zephyr", "Walk through the mock-ups."),
        (1, 15, 30, "dave", ["alice"], "1:1 Alice / Dave", ""),
        (2, 9, 30, "alice", ["bob", "carol"], "Apollo stand-up", "Daily sync on Apollo."),
        (2, 13, 90, "bob", ["carol", "dave"], "Vendor call", "Quarterly check-in."),
        (3, 11, 60, "dave", [], "Dentist", ""),
        (3, 16, 30, "carol", ["bob"], "Budget review", "Numbers for Q3."),
        (4, 9, 30, "alice", ["bob", "carol"], "Apollo stand-up", "Daily sync on Apollo."),
        (4, 14, 120, "alice", [], "Quarterly planning prep", ""),
    ]
    for index, (d, hour, minutes, organizer, guests, summary, description) in enumerate(plan):
        start = days[d] + timedelta(hours=hour)
        calendars.insert(
            organizer=emails[organizer],
            summary=summary,
            description=description,
            start=start,
            end=start + timedelta(minutes=minutes),
            attendees=[emails[g] for g in guests],
            event_id=f"demo{index:02d}{start:%Y%m%d}",
        )
