"""find_free_slot: the first time in working hours (09:00-17:00 in the asker's time zone)
when the asker and the people named are all free (Google Calendar freeBusy, as the asker)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from pydantic import Field

from bot import messages as words
from bot.agent.dates import parse_day
from bot.agent.tool import (
    FailureCode,
    Permission,
    Tool,
    ToolArgs,
    ToolContext,
    ToolFailure,
    ToolResult,
)
from bot.agent.tools._common import FREEBUSY_SCOPES, local, person_ref
from bot.errors import NoEmail
from bot.providers.ports import BusyInterval
from bot.vault.ports import Connection

DAY_START = time(9)
DAY_END = time(17)
STEP = timedelta(minutes=15)


class FindFreeSlotArgs(ToolArgs):
    attendees: list[str] = Field(
        default_factory=list, max_length=10, description="People of this workspace, as @name."
    )
    duration_minutes: int = Field(default=30, ge=15, le=240)
    day: str | None = Field(
        default=None,
        max_length=20,
        description="First day to look at: today, tomorrow, a weekday or YYYY-MM-DD.",
    )
    within_days: int = Field(default=5, ge=1, le=14)


def first_free(
    busy: list[BusyInterval], start: datetime, end: datetime, length: timedelta
) -> datetime | None:
    """The first ``STEP``-aligned start in working hours from ``start`` to ``end`` whose
    slot meets no busy interval."""
    zone = start.tzinfo
    day = start.date()
    while True:
        opening = datetime.combine(day, DAY_START, tzinfo=zone)
        closing = datetime.combine(day, DAY_END, tzinfo=zone)
        if opening >= end:
            return None
        candidate = max(opening, start)
        # Round up to the next step.
        offset = (candidate - opening) % STEP
        if offset:
            candidate += STEP - offset
        while candidate + length <= closing:
            slot_end = candidate + length
            if day.weekday() < 5 and not any(
                b.start < slot_end and candidate < b.end for b in busy
            ):
                return candidate
            candidate += STEP
        day += timedelta(days=1)


class FindFreeSlot(Tool[FindFreeSlotArgs]):
    name = "find_free_slot"
    description = (
        "Find the first slot in working hours when the asker and the given people are free."
    )
    Args = FindFreeSlotArgs
    permission = Permission.MANAGE_CALENDAR
    changes = False

    async def run(self, ctx: ToolContext, args: FindFreeSlotArgs) -> ToolResult:
        services = ctx.services
        people = [await services.people.resolve(person_ref(a)) for a in args.attendees]
        emails = [ctx.asker.email] if ctx.asker.email else []
        for person in people:
            email = await services.people.email(person.slack_user_id)
            if email is None:
                raise NoEmail(person.slack_user_id)
            emails.append(email)
        now = local(ctx, ctx.now)
        start = now
        if args.day is not None:
            day = parse_day(args.day, now.date())
            if day < now.date():
                raise ToolFailure(FailureCode.IN_THE_PAST, words.TOOL_FAILURES["in_the_past"])
            start = max(now, datetime.combine(day, time(0), tzinfo=now.tzinfo))
        end = datetime.combine(
            start.date() + timedelta(days=args.within_days), time(0), tzinfo=now.tzinfo
        )
        token = await services.vault.access_token(
            ctx.asker, Connection.GOOGLE_CALENDAR, scopes=FREEBUSY_SCOPES
        )
        busy_by = await services.calendar.free_busy(
            token, emails=emails, time_min=start, time_max=end
        )
        busy = [b for intervals in busy_by.values() for b in intervals]
        length = timedelta(minutes=args.duration_minutes)
        found = first_free(busy, start, end, length)
        mentioned = [p.slack_user_id for p in people]
        if found is None:
            return ToolResult(
                data={"slot": None, "within_days": args.within_days},
                text=words.no_free_slot_text(args.within_days),
            )
        return ToolResult(
            data={
                "slot": {"start": found.isoformat(), "end": (found + length).isoformat()},
                "attendees": mentioned,
            },
            text=words.free_slot_text(words.when_text(found, found + length), mentioned),
        )
