from __future__ import annotations

import io
import logging

from bot.logs import REDACTED, configure_logging
from bot.metrics import Registry


def test_metrics_render_prometheus_text() -> None:
    registry = Registry()
    registry.requests.inc("event", "200")
    registry.requests.inc("event", "200")
    registry.ack_latency.observe(0.004, "event")
    registry.ack_latency.observe(0.2, "event")
    text = registry.render()
    assert 'pmbot_slack_requests_total{kind="event",status="200"} 2' in text
    assert 'pmbot_slack_ack_seconds_bucket{kind="event",le="0.005"} 1' in text
    assert 'pmbot_slack_ack_seconds_bucket{kind="event",le="+Inf"} 2' in text
    assert 'pmbot_slack_ack_seconds_count{kind="event"} 2' in text
    assert "# TYPE pmbot_slack_ack_seconds histogram" in text


def test_logs_redact_configured_secrets_and_token_shapes() -> None:
    stream = io.StringIO()
    try:
        configure_logging("text", "DEBUG", ["my-signing-secret-123"], stream=stream)
        log = logging.getLogger("test.redaction")
        log.info("secret=%s", "my-signing-secret-123")
        log.info("token xoxb-1234-5678-abcdef and Bearer abc.def.ghi")
        log.info("body refresh_token=v1.MmRefresh&x=1")
        log.info("jwt eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhdXRoMHxhbGljZSJ9.c2lnbmF0dXJl")
        try:
            raise RuntimeError("failed with my-signing-secret-123")
        except RuntimeError:
            log.exception("boom")
    finally:
        configure_logging("text", "WARNING", [])
    out = stream.getvalue()
    assert "my-signing-secret-123" not in out
    assert "xoxb-1234" not in out
    assert "abc.def.ghi" not in out
    assert "v1.MmRefresh" not in out
    assert "eyJhbGciOiJSUzI1NiJ9" not in out
    assert out.count(REDACTED) >= 6


def test_json_log_format_is_one_object_per_line() -> None:
    import json

    stream = io.StringIO()
    try:
        configure_logging("json", "INFO", [], stream=stream)
        logging.getLogger("test.json").info("hello %s", "world")
    finally:
        configure_logging("text", "WARNING", [])
    line = stream.getvalue().strip().splitlines()[-1]
    assert json.loads(line)["message"] == "hello world"


def test_domain_errors_become_plain_user_text() -> None:
    from authz.ports import AuthzUnavailable
    from bot.errors import InputTooLong, UnknownCommand
    from bot.messages import GENERIC_FAILURE, user_message

    assert "Authorization is unavailable" in user_message(AuthzUnavailable("down"))
    assert "Authorization is unavailable" in user_message(AuthzUnavailable("down"))
    assert "`frob`" in user_message(UnknownCommand("frob"))
    assert "5000" in user_message(InputTooLong(5000, 4000))
    secret_error = RuntimeError("password=hunter2 at db host")
    assert user_message(secret_error) == GENERIC_FAILURE


LINK_ID = "Zq3vN8xYp2Lw9cKe4RtB7uHs1JdFa6Gm0OiXyVbCnEk"
HOOK = "https://hooks.slack.com/commands/T0SANDBOX/7361/aB9xQ2wErT5yUi8oP"
SANDBOX_HOOK_TOKEN = "v-VERq0tOZTGL_jTaEkMHTZYnrPqLDT9"


