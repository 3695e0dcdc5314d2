"""The ``pmbot`` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from bot.settings import Mode, Settings, SettingsError, load_settings

log = logging.getLogger("pmbot")


def _settings_or_exit(**overrides: object) -> Settings:
    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        print("pmbot cannot start, the configuration has problems:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        raise SystemExit(2) from None


def _secrets(settings: Settings) -> list[str]:
    values = [
        settings.slack_bot_token,
        settings.slack_signing_secret,
        settings.slack_app_token,
        settings.fga_api_token,
    ]
    return [v.get_secret_value() for v in values if v is not None]


def cmd_migrate(args: argparse.Namespace) -> int:
    from bot.storage.migrate import downgrade, upgrade

    settings = _settings_or_exit()
    if args.revision.startswith("-") or args.downgrade:
        downgrade(settings.database_url, args.revision)
    else:
        upgrade(settings.database_url, args.revision)
    print(f"database migrated to {args.revision}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from bot.logs import configure_logging
    from bot.server import serve

    overrides: dict[str, object] = {}
    if args.host:
        overrides["PMBOT_HOST"] = args.host
    if args.port is not None:
        overrides["PMBOT_PORT"] = args.port
    settings = _settings_or_exit(**overrides)
    if args.socket and settings.slack_app_token is None:
        print("pmbot cannot start: --socket requires SLACK_APP_TOKEN", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level, _secrets(settings))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop=stop, socket_mode=args.socket)

    asyncio.run(main())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pmbot", description="pmbot, a project manager in Slack")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the bot (HTTP events, or Socket Mode)")
    serve.add_argument("--host", default=None, help="bind address (default PMBOT_HOST)")
    serve.add_argument("--port", type=int, default=None, help="port (default PMBOT_PORT, 3000)")
    serve.add_argument("--socket", action="store_true", help="receive events over Socket Mode")
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("revision", nargs="?", default="head")
    migrate.add_argument("--downgrade", action="store_true", help="downgrade to REVISION")
    migrate.set_defaults(func=cmd_migrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


__all__ = ["Mode", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
