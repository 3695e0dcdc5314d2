"""Run Alembic migrations programmatically (``pmbot migrate``, start-up, tests)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData

from bot.storage.db import ensure_sqlite_dir

REPO_ROOT = Path(__file__).resolve().parents[2]


def target_metadata() -> list[MetaData]:
    """Every table the migrations create: pmbot's own, the embedded authorization
    engine's and the Slack sandbox's (Alembic's ``target_metadata``; tests compare the
    two)."""
    import bot.approvals.models  # registers the approvals tables on Base
    import bot.projects.models  # noqa: F401 - registers the projects tables on Base
    from authz.embedded.tables import authz_metadata
    from bot import audit  # noqa: F401 - registers the audit log on Base
    from bot.agent import requests  # noqa: F401 - registers the agent's waiting requests
    from bot.knowledge import feedback  # noqa: F401 - registers the answers tables on Base
    from bot.storage.models import Base
    from bot.vault import models as vault_models  # noqa: F401 - registers connect_requests

    # The sandbox's workspace (for `make run`) lives in the bot's database, so its tables
    # are migrated too: a production database carries them, empty, as nothing outside
    # sandbox mode writes them. Imported here, when migrating, never by the running bot.
    from sandbox.slack.storage import sandbox_metadata

    return [Base.metadata, authz_metadata, sandbox_metadata]


def alembic_config(url: str) -> Config:
    cfg = Config(str(REPO_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    cfg.attributes["url"] = url
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (blocking; call from a thread inside a loop)."""
    ensure_sqlite_dir(url)
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


async def upgrade_async(url: str, revision: str = "head") -> None:
    # env.py runs its own event loop, so it must not run on the caller's loop thread.
    await asyncio.to_thread(upgrade, url, revision)


async def downgrade_async(url: str, revision: str) -> None:
    await asyncio.to_thread(downgrade, url, revision)
