from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
SCHEMA = REPO.parent / "shared" / "conformance" / "slack" / "manifest.schema.1.0.0.json"


def _manifest() -> dict[str, object]:
    doc = yaml.safe_load((REPO / "manifest.yml").read_text())
    assert isinstance(doc, dict)
    return doc


def test_manifest_validates_against_slacks_schema() -> None:
    if not SCHEMA.exists():
        pytest.skip(f"Slack's manifest schema is not present at {SCHEMA}")
    jsonschema.validate(_manifest(), json.loads(SCHEMA.read_text()))


def test_manifest_declares_what_the_bot_uses() -> None:
    manifest = _manifest()
    settings = manifest["settings"]
    features = manifest["features"]
    assert isinstance(settings, dict) and isinstance(features, dict)
    events = set(settings["event_subscriptions"]["bot_events"])
    assert {"app_mention", "message.im", "app_home_opened"} <= events
    assert settings["interactivity"]["is_enabled"] is True
    assert [c["command"] for c in features["slash_commands"]] == ["/pm"]
    assert features["app_home"]["home_tab_enabled"] is True
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])  # type: ignore[index]
    assert {"app_mentions:read", "chat:write", "commands", "im:history", "im:write"} <= scopes


def test_manifest_promises_only_the_commands_that_work() -> None:
    """The usage hint names exactly the subcommands `/pm help` lists (the help is generated
    from the commands that exist), and the scopes cover the methods linking calls."""
    from bot.messages import COMMANDS

    features = _manifest()["features"]
    assert isinstance(features, dict)
    (command,) = features["slash_commands"]
    hinted = {part.strip() for part in command["usage_hint"].split("|")}
    assert hinted == {cmd.removeprefix("/pm ") for cmd, _ in COMMANDS}
    scopes = set(_manifest()["oauth_config"]["scopes"]["bot"])  # type: ignore[index]
    assert {"users:read", "team:read"} <= scopes  # users.info and team.info


def test_manifest_declares_the_assistant_pane_the_bot_serves() -> None:
    """The assistant pane: its events, the scopes of the methods it calls (status, title,
    prompts; thread replies in channels), and the same suggested prompts as the bot sets."""
    from bot.messages import ASSISTANT_PROMPTS

    manifest = _manifest()
    features, settings = manifest["features"], manifest["settings"]
    assert isinstance(features, dict) and isinstance(settings, dict)
    view = features["assistant_view"]
    assert [(p["title"], p["message"]) for p in view["suggested_prompts"]] == ASSISTANT_PROMPTS
    events = set(settings["event_subscriptions"]["bot_events"])
    assert {"assistant_thread_started", "assistant_thread_context_changed"} <= events
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])  # type: ignore[index]
    assert {"assistant:write", "channels:history", "channels:read", "users:read"} <= scopes
