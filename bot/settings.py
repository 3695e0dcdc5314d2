"""pmbot settings: the only place that reads the environment.

Every setting is documented in the README table. ``load_settings`` turns validation
failures into one :class:`SettingsError` listing every problem, so the CLI can print a
readable list and exit non-zero without a traceback.
"""

from __future__ import annotations

import enum
import ipaddress
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Mode(enum.StrEnum):
    """``sandbox``: local Slack + dev identity provider; ``production``: real Slack/Auth0."""

    SANDBOX = "sandbox"
    PRODUCTION = "production"


class AuthzEngine(enum.StrEnum):
    EMBEDDED = "embedded"
    OPENFGA = "openfga"


class RetrievalBackend(enum.StrEnum):
    """``memory``: in-process BM25 (+ dense vectors); ``postgres``: PostgreSQL full-text."""

    MEMORY = "memory"
    POSTGRES = "postgres"


DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./var/pmbot.sqlite3"
SLACK_REPLAY_WINDOW_SECONDS = 300
SANDBOX_SECRET = "sandbox-not-a-secret"  # noqa: S105 - the sandbox is local by design


class Settings(BaseSettings):
    """All configuration of pmbot, read once from the environment (and ``.env``)."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    mode: Mode = Field(default=Mode.SANDBOX, alias="PMBOT_MODE")
    host: str = Field(default="127.0.0.1", alias="PMBOT_HOST")
    port: int = Field(default=3000, ge=0, le=65535, alias="PMBOT_PORT")
    public_url: str | None = Field(default=None, alias="PMBOT_PUBLIC_URL")

    slack_bot_token: SecretStr | None = Field(default=None, alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(default=None, alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(default=None, alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field(default="https://slack.com/api/", alias="SLACK_API_URL")

    database_url: str = Field(default=DEFAULT_DATABASE_URL, alias="DATABASE_URL")

    log_format: Literal["text", "json"] = Field(default="text", alias="LOG_FORMAT")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", alias="LOG_LEVEL"
    )

    max_body_bytes: int = Field(default=1_000_000, ge=1024, alias="PMBOT_MAX_BODY_BYTES")
    # Slack retries for up to an hour and a signed request stays valid for 300 s: a shorter
    # memory would let a replay within the signature window run twice.
    event_dedup_ttl_seconds: int = Field(
        default=3600, ge=SLACK_REPLAY_WINDOW_SECONDS, alias="PMBOT_EVENT_DEDUP_TTL"
    )

    authz_engine: AuthzEngine = Field(default=AuthzEngine.EMBEDDED, alias="AUTHZ_ENGINE")
    fga_api_url: str | None = Field(default=None, alias="FGA_API_URL")
    fga_store_id: str | None = Field(default=None, alias="FGA_STORE_ID")
    fga_model_id: str | None = Field(default=None, alias="FGA_MODEL_ID")
    fga_api_token: SecretStr | None = Field(default=None, alias="FGA_API_TOKEN")
    fga_timeout_ms: int = Field(default=2000, ge=50, alias="FGA_TIMEOUT_MS")
    authz_cache_ttl_seconds: float = Field(default=10.0, ge=0, alias="AUTHZ_CACHE_TTL")
    fga_serve_token: SecretStr | None = Field(default=None, alias="FGA_SERVE_TOKEN")

    auth0_domain: str | None = Field(default=None, alias="AUTH0_DOMAIN")
    auth0_protocol: Literal["https", "http"] = Field(default="https", alias="AUTH0_PROTOCOL")
    auth0_client_id: str | None = Field(default=None, alias="AUTH0_CLIENT_ID")
    auth0_client_secret: SecretStr | None = Field(default=None, alias="AUTH0_CLIENT_SECRET")
    auth0_audience: str = Field(default="https://pmbot.example.com/api", alias="AUTH0_AUDIENCE")
    auth0_timeout_seconds: float = Field(default=10.0, gt=0, alias="AUTH0_TIMEOUT")
    id_token_leeway_seconds: int = Field(default=30, ge=0, le=300, alias="ID_TOKEN_LEEWAY")
    link_ttl_seconds: int = Field(default=600, ge=60, le=3600, alias="LINK_TTL")
    token_encryption_keys: SecretStr | None = Field(default=None, alias="TOKEN_ENCRYPTION_KEYS")

    # Knowledge: ingestion (`pmbot ingest`) and retrieval (bot/knowledge/). Dense vectors
    # come from an OpenAI-compatible embeddings endpoint when EMBEDDINGS_MODEL is set.
    retrieval_backend: RetrievalBackend = Field(
        default=RetrievalBackend.MEMORY, alias="RETRIEVAL_BACKEND"
    )
    retrieval_refresh_seconds: float = Field(default=5.0, ge=0, alias="RETRIEVAL_REFRESH_SECONDS")
    chunk_chars: int = Field(default=1200, ge=200, le=20_000, alias="CHUNK_CHARS")
    chunk_overlap_chars: int = Field(default=150, ge=0, alias="CHUNK_OVERLAP_CHARS")
    ingest_max_file_bytes: int = Field(default=50_000_000, ge=1, alias="INGEST_MAX_FILE_BYTES")
    embeddings_model: str | None = Field(default=None, alias="EMBEDDINGS_MODEL")
    embeddings_min_similarity: float = Field(
        default=0.2, ge=-1, le=1, alias="EMBEDDINGS_MIN_SIMILARITY"
    )
    openai_base_url: str | None = Field(default=None, alias="OPENAI_BASE_URL")
    openai_api_key: SecretStr | None = Field(default=None, alias="OPENAI_API_KEY")

    # Answers (bot/knowledge/answers.py): with OPENAI_MODEL a chat model of the
    # OpenAI-compatible endpoint above writes them from the authorized passages; without it
    # they are extractive (the best sentences of those passages, quoted). The limits bound
    # what one question may cost: its length, the passages it reads, the model's time.
    openai_model: str | None = Field(default=None, alias="OPENAI_MODEL")
    answer_passages: int = Field(default=6, ge=1, le=20, alias="ANSWER_PASSAGES")
    answer_timeout_seconds: float = Field(default=45.0, gt=0, le=600, alias="ANSWER_TIMEOUT")
    answer_max_question_chars: int = Field(
        default=4000, ge=100, le=40_000, alias="ANSWER_MAX_QUESTION_CHARS"
    )
    answer_max_tokens: int = Field(default=800, ge=50, le=8000, alias="ANSWER_MAX_TOKENS")

    # The agent (bot/agent/): tool calling with the chat model of OPENAI_MODEL, bounded per
    # request in steps (model calls), tokens per model call and total time; each tool call
    # has its own time limit. A request waiting for a connected account is kept this long.
    agent_max_steps: int = Field(default=6, ge=1, le=20, alias="AGENT_MAX_STEPS")
    agent_max_tokens: int = Field(default=800, ge=50, le=8000, alias="AGENT_MAX_TOKENS")
    agent_timeout_seconds: float = Field(default=60.0, gt=0, le=600, alias="AGENT_TIMEOUT")
    agent_tool_timeout_seconds: float = Field(
        default=20.0, gt=0, le=300, alias="AGENT_TOOL_TIMEOUT"
    )
    agent_request_ttl_seconds: int = Field(
        default=1800, ge=60, le=86_400, alias="AGENT_REQUEST_TTL"
    )

    # Token Vault (bot/vault/): provider access tokens for the asker from Auth0's token
    # exchange, kept in memory until TOKEN_VAULT_EXPIRY_MARGIN seconds before they expire;
    # accounts not connected yet are connected through the My Account API's Connected
    # Accounts flow, from a link valid CONNECT_TTL seconds.
    token_vault_calendar_connection: str = Field(
        default="google-oauth2",
        min_length=1,
        max_length=128,
        alias="TOKEN_VAULT_CALENDAR_CONNECTION",
    )
    token_vault_slack_connection: str = Field(
        default="sign-in-with-slack",
        min_length=1,
        max_length=128,
        alias="TOKEN_VAULT_SLACK_CONNECTION",
    )
    token_vault_calendar_scopes: str = Field(
        default="https://www.googleapis.com/auth/calendar.events "
        "https://www.googleapis.com/auth/calendar.freebusy",
        alias="TOKEN_VAULT_CALENDAR_SCOPES",
    )
    token_vault_slack_scopes: str = Field(default="chat:write", alias="TOKEN_VAULT_SLACK_SCOPES")
    token_vault_expiry_margin_seconds: int = Field(
        default=60, ge=0, le=3600, alias="TOKEN_VAULT_EXPIRY_MARGIN"
    )
    connect_ttl_seconds: int = Field(default=600, ge=60, le=3600, alias="CONNECT_TTL")

    # Provider APIs called as the person with a Token Vault token (bot/providers/): Google
    # Calendar v3 over aiohttp, Slack's chat.postMessage with a user token (at SLACK_API_URL).
    # In sandbox mode the calendar defaults to the sandbox calendar on pmbot's own server.
    google_calendar_api_url: str = Field(
        default="https://www.googleapis.com/calendar/v3/", alias="GOOGLE_CALENDAR_API_URL"
    )
    provider_timeout_seconds: float = Field(default=10.0, gt=0, le=120, alias="PROVIDER_TIMEOUT")

    @field_validator("google_calendar_api_url")
    @classmethod
    def _calendar_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value if value.endswith("/") else value + "/"

    @model_validator(mode="after")
    def _calendar_over_https(self) -> Settings:
        # The person's Google token travels to this URL: never in clear text over a network.
        url = urlsplit(self.google_calendar_api_url)
        if url.scheme != "https" and not is_loopback_host(url.hostname or ""):
            raise ValueError("GOOGLE_CALENDAR_API_URL must be https (unless on a loopback host)")
        return self

    # Approvals (bot/approvals/): how long an approval waits for an approver, how often
    # the scheduler polls the CIBA requests that are due and sweeps deadlines, and how many
    # polls may be in flight at once.
    approval_ttl_seconds: int = Field(default=600, ge=30, le=86_400, alias="APPROVAL_TTL")
    approval_poll_seconds: float = Field(default=2.0, gt=0, le=60, alias="APPROVAL_POLL_SECONDS")
    approval_sweep_seconds: float = Field(
        default=30.0, gt=0, le=3600, alias="APPROVAL_SWEEP_SECONDS"
    )
    approval_poll_concurrency: int = Field(
        default=8, ge=1, le=256, alias="APPROVAL_POLL_CONCURRENCY"
    )

    @model_validator(mode="after")
    def _answers_consistent(self) -> Settings:
        if self.openai_model and not (self.openai_base_url or self.openai_api_key):
            raise ValueError("OPENAI_MODEL needs OPENAI_BASE_URL or OPENAI_API_KEY")
        return self

    @model_validator(mode="after")
    def _knowledge_consistent(self) -> Settings:
        problems: list[str] = []
        if self.chunk_overlap_chars * 2 >= self.chunk_chars:
            problems.append("CHUNK_OVERLAP_CHARS must be less than half of CHUNK_CHARS")
        if self.retrieval_backend is RetrievalBackend.POSTGRES and not (
            self.database_url.startswith("postgresql")
        ):
            problems.append("RETRIEVAL_BACKEND=postgres needs a PostgreSQL DATABASE_URL")
        if self.embeddings_model and not (self.openai_base_url or self.openai_api_key):
            problems.append("EMBEDDINGS_MODEL needs OPENAI_BASE_URL or OPENAI_API_KEY")
        if self.openai_base_url and not self.openai_base_url.startswith(("http://", "https://")):
            problems.append("OPENAI_BASE_URL must be an http(s) URL")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @field_validator("token_encryption_keys")
    @classmethod
    def _keys_parse(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            from bot.identity.crypto import parse_keyring

            parse_keyring(value.get_secret_value())
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _api_url_ends_with_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value if value.endswith("/") else value + "/"

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        # Accept the common sync spellings and use the async driver for them.
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            return "postgresql+asyncpg://" + value.split("://", 1)[1]
        if value.startswith("sqlite:///"):
            return "sqlite+aiosqlite:///" + value[len("sqlite:///") :]
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return value

    @model_validator(mode="after")
    def _complete_and_consistent(self) -> Settings:
        problems: list[str] = []
        if self.mode is Mode.SANDBOX:
            problems += self._sandbox_problems()
        if problems:
            # Checked before the sandbox defaults below are filled in.
            raise ValueError("; ".join(problems))
        if self.mode is Mode.SANDBOX and "slack_api_url" not in self.model_fields_set:
            # The sandbox's Slack Web API emulator is mounted on pmbot's own server.
            self.slack_api_url = f"{self.base_url}/sandbox/api/"
        if self.mode is Mode.SANDBOX and "google_calendar_api_url" not in self.model_fields_set:
            # The sandbox calendar is mounted on pmbot's own server too.
            self.google_calendar_api_url = f"{self.base_url}/sandbox/calendar/calendar/v3/"
        if self.mode is Mode.SANDBOX and "auth0_domain" not in self.model_fields_set:
            # The sandbox's dev identity provider is mounted on pmbot's own server.
            self.auth0_domain = f"{self.host}:{self.port}/idp"
            self.auth0_protocol = "http"
            self.auth0_client_id = self.auth0_client_id or "pmbot-sandbox"
            if self.auth0_client_secret is None:
                self.auth0_client_secret = SecretStr(SANDBOX_SECRET)
        if self.mode is Mode.PRODUCTION:
            problems += self._production_problems()
        if self.authz_engine is AuthzEngine.OPENFGA:
            missing_fga = [
                name
                for name, value in (
                    ("FGA_API_URL", self.fga_api_url),
                    ("FGA_STORE_ID", self.fga_store_id),
                )
                if not value
            ]
            if missing_fga:
                problems.append(f"AUTHZ_ENGINE=openfga requires {', '.join(missing_fga)}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _sandbox_problems(self) -> list[str]:
        """The sandbox serves an unauthenticated Slack API and an identity provider with
        published passwords: it may only ever be reachable from this machine, and never
        holds real credentials (it would sign its own deliveries with them)."""
        problems: list[str] = []
        if not is_loopback_host(self.host):
            problems.append(
                f"PMBOT_MODE=sandbox only listens on a loopback address, not {self.host!r} "
                "(the sandbox has no authentication); set PMBOT_MODE=production to serve "
                "real Slack"
            )
        if self.public_url and not is_loopback_host(urlsplit(self.public_url).hostname or ""):
            problems.append(
                "PMBOT_MODE=sandbox cannot be published at a non-loopback PMBOT_PUBLIC_URL "
                "(the sandbox has no authentication)"
            )
        real = [
            name
            for name, value in (
                ("SLACK_BOT_TOKEN", self.slack_bot_token),
                ("SLACK_SIGNING_SECRET", self.slack_signing_secret),
                ("SLACK_APP_TOKEN", self.slack_app_token),
                ("AUTH0_DOMAIN", self.auth0_domain),
                ("AUTH0_CLIENT_SECRET", self.auth0_client_secret),
            )
            if value is not None
        ]
        if real:
            problems.append(
                f"PMBOT_MODE=sandbox refuses real credentials ({', '.join(real)} set): the "
                "sandbox would use them for its local Slack and identity provider; set "
                "PMBOT_MODE=production to use them"
            )
        return problems

    def _production_problems(self) -> list[str]:
        problems: list[str] = []
        required: list[tuple[str, object]] = [
            ("SLACK_BOT_TOKEN", self.slack_bot_token),
            ("SLACK_SIGNING_SECRET", self.slack_signing_secret),
            ("AUTH0_DOMAIN", self.auth0_domain),
            ("AUTH0_CLIENT_ID", self.auth0_client_id),
            ("AUTH0_CLIENT_SECRET", self.auth0_client_secret),
            ("TOKEN_ENCRYPTION_KEYS", self.token_encryption_keys),
        ]
        missing = [
            name
            for name, value in required
            if not (value.get_secret_value() if isinstance(value, SecretStr) else value)
        ]
        if missing:
            problems.append(f"production mode requires {', '.join(missing)}")
        public = urlsplit(self.base_url)
        if public.scheme != "https" and not is_loopback_host(public.hostname or ""):
            # Link pages, their cookies and the OAuth callback travel over this URL.
            problems.append(
                "production mode needs an https PMBOT_PUBLIC_URL (where Slack and people "
                f"reach pmbot), not {self.base_url!r}"
            )
        if (
            self.auth0_protocol == "http"
            and self.auth0_domain
            and not is_loopback_host(urlsplit(f"http://{self.auth0_domain}").hostname or "")
        ):
            # Tokens and the client secret would cross the network in clear text. Only an
            # identity provider on this machine (a local test set-up) may be reached over http.
            problems.append(
                "AUTH0_PROTOCOL=http is refused in production (Auth0 is only reached over "
                "https; http is allowed for an identity provider on a loopback address)"
            )
        return problems

    # -- derived values -------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """Where people and Slack reach this server (no trailing slash)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{self.host}:{self.port}"

    @property
    def signing_secret(self) -> str:
        if self.slack_signing_secret is not None:
            return self.slack_signing_secret.get_secret_value()
        self._sandbox_only("SLACK_SIGNING_SECRET")
        return SANDBOX_SECRET

    @property
    def bot_token(self) -> str:
        if self.slack_bot_token is not None:
            return self.slack_bot_token.get_secret_value()
        self._sandbox_only("SLACK_BOT_TOKEN")
        return "xoxb-sandbox"

    def _sandbox_only(self, name: str) -> None:
        # Validation already requires these in production; this keeps a dev fallback from
        # ever being used there, whatever a future change to validation does.
        if self.mode is not Mode.SANDBOX:
            raise RuntimeError(f"{name} is required in production")

    @property
    def auth0_issuer(self) -> str:
        """The exact ``iss`` of Auth0 tokens: ``https://DOMAIN/``."""
        return f"{self.auth0_protocol}://{self.auth0_domain}/"

    @property
    def encryption_keyring(self) -> str:
        if self.token_encryption_keys is not None:
            return self.token_encryption_keys.get_secret_value()
        self._sandbox_only("TOKEN_ENCRYPTION_KEYS")
        # The sandbox keeps only dev identities; a fixed dev key keeps links across restarts.
        return "dev:" + "ZGV2LW9ubHktcG1ib3Qtc2FuZGJveC1rZXktMzJieXQ="

    def sqlite_path(self) -> Path | None:
        """The SQLite file, if the database is a file-backed SQLite database."""
        prefix = "sqlite+aiosqlite:///"
        if self.database_url.startswith(prefix):
            rest = self.database_url[len(prefix) :]
            if rest and rest != ":memory:":
                return Path(rest.split("?", 1)[0])
        return None


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and addresses in 127.0.0.0/8 or ``::1``."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class SettingsError(Exception):
    """Invalid configuration: ``problems`` lists each one as ``NAME: message``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid settings:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; raise :class:`SettingsError` listing all problems."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems: list[str] = []
        for err in exc.errors():
            loc = ".".join(str(part) for part in err["loc"]) or "settings"
            name = _env_name(loc)
            message = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{name}: {message}")
        raise SettingsError(problems) from None


def _env_name(field_name: str) -> str:
    field = Settings.model_fields.get(field_name)
    if field is not None and field.alias:
        return field.alias
    return field_name.upper()
