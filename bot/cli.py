"""The ``pmbot`` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TextIO

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


def secrets_of(settings: Settings) -> list[str]:
    """Every configured secret value, for the log redaction filter."""
    values = [
        settings.slack_bot_token,
        settings.slack_signing_secret,
        settings.slack_app_token,
        settings.fga_api_token,
        settings.fga_serve_token,
        settings.auth0_client_secret,
        settings.openai_api_key,
    ]
    found = [v.get_secret_value() for v in values if v is not None]
    # The keyring, and each key of it on its own.
    keyring = settings.encryption_keyring
    found += [keyring, *(part.partition(":")[2] for part in keyring.split(","))]
    return found


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
    configure_logging(settings.log_format, settings.log_level, secrets_of(settings))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop=stop, socket_mode=args.socket)

    asyncio.run(main())
    return 0


def cmd_fga(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.fga_command == "conformance":
        # Pure evaluation of a conformance file: needs no database or settings.
        from authz.cli import fga_conformance

        return fga_conformance(Path(args.file), sys.stdout)

    from authz.cli import fga_check, fga_push
    from bot.storage.db import Database
    from bot.storage.migrate import upgrade
    from bot.wiring import authz_config

    settings = _settings_or_exit()
    serve_token: str | None = None
    if args.fga_command == "serve":
        # Decided before the database is touched: a refusal changes nothing.
        from authz.http_api import serve_problems
        from bot.settings import is_loopback_host

        secret = settings.fga_serve_token
        serve_token = secret.get_secret_value() if secret is not None else None
        problems = serve_problems(serve_token, args.allowed_hosts)
        if serve_token is None and not is_loopback_host(args.host):
            problems.append(
                f"--host {args.host} listens beyond loopback: set FGA_SERVE_TOKEN (the bearer "
                "token every client must send) or listen on 127.0.0.1"
            )
        if problems:
            print("pmbot fga serve cannot start:", file=sys.stderr)
            for problem in problems:
                print(f"  - {problem}", file=sys.stderr)
            return 2
        if serve_token is None:
            print(
                "pmbot fga serve: WARNING: the OpenFGA API is unauthenticated (FGA_SERVE_TOKEN "
                "is not set): any program on this machine can read and change authorization "
                "data",
                file=sys.stderr,
                flush=True,
            )
    if settings.sqlite_path() is not None:
        upgrade(settings.database_url)
    config = authz_config(settings)

    async def run() -> int:
        db = Database(settings.database_url)
        try:
            if args.fga_command == "push":
                model_id = await fga_push(config, engine=db.engine)
                print(model_id)
                return 0
            if args.fga_command == "check":
                allowed = await fga_check(
                    config,
                    engine=db.engine,
                    user=args.user,
                    relation=args.relation,
                    object=args.object,
                )
                print("allowed" if allowed else "denied")
                return 0 if allowed else 1
            if args.fga_command == "serve":
                from authz.embedded.engine import EmbeddedEngine
                from authz.http_api import serve_fga

                engine = EmbeddedEngine(engine=db.engine)
                await engine.start()
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, stop.set)
                auth = "bearer token required" if serve_token else "unauthenticated"
                print(f"OpenFGA API on http://{args.host}:{args.port} ({auth})", flush=True)
                try:
                    await serve_fga(
                        engine,
                        args.host,
                        args.port,
                        stop,
                        token=serve_token,
                        allowed_hosts=args.allowed_hosts,
                    )
                finally:
                    await engine.close()
                return 0
            raise AssertionError(args.fga_command)
        finally:
            await db.dispose()

    from authz.ports import AuthzError

    try:
        return asyncio.run(run())
    except AuthzError as exc:
        print(f"pmbot fga: {exc}", file=sys.stderr)
        return 2


def cmd_ingest(args: argparse.Namespace) -> int:
    from bot.knowledge.cli import run_ingest

    settings = _settings_or_exit()
    return run_ingest(settings, paths=args.paths, project_name=args.project, team_id=args.team)


def _since(text: str) -> datetime:
    """``YYYY-MM-DD`` (midnight UTC) or an ISO 8601 time (UTC unless it says otherwise)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (use YYYY-MM-DD)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def cmd_audit(args: argparse.Namespace) -> int:
    """``pmbot audit export``: every audit entry (since a date), one JSON object a line,
    oldest first, to stdout or a file."""
    from bot.audit import AuditLog
    from bot.storage.db import Database

    settings = _settings_or_exit()

    async def run(out: TextIO) -> int:
        db = Database(settings.database_url)
        written = 0
        try:
            async for record in AuditLog(db=db).stream(since=args.since):
                out.write(record.as_json() + "\n")
                written += 1
        finally:
            await db.dispose()
        return written

    if args.output and args.output != "-":
        with open(args.output, "w", encoding="utf-8") as out:
            written = asyncio.run(run(out))
        print(f"wrote {written} audit entries to {args.output}", file=sys.stderr)
    else:
        asyncio.run(run(sys.stdout))
        sys.stdout.flush()
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

    fga = sub.add_parser("fga", help="authorization: push the model, check, conformance, serve")
    fga_sub = fga.add_subparsers(dest="fga_command", required=True)
    fga_sub.add_parser("push", help="write authz/model.fga to the configured store")
    check = fga_sub.add_parser("check", help="check USER RELATION OBJECT")
    check.add_argument("user")
    check.add_argument("relation")
    check.add_argument("object")
    conformance = fga_sub.add_parser("conformance", help="run an OpenFGA conformance file")
    conformance.add_argument("file")
    fga_serve = fga_sub.add_parser("serve", help="serve the embedded engine over the OpenFGA API")
    fga_serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="bind address (default 127.0.0.1; beyond loopback FGA_SERVE_TOKEN is required)",
    )
    fga_serve.add_argument("--port", type=int, default=8080)
    fga_serve.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        dest="allowed_hosts",
        metavar="NAME",
        help="also accept this Host header: NAME (any port) or NAME:PORT; repeatable "
        "(always accepted: 127.0.0.1, localhost, [::1] and the bind address, on the served port)",
    )
    fga.set_defaults(func=cmd_fga)

    ingest = sub.add_parser(
        "ingest", help="ingest Markdown, text and PDF files into a project's documents"
    )
    ingest.add_argument("paths", nargs="+", metavar="PATH", help="a file or a directory")
    ingest.add_argument("--project", required=True, metavar="NAME", help="the project's name")
    ingest.add_argument(
        "--team",
        default=None,
        metavar="TEAM_ID",
        help="the project's Slack workspace (sandbox mode: T0SANDBOX; required in production)",
    )
    ingest.set_defaults(func=cmd_ingest)

    audit = sub.add_parser("audit", help="the audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    export = audit_sub.add_parser("export", help="write the audit log as JSON lines")
    export.add_argument(
        "--since", type=_since, default=None, metavar="DATE", help="only entries since DATE"
    )
    export.add_argument(
        "--output", "-o", default="-", metavar="FILE", help="write to FILE (default stdout)"
    )
    audit.set_defaults(func=cmd_audit)
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
