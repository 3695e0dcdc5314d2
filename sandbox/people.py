"""The seeded people, shared by the Slack sandbox and the dev identity provider.

One list, so a person has the same handle, name and email in Slack and at sign-in.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Person:
    """A seeded person: Slack user ``slack_id``, signing in as ``<handle>@example.com``."""

    handle: str
    name: str
    slack_id: str

    @property
    def email(self) -> str:
        return f"{self.handle}@example.com"


PEOPLE: tuple[Person, ...] = (
    Person("alice", "Alice Anders", "U0ALICE"),
    Person("bob", "Bob Brown", "U0BOB"),
    Person("carol", "Carol Chen", "U0CAROL"),
    Person("dave", "Dave Diaz", "U0DAVE"),
)


def person_by_email(email: str) -> Person | None:
    """The seeded person with this email (any case), or None."""
    wanted = email.lower()
    return next((p for p in PEOPLE if p.email == wanted), None)