def test_logs_redact_link_urls_and_response_urls() -> None:
    from urllib.parse import quote, urlencode

    sandbox_hook = f"http://127.0.0.1:3000/sandbox/response/{SANDBOX_HOOK_TOKEN}"
    lines = [
        f"<https://pmbot.example/auth/link/{LINK_ID}|link your account>",
        f'{{"url": "https:\\/\\/pmbot.example\\/auth\\/link\\/{LINK_ID}"}}',
        "next=" + quote(f"https://pmbot.example/auth/link/{LINK_ID}", safe=""),
        f"GET /auth/callback?code=Cd7Kq2mZ9&state={LINK_ID} 200",
        f"https://idp.example/authorize?response_type=code&state={LINK_ID}&nonce=n1",
        "redirect=" + quote(f"https://pmbot.example/auth/callback?state={LINK_ID}", safe=""),
        f'{{"response_url": "{HOOK}", "trigger_id": "t1"}}',
        f"{{'response_url': '{HOOK}'}}",
        urlencode({"command": "/pm", "response_url": HOOK, "trigger_id": "t1"}),
        f"posting to {HOOK} now",
        "https:\\/\\/hooks.slack.com\\/actions\\/T0SANDBOX\\/7361\\/aB9xQ2wErT5yUi8oP",
        f"Sending a request - url: {sandbox_hook}, body: {{}}",
        urlencode({"response_url": sandbox_hook}),
    ]
    stream = io.StringIO()
    try:
        configure_logging("text", "DEBUG", [], stream=stream)
        log = logging.getLogger("test.redaction.urls")
        for line in lines:
            log.debug("%s", line)
    finally:
        configure_logging("text", "WARNING", [])
    out = stream.getvalue()
    for value in (
        LINK_ID,
        "Cd7Kq2mZ9",
        "aB9xQ2wErT5yUi8oP",
        "7361",
        SANDBOX_HOOK_TOKEN,
        quote(HOOK, safe=""),
    ):
        assert value not in out, value
    assert out.count(REDACTED) >= len(lines)
    # What is not a bearer value stays readable.
    assert "link your account" in out and '"trigger_id": "t1"' in out and "nonce=n1" in out


def test_redaction_keeps_ordinary_words() -> None:
    from bot.logs import RedactingFilter

    text = "state of Apollo; error_code=5; the response was fine; /auth/callback"
    assert RedactingFilter().redact(text) == text


RECORD = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ [\w.]+: "
FORGED = "2026-01-01 00:00:00,000 ERROR pmbot: FORGED"
BREAKS = ["\n", "\r\n", "\r", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u2029"]


def test_text_log_records_cannot_be_forged() -> None:
    import re

    stream = io.StringIO()
    try:
        configure_logging("text", "INFO", [], stream=stream)
        log = logging.getLogger("test.forging")
        for brk in BREAKS:
            log.warning("unhandled error on GET %s", f"/slack/events{brk}{FORGED}")
        log.info("colours \x1b[31mred\x1b[0m, a bell \x07, a NUL \x00, DEL \x7f, CSI \x9b")
        log.info("a lone surrogate \udcff stays printable")
        try:
            raise ValueError(f"bad path /x\n{FORGED}\r{FORGED}\u2028{FORGED}")
        except ValueError:
            log.exception("unhandled error on %s %s", "GET", f"/x\n{FORGED}")
        log.info("trace", stack_info=True)
    finally:
        configure_logging("text", "WARNING", [])
    out = stream.getvalue()
    lines = out.splitlines()
    assert len([line for line in lines if " unhandled error on GET " in line]) == len(BREAKS) + 1
    for line in lines:
        head = re.match(RECORD, line)
        assert head is not None, repr(line)
        assert not line[head.end() :].startswith("FORGED"), line
    assert "\\n" + FORGED in out and "\\r" + FORGED in out and "\\u2028" + FORGED in out
    assert "\\x1b[31mred" in out and "\\x00" in out and "\\x7f" in out and "\\x9b" in out
    assert "\\udcff" in out
    assert "Traceback (most recent call last)" in out
    # The exception's own lines continue its record: prefixed, never a record of their own.
    assert re.search(RECORD + r"\| ValueError: bad path /x\n", out)
    assert re.search(RECORD + r"\| " + re.escape(FORGED + "\\r" + FORGED + "\\u2028"), out)
    out.encode("utf-8")  # every record can be written to a UTF-8 stream


def test_json_log_records_stay_one_line() -> None:
    import json

    stream = io.StringIO()
    try:
        configure_logging("json", "INFO", [], stream=stream)
        log = logging.getLogger("test.json.forging")
        for brk in BREAKS:
            log.warning("path %s", f"/x{brk}{FORGED}")
        try:
            raise ValueError(f"bad\n{FORGED}")
        except ValueError:
            log.exception("failed\u2028%s", FORGED)
    finally:
        configure_logging("text", "WARNING", [])
    out = stream.getvalue()
    lines = out.splitlines()
    assert len(lines) == len(BREAKS) + 1
    docs = [json.loads(line) for line in lines]
    assert [d["message"] for d in docs[:-1]] == [f"path /x{brk}{FORGED}" for brk in BREAKS]
    assert docs[-1]["message"] == f"failed\u2028{FORGED}"
    assert f"ValueError: bad\n{FORGED}" in docs[-1]["exc"]
