"""list_my_events: the asker's Google Calendar events (today, tomorrow or the next 7 days),
read as the asker through Token Vault."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Literal

from pydantic import Field

from bot import messages as words
from bot.agent.tool import Permission, Tool, ToolArgs, ToolContext, ToolResult
from bot.agent.tools._common import CALENDAR_READ_SCOPES, local
from bot.vault.ports import Connection

MAX_EVENTS = 25
DESCRIPTION_CHARS = 300


class ListMyEventsArgs(ToolArgs):
    when: Literal["today", "tomorrow", "week"] = Field(
        default="today", description="today, tomorrow, or week (the next 7 days)."
    )


def window(ctx: ToolContext, when: str) -> tuple[datetime, datetime]:
    now = local(ctx, ctx.now)
    start = datetime.combine(now.date(), time(0), tzinfo=now.tzinfo)
    if when == "tomorrow":
        start += timedelta(days=1)
    days = 7 if when == "week" else 1
    return start, start + timedelta(days=days)


class ListMyEvents(Tool[ListMyEventsArgs]):
    name = "list_my_events"
    description = "List the asker's own Google Calendar events today, tomorrow or this week."
    Args = ListMyEventsArgs
    permission = Permission.MANAGE_CALENDAR
    changes = False

    async def run(self, ctx: ToolContext, args: ListMyEventsArgs) -> ToolResult:
        services = ctx.services
        token = await services.vault.access_token(
            ctx.asker, Connection.GOOGLE_CALENDAR, scopes=CALENDAR_READ_SCOPES
        )
        time_min, time_max = window(ctx, args.when)
        events = await services.calendar.list_events(token, time_min=time_min, time_max=time_max)
        shown = events[:MAX_EVENTS]
        lines = [
            words.event_line(
                e.summary, words.when_text(local(ctx, e.start), local(ctx, e.end)), e.html_link
            )
            for e in shown
        ]
        return ToolResult(
            data={
                "timezone": ctx.timezone,
                "events": [
                    {
                        "summary": e.summary,
                        "start": local(ctx, e.start).isoformat(),
                        "end": local(ctx, e.end).isoformat(),
                        "link": e.html_link,
                        "description": e.description[:DESCRIPTION_CHARS],
                        "attendees": list(e.attendees),
                    }
                    for e in shown
                ],
                "more": max(0, len(events) - len(shown)),
            },
            text=words.events_text(args.when, lines, more=max(0, len(events) - len(shown))),
        )
