"""The plain commands and requests in words, read deterministically: what they become,
and a clear refusal (naming the part) for everything else."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

import pytest

from bot.agent.dates import parse_day, parse_duration, parse_time
from bot.agent.parser import ToolCall, is_request_to_act, parse_command, parse_request
from bot.errors import BadCommand, CommandProblem

ZONE = timezone(timedelta(hours=2))
# Thursday 3 December 2026, 10:00 in the asker's zone.
NOW = datetime(2026, 12, 3, 10, 0, tzinfo=ZONE)
TODAY = NOW.date()


def at(day: date, hour: int, minute: int = 0) -> str:
    return datetime.combine(day, time(hour, minute), tzinfo=ZONE).isoformat()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("today", TODAY),
        ("Tomorrow", date(2026, 12, 4)),
        ("thu", TODAY),  # the coming Thursday is today
        ("tue", date(2026, 12, 8)),
        ("friday", date(2026, 12, 4)),
        ("next thursday", date(2026, 12, 10)),
        ("next Tuesday", date(2026, 12, 8)),
        ("2027-01-15", date(2027, 1, 15)),
    ],
)
def test_days(text: str, expected: date) -> None:
    assert parse_day(text, TODAY) == expected


@pytest.mark.parametrize("text", ["someday", "next", "next week", "2026-02-30", "12/08", "tue wed"])
def test_unreadable_days(text: str) -> None:
    with pytest.raises(BadCommand) as refused:
        parse_day(text, TODAY)
    assert refused.value.problem is CommandProblem.DATE_UNREADABLE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15:00", time(15)),
        ("9:30", time(9, 30)),
        ("3pm", time(15)),
        ("3:45pm", time(15, 45)),
        ("12am", time(0)),
        ("12pm", time(12)),
        ("11 a.m.", time(11)),
    ],
)
def test_times(text: str, expected: time) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize("text", ["25:00", "15:60", "13pm", "noonish", "1500"])
def test_unreadable_times(text: str) -> None:
    with pytest.raises(BadCommand) as refused:
        parse_time(text)
    assert refused.value.problem is CommandProblem.TIME_UNREADABLE


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("30m", 30), ("1h", 60), ("90m", 90), ("1h30m", 90), ("45 min", 45), ("2 hours", 120)],
)
def test_durations(text: str, minutes: int) -> None:
    assert parse_duration(text) == timedelta(minutes=minutes)


@pytest.mark.parametrize("text", ["4m", "9h", "0m", "half an hour", "30", "m"])
def test_durations_out_of_bounds_or_unreadable(text: str) -> None:
    with pytest.raises(BadCommand) as refused:
        parse_duration(text)
    assert refused.value.problem is CommandProblem.DURATION_UNREADABLE


def test_the_documented_commands() -> None:
    assert parse_command("events", "", now=NOW) == ToolCall("list_my_events", {"when": "today"})
    assert parse_command("events", "week", now=NOW).arguments == {"when": "week"}
    assert parse_command("schedule", '"Apollo review" tue 15:00 30m with @bob', now=NOW) == (
        ToolCall(
            "schedule_meeting",
            {
                "title": "Apollo review",
                "start": at(date(2026, 12, 8), 15),
                "duration_minutes": 30,
                "attendees": ["@bob"],
            },
        )
    )
    assert parse_command("post", '#apollo "Standup moved"', now=NOW) == ToolCall(
        "post_as_me", {"channel": "#apollo", "text": "Standup moved"}
    )
    assert parse_command("delete", "project Apollo launch", now=NOW) == ToolCall(
        "delete_project", {"project": "Apollo launch"}
    )
    assert parse_command("delete", "all my projects", now=NOW) == ToolCall(
        "delete_all_my_projects", {}
    )


def test_schedule_variants() -> None:
    call = parse_command(
        "schedule", '"Sync" 2026-12-04 9:30am 1h with <@U0BOB> and @carol', now=NOW
    )
    assert call.arguments == {
        "title": "Sync",
        "start": at(date(2026, 12, 4), 9, 30),
        "duration_minutes": 60,
        "attendees": ["<@U0BOB>", "@carol"],
    }
    later_today = parse_command("schedule", '"Later" today 10:30', now=NOW)
    assert later_today.arguments["start"] == at(TODAY, 10, 30)
    assert later_today.arguments["attendees"] == []


def test_requests_in_words() -> None:
    assert parse_request(
        "schedule a review of Apollo next Tuesday at 15:00 with bob", now=NOW
    ) == ToolCall(
        "schedule_meeting",
        {
            "title": "Review of Apollo",
            "start": at(date(2026, 12, 8), 15),
            "duration_minutes": 30,
            "attendees": ["@bob"],
        },
    )
    booked = parse_request(
        "please book Next steps on friday at 3pm for 45m with alice, bob", now=NOW
    )
    assert booked is not None and booked.arguments["title"] == "Next steps"
    assert booked.arguments["duration_minutes"] == 45
    assert booked.arguments["attendees"] == ["@alice", "@bob"]
    assert parse_request('post "Shipped!" to #apollo', now=NOW) == ToolCall(
        "post_as_me", {"channel": "#apollo", "text": "Shipped!"}
    )
    assert parse_request("delete the project Apollo", now=NOW) == ToolCall(
        "delete_project", {"project": "Apollo"}
    )
    assert parse_request("Delete all of my projects", now=NOW) == ToolCall(
        "delete_all_my_projects", {}
    )
    for words in ("my events", "what's on my calendar tomorrow?", "show my events this week"):
        found = parse_request(words, now=NOW)
        assert found is not None and found.tool == "list_my_events", words


@pytest.mark.parametrize(
    "question",
    ["what is blocking Apollo?", "who owns the budget", "hi", "", "tell me about next tuesday"],
)
def test_questions_are_not_requests(question: str) -> None:
    assert parse_request(question, now=NOW) is None


@pytest.mark.parametrize(
    ("sub", "rest", "problem", "part"),
    [
        ("events", "yesterday", CommandProblem.EVENTS_RANGE, "yesterday"),
        ("schedule", "Review tue 15:00", CommandProblem.SCHEDULE_TITLE, ""),
        ("schedule", '"" tue 15:00', CommandProblem.SCHEDULE_TITLE, ""),
        ("schedule", '"Review"', CommandProblem.DATE_MISSING, ""),
        ("schedule", '"Review" soon 15:00', CommandProblem.DATE_UNREADABLE, "soon"),
        ("schedule", '"Review" tue', CommandProblem.TIME_MISSING, ""),
        ("schedule", '"Review" tue with @bob', CommandProblem.TIME_MISSING, ""),
        ("schedule", '"Review" tue 3 pm', CommandProblem.TIME_UNREADABLE, "3"),
        ("schedule", '"Review" tue 15:00 12h', CommandProblem.DURATION_UNREADABLE, "12h"),
        ("schedule", '"Review" 2026-12-03 09:00', CommandProblem.IN_THE_PAST, "2026-12-03 09:00"),
        ("schedule", '"Review" 2020-01-01 09:00', CommandProblem.IN_THE_PAST, "2020-01-01 09:00"),
        ("schedule", '"Review" tue 15:00 with', CommandProblem.PERSON_EXPECTED, "with"),
        (
            "schedule",
            '"Review" tue 15:00 with x@y.example',
            CommandProblem.PERSON_EXPECTED,
            "x@y.example",
        ),
        ("schedule", '"Review" tue 15:00 with #apollo', CommandProblem.PERSON_EXPECTED, "#apollo"),
        ("schedule", '"Review" tue 15:00 and more', CommandProblem.UNEXPECTED_WORDS, "and"),
        ("post", '"hello"', CommandProblem.POST_CHANNEL, ""),
        ("post", "#apollo", CommandProblem.POST_TEXT, ""),
        ("post", "#apollo hello there", CommandProblem.POST_TEXT, ""),
        ("post", '#apollo ""', CommandProblem.POST_TEXT, ""),
        ("post", '#apollo "a" "b"', CommandProblem.UNEXPECTED_WORDS, "b"),
        ("delete", "", CommandProblem.DELETE_WHAT, ""),
        ("delete", "Apollo", CommandProblem.DELETE_WHAT, ""),
        ("delete", "project", CommandProblem.DELETE_WHAT, ""),
        ("delete", "all projects", CommandProblem.DELETE_WHAT, ""),
    ],
)
def test_bad_commands_name_the_problem(
    sub: str, rest: str, problem: CommandProblem, part: str
) -> None:
    with pytest.raises(BadCommand) as refused:
        parse_command(sub, rest, now=NOW)
    assert refused.value.problem is problem
    assert refused.value.text == part


def test_requests_to_act_that_cannot_be_read_are_refused_not_answered() -> None:
    with pytest.raises(BadCommand):
        parse_request("schedule the review someday", now=NOW)
    with pytest.raises(BadCommand):
        parse_request("post hello to #apollo", now=NOW)
    with pytest.raises(BadCommand):
        parse_request("delete everything", now=NOW)


def test_what_goes_to_the_agent_with_a_model() -> None:
    for words in (
        "schedule a sync",
        "Please add a task to Apollo",
        "could you list my tasks",
        "my events this week",
        "mark task 3 done",
        "what are my projects?",
        "how is Apollo doing?",
    ):
        assert is_request_to_act(words), words
    for words in ("what is blocking the launch?", "who owns Apollo", "hello", ""):
        assert not is_request_to_act(words), words


def test_messages_for_every_problem() -> None:
    from bot import messages as words

    for problem in CommandProblem:
        text = words.command_problem_text(problem.value, "<!channel> `x`")
        assert text and "<!channel>" not in text
