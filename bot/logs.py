"""Logging set-up: text or JSON lines, with secrets redacted from every record."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from typing import Any, TextIO

# Token shapes that must never reach a log line even if a library logs a request.
_TOKEN_PATTERNS = [
    re.compile(r"xox[abposer]-[A-Za-z0-9-]+"),
    re.compile(r"xapp-[A-Za-z0-9-]+"),
    re.compile(r"ya29\.[A-Za-z0-9._-]+"),  # Google OAuth access tokens (Token Vault's)
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
    # Google OAuth access tokens (Token Vault's calendar tokens).
    re.compile(r"ya29\.[A-Za-z0-9._-]+"),
    re.compile(
        r"(?i)((?:refresh_token|access_token|id_token|client_secret|code_verifier"
        r"|subject_token|auth_session|connect_code)"
        r"[\"']?\s*[:=]\s*[\"']?)[^\"'&\s,}]+"
    ),
]

# A path separator as it appears in logs: plain, JSON-escaped or url-encoded.
_SEP = r"(?:/|\\/|%2[Ff])"
# URLs that work for whoever holds them: one-time link URLs, OAuth ``state``/``code``,
# Slack's ``response_url``s (and the sandbox's), in plain, JSON and form-encoded text.
_BEARER_URL_PATTERNS = [
    re.compile(rf"({_SEP}auth{_SEP}link{_SEP})[^/?#&\s\"'<>|\\]+"),
    re.compile(rf"({_SEP}connect{_SEP})(?!callback\b)[^/?#&\s\"'<>|\\]+"),
    re.compile(rf"({_SEP}response{_SEP})[^/?#&\s\"'<>|\\]+"),
    re.compile(rf"(hooks\.slack\.com{_SEP})[^\s\"'<>|&]+"),
    re.compile(r"(response_url\\?[\"']?\s*(?:[:=]|%3[Dd])\s*\\?[\"']?)[^\s\"'&,}]+"),
    re.compile(
        r"((?:(?<=[?&;\s\"'(,{])|(?<=%3[Ff])|(?<=%26)|^)(?:state|code|connect_code|ticket)(?:=|%3[Dd]))"
        r"[^&\s\"'<>#]+"
    ),
]
REDACTED = "[redacted]"

# Characters that end a line or drive a terminal (C0, DEL, C1, the Unicode line and paragraph
# separators, bidirectional overrides) and unpaired surrogates: shown escaped in text logs.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` on one line: line breaks and other control characters shown escaped."""
    return _CONTROL.sub(_escape_one, text)


class RedactingFilter(logging.Filter):
    """Replaces known secret values and token-shaped strings in every record."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def add_secret(self, secret: str) -> None:
        if secret and len(secret) >= 6 and secret not in self.secrets:
            self.secrets.append(secret)
            self.secrets.sort(key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        for pattern in (*_TOKEN_PATTERNS, *_BEARER_URL_PATTERNS):
            text = pattern.sub(lambda m: (m.group(1) if m.lastindex else "") + REDACTED, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class TextFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER: MESSAGE``, one line per record whatever the message holds.

    Control characters are escaped, so no value logged (a request path, a header) can end
    the line and start a record of its own. A traceback follows on lines of its own, each
    carrying the record's prefix and a ``|``: none of them can pass for a new record."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        record.message = ""
        prefix = escape_controls(self.formatMessage(record))
        record.message = message
        lines = [prefix + escape_controls(message)]
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        details = [record.exc_text or "", self.formatStack(record.stack_info or "")]
        for block in filter(None, details):
            lines += [f"{prefix}| {escape_controls(line)}" for line in block.split("\n")]
        return "\n".join(lines)


class JsonFormatter(logging.Formatter):
    """One JSON object per line (``json.dumps`` escapes every control character)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exc"] = record.exc_text
        return json.dumps(doc)


def configure_logging(
    fmt: str, level: str, secrets: Iterable[str], stream: TextIO | None = None
) -> RedactingFilter:
    """Install one handler on the root logger; returns its redaction filter."""
    handler = logging.StreamHandler(stream or sys.stderr)
    redactor = RedactingFilter(secrets)
    handler.addFilter(redactor)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # aiohttp's access log would print every request path; keep it at warning.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # aiosqlite logs every statement with its parameters at DEBUG: row values (link
    # request ids, browser bindings, ciphertexts) are not log material.
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
    # Libraries speak at INFO about their own routine (scheduler jobs added and run,
    # migrations context, connections): at the default level only pmbot's lines show.
    # LOG_LEVEL=DEBUG shows everything.
    library_level = logging.DEBUG if level == "DEBUG" else logging.WARNING
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(library_level)
    # SQLAlchemy logs statements with their parameters (row values) from INFO: never.
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    return redactor


QUIET_LIBRARIES = ("apscheduler", "slack_bolt", "slack_sdk", "alembic", "asyncio")
