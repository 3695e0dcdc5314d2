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
    from bot.errors import AuthorizationUnavailable, InputTooLong, UnknownCommand
    from bot.messages import GENERIC_FAILURE, user_message

    assert "Authorization is unavailable" in user_message(AuthzUnavailable("down"))
    assert "Authorization is unavailable" in user_message(AuthorizationUnavailable())
    assert "`frob`" in user_message(UnknownCommand("frob"))
    assert "5000" in user_message(InputTooLong(5000, 4000))
    secret_error = RuntimeError("password=hunter2 at db host")
    assert user_message(secret_error) == GENERIC_FAILURE
