"""The seeded team: its people and the bot's user, and how people are looked up and
mentioned."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sandbox.people import PEOPLE

from .common import SandboxError

SLACKBOT_ID = "USLACKBOT"

_MENTION = re.compile(r"(?<![\w<@])@([a-z0-9][a-z0-9._-]*)", re.IGNORECASE)


@dataclass
class SandboxUser:
    """A member of the sandbox workspace (a person or the bot's user)."""

    id: str
    name: str
    real_name: str
    email: str
    is_bot: bool = False
    guest: bool = False  # a multi-channel guest (``is_restricted``)
    home_team: str | None = None  # a Slack Connect user's own workspace (``is_stranger``)


@dataclass
class SandboxSeed:
    """The initial workspace: its team, members and channels ``(id, name, member ids)``."""

    team_id: str
    team_name: str
    users: list[SandboxUser]
    channels: list[tuple[str, str, list[str]]]


def default_seed() -> SandboxSeed:
    """The workspace the embedded default and the tests start from."""
    humans = [SandboxUser(p.slack_id, p.handle, p.name, p.email) for p in PEOPLE]
    bot = SandboxUser("U0PMBOT", "pmbot", "pmbot", "pmbot@example.com", is_bot=True)
    everyone = [u.id for u in humans] + [bot.id]
    return SandboxSeed(
        team_id="T0SANDBOX",
        team_name="Sandbox",
        users=[*humans, bot],
        channels=[
            ("C0GENERAL", "general", everyone),
            ("C0APOLLO", "apollo", ["U0ALICE", "U0BOB", bot.id]),
            ("C0RANDOM", "random", [u for u in everyone if u != "U0DAVE"]),
        ],
    )


class Team:
    """The team of a seed: its ids and domain, its members, and the app's bot user."""

    def __init__(self, seed: SandboxSeed) -> None:
        self.team_id = seed.team_id
        self.team_name = seed.team_name
        self.domain = re.sub(r"[^a-z0-9-]", "", seed.team_name.lower()) or "sandbox"
        self.users: dict[str, SandboxUser] = {}
        for user in seed.users:
            if user.id in self.users:
                raise ValueError(f"duplicate user id {user.id}")
            self.users[user.id] = user
        bots = [u for u in seed.users if u.is_bot]
        if not bots:
            raise ValueError("the seed needs one bot user (is_bot=True) for the app")
        self.bot = bots[0]
        # Slack pairs a bot user U... with a bot id B... and an app id A...
        self.bot_id = "B" + self.bot.id[1:]
        self.app_id = "A" + self.bot.id[1:]

    def user(self, user_id: str) -> SandboxUser:
        try:
            return self.users[user_id]
        except KeyError:
            raise SandboxError("user_not_found", f"no user {user_id!r}") from None

    def human(self, user_id: str) -> SandboxUser:
        """A user a person may act as (not the bot)."""
        user = self.user(user_id)
        if user.is_bot:
            raise SandboxError("cannot_act_as_bot", "the sandbox acts only as human users")
        return user

    def mentionize(self, text: str) -> str:
        """Turn ``@name`` of a workspace member into ``<@ID>`` as the Slack client does."""
        by_name = {u.name.lower(): u.id for u in self.users.values()}

        def repl(m: re.Match[str]) -> str:
            uid = by_name.get(m.group(1).lower())
            return f"<@{uid}>" if uid else m.group(0)

        return _MENTION.sub(repl, text)
