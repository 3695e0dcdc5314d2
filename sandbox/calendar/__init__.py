"""A local Google Calendar: the Calendar API v3 subset pmbot calls (events.list,
events.get, events.insert with attendees, freeBusy.query), accepting only tokens issued by
the sandbox's federation of connected accounts, and pages showing the events."""

from .api import METHOD_SCOPES
from .faults import FaultKind
from .service import CALENDAR_KEY, GOOGLE_CONNECTION, CalendarService

__all__ = ["CALENDAR_KEY", "GOOGLE_CONNECTION", "METHOD_SCOPES", "CalendarService", "FaultKind"]
