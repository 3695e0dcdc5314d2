from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import DEFAULT_DATABASE_URL, Mode, SettingsError, load_settings

REPO = Path(__file__).resolve().parents[3]


def test_defaults_are_the_embedded_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PMBOT_MODE", "DATABASE_URL", "SLACK_API_URL", "PMBOT_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.mode is Mode.SANDBOX
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.port == 3000
    assert settings.slack_api_url == "http://127.0.0.1:3000/sandbox/api/"


def test_explicit_api_url_and_sync_database_urls_are_normalised() -> None:
    settings = load_settings(
        SLACK_API_URL="http://127.0.0.1:9/api", DATABASE_URL="postgresql://u@h:5432/db"
    )
    assert settings.slack_api_url == "http://127.0.0.1:9/api/"
    assert settings.database_url == "postgresql+asyncpg://u@h:5432/db"


def test_every_problem_is_listed_at_once() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(
            PMBOT_PORT="not-a-port", DATABASE_URL="mysql://x", LOG_FORMAT="xml", PMBOT_MODE="prod"
        )
    joined = "\n".join(info.value.problems)
    for name in ("PMBOT_PORT", "DATABASE_URL", "LOG_FORMAT", "PMBOT_MODE"):
        assert name in joined
    assert len(info.value.problems) == 4


def test_production_requires_slack_credentials() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(PMBOT_MODE="production")
    for name in (
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "AUTH0_DOMAIN",
        "AUTH0_CLIENT_ID",
        "AUTH0_CLIENT_SECRET",
        "TOKEN_ENCRYPTION_KEYS",
    ):
        assert name in info.value.problems[0]


def test_secrets_are_not_shown_in_repr() -> None:
    settings = load_settings(SLACK_BOT_TOKEN="xoxb-very-secret-value")
    assert "xoxb-very-secret-value" not in repr(settings)
    assert "xoxb-very-secret-value" not in str(settings.model_dump())


def test_cli_reports_bad_settings_without_traceback(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PMBOT_PORT": "99999",
        "LOG_FORMAT": "fancy",
        "HOME": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "serve"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "PMBOT_PORT" in result.stderr and "LOG_FORMAT" in result.stderr
    assert "Traceback" not in result.stderr
