"""One name per person: the Slack sandbox and the dev identity provider agree."""

from __future__ import annotations

from sandbox.idp import default_users
from sandbox.slack import default_seed


def test_each_seeded_person_has_one_name_in_slack_and_at_sign_in() -> None:
    in_slack = {u.email: u.real_name for u in default_seed().users if not u.is_bot}
    at_sign_in = {u.email: u.name for u in default_users()}
    assert in_slack == at_sign_in
    assert in_slack["bob@example.com"] == "Bob Brown"


def test_handles_match_emails_and_subs() -> None:
    handles = {u.name: u.email for u in default_seed().users if not u.is_bot}
    assert handles == {u.sub.removeprefix("auth0|"): u.email for u in default_users()}
