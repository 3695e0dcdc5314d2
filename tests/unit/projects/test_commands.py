"""Reading the projects subcommands: names with spaces or quotes, people, titles and dates;
and the words that answer them."""

from __future__ import annotations

import pytest

from bot import messages as words
from bot.errors import (
    CommandHint,
    MalformedCommand,
    PersonNotFound,
    ProjectNotFound,
    Usage,
)
from bot.projects.people import PersonRef, parse_person
from handlers.projects import _task_add_arguments, name_of, tokenize


def test_people_are_named_by_mention_or_handle() -> None:
    assert parse_person("<@U0BOB>") == PersonRef("<@U0BOB>", slack_user_id="U0BOB")
    assert parse_person("<@W0BOB|bob>") == PersonRef("<@W0BOB|bob>", slack_user_id="W0BOB")
    assert parse_person("@bob.b") == PersonRef("@bob.b", name="bob.b")
    for not_a_person in ["bob", "@", "<#C0GENERAL|general>", "<!channel>", "@a@b", "<@u0bob>"]:
        assert parse_person(not_a_person) is None, not_a_person


def test_names_keep_their_spaces_or_quotes() -> None:
    text = "Apollo  launch @bob editor"
    tokens = tokenize(text)
    assert [t.text for t in tokens] == ["Apollo", "launch", "@bob", "editor"]
    assert name_of(text, tokens[:-2]) == "Apollo  launch"
    quoted = '"Apollo launch" @bob'
    tokens = tokenize(quoted)
    assert name_of(quoted, tokens[:-1]) == "Apollo launch"
    typographic = "“Apollo launch”"
    assert name_of(typographic, tokenize(typographic)) == "Apollo launch"
    assert name_of("", []) == ""


def test_task_add_arguments() -> None:
    text = 'Apollo launch "Write the spec" @bob due friday'
    name, title, assignee, due = _task_add_arguments(text, tokenize(text))
    assert (name, title, due) == ("Apollo launch", "Write the spec", "friday")
    assert assignee == PersonRef("@bob", name="bob")
    text = '"Apollo launch" "Review" due 2026-12-24 <@U0CAROL|carol>'
    name, title, assignee, due = _task_add_arguments(text, tokenize(text))
    assert (name, title, due) == ("Apollo launch", "Review", "2026-12-24")
    assert assignee is not None and assignee.slack_user_id == "U0CAROL"
    text = 'Apollo "Only a title"'
    assert _task_add_arguments(text, tokenize(text))[2:] == (None, None)


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("Apollo Write the spec", CommandHint.TITLE_NOT_QUOTED),
        ('"Write the spec"', CommandHint.MISSING_ARGUMENTS),
        ('Apollo "Spec" due', CommandHint.DATE_EXPECTED),
        ('Apollo "Spec" @bob @carol', CommandHint.UNEXPECTED_WORDS),
        ('Apollo "Spec" soon', CommandHint.UNEXPECTED_WORDS),
    ],
)
def test_malformed_task_add(text: str, hint: CommandHint) -> None:
    with pytest.raises(MalformedCommand) as refused:
        _task_add_arguments(text, tokenize(text))
    assert refused.value.usage is Usage.TASK_ADD and refused.value.hint is hint


def test_every_usage_is_a_listed_command() -> None:
    listed = {command for command, _ in words.COMMANDS}
    for usage, line in words.PROJECT_USAGE.items():
        if "|" not in line:
            assert line in listed, usage


def test_what_people_typed_is_shown_inert() -> None:
    """A name or reference cannot ping a channel or forge a link in the answer."""
    for error in [
        ProjectNotFound("<!channel> <https://evil.example|x>"),
        PersonNotFound("@<!here>"),
    ]:
        text = words.project_refusal(error)
        assert "<!" not in text and "<https" not in text
        assert "&lt;!" in text
    created = words.project_created_text("<!everyone>")
    assert "<!everyone>" not in created
