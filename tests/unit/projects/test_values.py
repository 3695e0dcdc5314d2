"""The input rules of projects and tasks: names, titles, roles and due dates."""

from __future__ import annotations

from datetime import date

import pytest

from bot.errors import (
    DueDateInPast,
    InvalidDueDate,
    InvalidProjectName,
    InvalidTaskTitle,
    NameProblem,
    UnknownRole,
)
from bot.projects.values import (
    MAX_NAME,
    Role,
    clean_name,
    clean_title,
    name_key,
    parse_due,
    parse_role,
    pending_assignee,
    pending_slack_user,
    project_id_of,
    project_object,
)

WEDNESDAY = date(2026, 12, 2)


@pytest.mark.parametrize(
    ("text", "due"),
    [
        ("today", WEDNESDAY),
        ("Tomorrow", date(2026, 12, 3)),
        ("friday", date(2026, 12, 4)),
        ("FRI", date(2026, 12, 4)),
        ("monday", date(2026, 12, 7)),
        # The same weekday as today means next week's.
        ("wednesday", date(2026, 12, 9)),
        ("tuesday", date(2026, 12, 8)),
        ("2026-12-02", WEDNESDAY),
        ("2027-02-28", date(2027, 2, 28)),
    ],
)
def test_due_dates(text: str, due: date) -> None:
    assert parse_due(text, WEDNESDAY) == due


@pytest.mark.parametrize(
    "text", ["2026-02-30", "12/05/2026", "20261205", "next week", "", "2026-12-2", "fridays"]
)
def test_unreadable_due_dates_are_refused(text: str) -> None:
    with pytest.raises(InvalidDueDate):
        parse_due(text, WEDNESDAY)


def test_a_due_date_in_the_past_is_refused() -> None:
    with pytest.raises(DueDateInPast) as refused:
        parse_due("2026-12-01", WEDNESDAY)
    assert refused.value.due == date(2026, 12, 1) and refused.value.today == WEDNESDAY


def test_names_are_tidied_and_checked() -> None:
    assert clean_name("  Apollo   launch ") == "Apollo launch"
    assert clean_name("x" * MAX_NAME) == "x" * MAX_NAME
    for bad, problem in [
        ("", NameProblem.EMPTY),
        ("   ", NameProblem.EMPTY),
        ("x" * (MAX_NAME + 1), NameProblem.TOO_LONG),
        ("Apollo\x00", NameProblem.CONTROL_CHARACTERS),
        ("Apollo\nlaunch", NameProblem.CONTROL_CHARACTERS),
        ("Apollo\tlaunch", NameProblem.CONTROL_CHARACTERS),
        ("Apollo\u202elaunch", NameProblem.CONTROL_CHARACTERS),  # right-to-left override
        ("Apo\u200bllo", NameProblem.CONTROL_CHARACTERS),  # zero-width space
    ]:
        with pytest.raises(InvalidProjectName) as refused:
            clean_name(bad)
        assert refused.value.problem is problem, bad
    with pytest.raises(InvalidTaskTitle):
        clean_title("x" * 501)
    assert clean_title("Write  the spec") == "Write the spec"


def test_names_are_the_same_whatever_their_case() -> None:
    assert name_key("Apollo Launch") == name_key("apollo  LAUNCH")
    assert name_key("Straße") == name_key("STRASSE")
    assert name_key("ﬁnal Ａｐｏｌｌｏ") == name_key("FINAL apollo")  # compatibility forms
    assert name_key("Apollo") != name_key("Apollo 2")
    # Case folding can make a key longer than the name: it still fits the column, and two
    # different long names keep different keys.
    long_a, long_b = "ß" * MAX_NAME, "ß" * (MAX_NAME - 1) + "x"
    assert len(name_key(long_a)) <= MAX_NAME and name_key(long_a) != name_key(long_b)
    assert name_key(long_a) == name_key(long_a.upper())


def test_roles() -> None:
    assert parse_role("Editor") is Role.EDITOR
    assert parse_role("approver") is Role.APPROVER
    with pytest.raises(UnknownRole) as refused:
        parse_role("boss")
    assert refused.value.roles == ("owner", "editor", "viewer", "approver")


def test_pending_assignees_name_a_slack_user_of_one_workspace() -> None:
    held = pending_assignee("T0SANDBOX", "U0CAROL")
    assert "|" not in held  # never an Auth0 subject (connection|id)
    assert pending_slack_user(held, "T0SANDBOX") == "U0CAROL"
    assert pending_slack_user(held, "T0OTHER") is None
    assert pending_slack_user("auth0|carol", "T0SANDBOX") is None
    assert pending_slack_user("slack:T0SANDBOX:U0CAROL|x", "T0SANDBOX") is None


def test_project_objects_round_trip() -> None:
    assert project_id_of(project_object("a1b2")) == "a1b2"
    assert project_id_of("task:12") is None
    assert project_id_of("project:") is None
