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


PRODUCTION = {
    "PMBOT_MODE": "production",
    "SLACK_BOT_TOKEN": "xoxb-very-secret-value",
    "SLACK_SIGNING_SECRET": "signing-secret-value",
    "AUTH0_DOMAIN": "acme.eu.auth0.com",
    "AUTH0_CLIENT_ID": "client",
    "AUTH0_CLIENT_SECRET": "client-secret-value",
    "TOKEN_ENCRYPTION_KEYS": "k1:" + "a" * 43 + "=",
    "PMBOT_PUBLIC_URL": "https://pmbot.example.com",
}


def test_secrets_are_not_shown_in_repr() -> None:
    settings = load_settings(**PRODUCTION)
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


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::", "pmbot.example.com"])
def test_sandbox_refuses_a_non_loopback_address(host: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(PMBOT_MODE="sandbox", PMBOT_HOST=host)
    assert "PMBOT_MODE=sandbox only listens on a loopback address" in info.value.problems[0]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_sandbox_runs_on_loopback(host: str) -> None:
    assert load_settings(PMBOT_MODE="sandbox", PMBOT_HOST=host).mode is Mode.SANDBOX


def test_sandbox_refuses_a_public_url_beyond_loopback() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(PMBOT_PUBLIC_URL="https://pmbot.example.com")
    assert "PMBOT_PUBLIC_URL" in info.value.problems[0]


@pytest.mark.parametrize(
    "name",
    [
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_APP_TOKEN",
        "AUTH0_DOMAIN",
        "AUTH0_CLIENT_SECRET",
    ],
)
def test_sandbox_refuses_real_credentials(name: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(**{name: PRODUCTION.get(name, "xapp-1-real-app-token")})
    assert "refuses real credentials" in info.value.problems[0]
    assert name in info.value.problems[0]


def test_the_review_s_exposed_sandbox_is_refused_with_every_reason() -> None:
    """Real Slack secrets, 0.0.0.0 and no PMBOT_MODE: the set-up the review exploited."""
    with pytest.raises(SettingsError) as info:
        load_settings(
            PMBOT_HOST="0.0.0.0",
            SLACK_BOT_TOKEN="xoxb-real",
            SLACK_SIGNING_SECRET="real-signing-secret",
        )
    text = " ".join(info.value.problems)
    assert "loopback" in text and "SLACK_SIGNING_SECRET" in text


def test_production_never_falls_back_to_the_dev_provider() -> None:
    settings = load_settings(**PRODUCTION)
    assert settings.auth0_issuer == "https://acme.eu.auth0.com/"
    assert settings.slack_api_url == "https://slack.com/api/"
    without_keys = load_settings(**PRODUCTION).model_copy(update={"token_encryption_keys": None})
    with pytest.raises(RuntimeError):
        _ = without_keys.encryption_keyring


def test_production_refuses_auth0_over_http() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(**{**PRODUCTION, "AUTH0_PROTOCOL": "http"})
    assert "AUTH0_PROTOCOL=http is refused in production" in info.value.problems[0]


def test_production_allows_http_only_to_an_identity_provider_on_loopback() -> None:
    settings = load_settings(
        **{**PRODUCTION, "AUTH0_PROTOCOL": "http", "AUTH0_DOMAIN": "127.0.0.1:8765"}
    )
    assert settings.auth0_issuer == "http://127.0.0.1:8765/"


@pytest.mark.parametrize("ttl", ["0", "60", "299"])
def test_a_dedup_memory_shorter_than_the_replay_window_is_refused(ttl: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(PMBOT_EVENT_DEDUP_TTL=ttl)
    assert info.value.problems[0].startswith("PMBOT_EVENT_DEDUP_TTL")
    assert load_settings(PMBOT_EVENT_DEDUP_TTL="300").event_dedup_ttl_seconds == 300


def test_cli_refuses_an_exposed_sandbox(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(REPO),
        "SLACK_SIGNING_SECRET": "real-signing-secret",
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "serve", "--host", "0.0.0.0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "loopback" in result.stderr and "refuses real credentials" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "overrides",
    [
        {"PMBOT_PUBLIC_URL": "http://pmbot.example.com"},
        {"PMBOT_PUBLIC_URL": None, "PMBOT_HOST": "0.0.0.0"},
    ],
)
def test_production_needs_an_https_public_url(overrides: dict[str, str | None]) -> None:
    values = {**PRODUCTION, **overrides}
    with pytest.raises(SettingsError) as info:
        load_settings(**{k: v for k, v in values.items() if v is not None})
    assert "https PMBOT_PUBLIC_URL" in info.value.problems[0]


def test_tests_read_no_dotenv_and_no_developer_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A developer's .env (here, in the working directory) does not reach the tests, and
    the variables of their shell were cleared when the session started."""
    (tmp_path / ".env").write_text("PMBOT_PORT=4999\nLOG_LEVEL=DEBUG\n")
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.port == 3000 and settings.log_level == "INFO"
    assert "SLACK_BOT_TOKEN" not in os.environ and "DATABASE_URL" not in os.environ


def test_the_calendar_api_is_googles_and_the_sandbox_calendar_in_sandbox_mode() -> None:
    sandbox = load_settings(PMBOT_PORT="3999")
    assert sandbox.google_calendar_api_url == "http://127.0.0.1:3999/sandbox/calendar/calendar/v3/"
    assert sandbox.provider_timeout_seconds == 10
    chosen = load_settings(GOOGLE_CALENDAR_API_URL="http://127.0.0.1:9/calendar/v3")
    assert chosen.google_calendar_api_url == "http://127.0.0.1:9/calendar/v3/"
    production = load_settings(
        PMBOT_MODE="production",
        SLACK_BOT_TOKEN="xoxb-1",
        SLACK_SIGNING_SECRET="s",
        AUTH0_DOMAIN="tenant.example.com",
        AUTH0_CLIENT_ID="c",
        AUTH0_CLIENT_SECRET="s",
        TOKEN_ENCRYPTION_KEYS="k1:" + "a" * 43 + "=",
        PMBOT_PUBLIC_URL="https://pmbot.example.com",
    )
    assert production.google_calendar_api_url == "https://www.googleapis.com/calendar/v3/"


@pytest.mark.parametrize("url", ["http://calendar.example.com/v3/", "ftp://127.0.0.1/v3/"])
def test_the_calendar_api_is_refused_in_clear_text_beyond_loopback(url: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(GOOGLE_CALENDAR_API_URL=url)
    assert any("GOOGLE_CALENDAR_API_URL" in p for p in info.value.problems)
