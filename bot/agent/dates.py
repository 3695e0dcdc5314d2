"""Days, times and durations as people type them, read deterministically (no model).

* a day: ``today``, ``tomorrow``, a weekday (``tue``, ``tuesday``: the coming one, today
  included), ``next WEEKDAY`` (the first one after today), or ``YYYY-MM-DD``;
* a time: ``15:00``, ``9:30``, ``3pm``, ``3:30pm``, ``12am`` (midnight), ``12pm`` (noon);
* a duration: ``30m``, ``45min``, ``1h``, ``1h30m``, ``90 minutes``, from 5 minutes to 8 hours.

Anything else raises :class:`bot.errors.BadCommand` naming the part it could not read.
"""

from __future__ import annotations

import re
from datetime import date, time, timedelta

from bot.errors import BadCommand, CommandProblem

WEEKDAYS = {
    "monday": 0,
    "mon": 0,
    "tuesday": 1,
    "tue": 1,
    "tues": 1,
    "wednesday": 2,
    "wed": 2,
    "thursday": 3,
    "thu": 3,
    "thur": 3,
    "thurs": 3,
    "friday": 4,
    "fri": 4,
    "saturday": 5,
    "sat": 5,
    "sunday": 6,
    "sun": 6,
}
MIN_DURATION = timedelta(minutes=5)
MAX_DURATION = timedelta(hours=8)

_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_CLOCK = re.compile(r"([01]?\d|2[0-3])[:.h]([0-5]\d)")
_AMPM = re.compile(r"(1[0-2]|0?[1-9])(?:[:.]([0-5]\d))?\s*([ap])\.?m\.?")
_DURATION = re.compile(
    r"(?:(\d{1,2})\s*(?:h|hr|hrs|hour|hours))?\s*(?:(\d{1,3})\s*(?:m|min|mins|minute|minutes))?"
)


def is_day_word(word: str) -> bool:
    w = word.lower()
    return w in {"today", "tomorrow", "next"} or w in WEEKDAYS or bool(_ISO.fullmatch(w))


def parse_day(text: str, today: date) -> date:
    """The day ``text`` names, seen from ``today`` (not checked against the past)."""
    words = text.strip().lower().split()
    if not words:
        raise BadCommand(CommandProblem.DATE_MISSING)
    if words == ["today"]:
        return today
    if words == ["tomorrow"]:
        return today + timedelta(days=1)
    if len(words) == 2 and words[0] == "next" and words[1] in WEEKDAYS:
        ahead = (WEEKDAYS[words[1]] - today.weekday()) % 7 or 7
        return today + timedelta(days=ahead)
    if len(words) == 1 and words[0] in WEEKDAYS:
        return today + timedelta(days=(WEEKDAYS[words[0]] - today.weekday()) % 7)
    iso = _ISO.fullmatch(words[0]) if len(words) == 1 else None
    if iso:
        try:
            return date(int(iso.group(1)), int(iso.group(2)), int(iso.group(3)))
        except ValueError:
            pass
    raise BadCommand(CommandProblem.DATE_UNREADABLE, text.strip())


def parse_time(text: str) -> time:
    word = text.strip().lower()
    if not word:
        raise BadCommand(CommandProblem.TIME_MISSING)
    clock = _CLOCK.fullmatch(word)
    if clock:
        return time(int(clock.group(1)), int(clock.group(2)))
    ampm = _AMPM.fullmatch(word)
    if ampm:
        hour = int(ampm.group(1)) % 12 + (12 if ampm.group(3) == "p" else 0)
        return time(hour, int(ampm.group(2) or 0))
    raise BadCommand(CommandProblem.TIME_UNREADABLE, text.strip())


def looks_like_time(word: str) -> bool:
    w = word.strip().lower()
    return bool(_CLOCK.fullmatch(w) or _AMPM.fullmatch(w))


def parse_duration(text: str) -> timedelta:
    word = text.strip().lower()
    found = _DURATION.fullmatch(word) if word else None
    if found is None or not (found.group(1) or found.group(2)):
        raise BadCommand(CommandProblem.DURATION_UNREADABLE, text.strip())
    span = timedelta(hours=int(found.group(1) or 0), minutes=int(found.group(2) or 0))
    if not MIN_DURATION <= span <= MAX_DURATION:
        raise BadCommand(CommandProblem.DURATION_UNREADABLE, text.strip())
    return span


def looks_like_duration(word: str) -> bool:
    """Shaped like a duration (its bounds are checked by :func:`parse_duration`)."""
    found = _DURATION.fullmatch(word.strip().lower())
    return bool(found and (found.group(1) or found.group(2)))
