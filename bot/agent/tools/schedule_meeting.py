"""schedule_meeting: book a meeting in the asker's Google Calendar (as the asker, through
Token Vault) and invite people of this workspace (their Slack emails)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from pydantic import Field

from bot import messages as words
from bot.agent.tool import (
    FailureCode,
    Permission,
    Tool,
    ToolArgs,
    ToolContext,
    ToolFailure,
    ToolResult,
)
from bot.agent.tools._common import (
    CALENDAR_WRITE_SCOPES,
    local,
    person_ref,
    require_person_named,
    written_by_the_asker,
)
from bot.errors import NoEmail
from bot.projects.values import Person
from bot.vault.ports import Connection

MAX_AHEAD = timedelta(days=366)


class ScheduleMeetingArgs(ToolArgs):
    title: str = Field(min_length=1, max_length=200, description="The meeting's title.")
    start: datetime = Field(
        description="ISO 8601 start; without an offset it is the asker's local time."
    )
    duration_minutes: int = Field(default=30, ge=5, le=480)
    attendees: list[str] = Field(
        default_factory=list, max_length=20, description="People of this workspace, as @name."
    )
    description: str = Field(default="", max_length=2000)


class ScheduleMeeting(Tool[ScheduleMeetingArgs]):
    name = "schedule_meeting"
    description = (
        "Book a meeting in the asker's Google Calendar and invite people of this workspace."
    )
    Args = ScheduleMeetingArgs
    permission = Permission.MANAGE_CALENDAR
    verbs = frozenset({"schedule", "book", "set", "create"})

    async def run(self, ctx: ToolContext, args: ScheduleMeetingArgs) -> ToolResult:
        services = ctx.services
        start = local(ctx, args.start)
        now = local(ctx, ctx.now)
        if start <= now:
            raise ToolFailure(
                FailureCode.IN_THE_PAST,
                words.command_problem_text("in_the_past", words.when_text(start)),
            )
        if start - now > MAX_AHEAD:
            raise ToolFailure(FailureCode.INVALID_ARGUMENTS, words.MEETING_TOO_FAR)
        if args.description and not written_by_the_asker(ctx, args.description):
            # A description reaches every attendee: only the asker's own words go there.
            raise ToolFailure(FailureCode.NOT_ALLOWED, words.DESCRIPTION_NOT_REQUESTED)
        people: list[Person] = []
        for reference in args.attendees:
            person = await require_person_named(ctx, person_ref(reference))
            if person.slack_user_id not in {p.slack_user_id for p in people}:
                people.append(person)
        emails = []
        for person in people:
            if person.slack_user_id == ctx.asker.slack_user_id:
                continue
            email = await services.people.email(person.slack_user_id)
            if email is None:
                raise NoEmail(person.slack_user_id)
            emails.append(email)
        end = start + timedelta(minutes=args.duration_minutes)
        token = await services.vault.access_token(
            ctx.asker, Connection.GOOGLE_CALENDAR, scopes=CALENDAR_WRITE_SCOPES
        )
        # The same request booked twice (a retry) is one event at the provider.
        key = f"{ctx.asker.sub}|{args.title}|{start.isoformat()}|{ctx.request_id}"
        event = await services.calendar.insert_event(
            token,
            summary=args.title,
            start=start,
            end=end,
            attendees=emails,
            description=args.description,
            request_id=hashlib.sha256(key.encode()).hexdigest()[:32],
        )
        invited = [p.slack_user_id for p in people if p.slack_user_id != ctx.asker.slack_user_id]
        return ToolResult(
            data={
                "event": {
                    "id": event.id,
                    "title": event.summary,
                    "start": local(ctx, event.start).isoformat(),
                    "end": local(ctx, event.end).isoformat(),
                    "link": event.html_link,
                },
                "invited": invited,
            },
            text=words.meeting_booked_text(
                args.title, words.when_text(start, end), invited, event.html_link
            ),
            subject=event.id[:64],
            link=event.html_link,
        )
