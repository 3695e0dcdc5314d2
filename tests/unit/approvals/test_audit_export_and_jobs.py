"""``pmbot audit export`` and the scheduler's approval jobs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.audit import AuditKind, AuditLog
from bot.cli import main
from bot.storage.db import Database


async def test_audit_export_writes_json_lines_since_a_date(
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db = Database(sqlite_url)
    log = AuditLog(db=db)
    old = datetime(2020, 1, 1, tzinfo=UTC)
    for n, at in enumerate([old, datetime.now(UTC) - timedelta(minutes=1)]):
        await log.append(
            team_id="T0SANDBOX",
            kind=AuditKind.APPROVAL,
            action="delete_project",
            outcome="requested" if n == 0 else "executed",
            actor_slack_id="U0BOB",
            project_id="p1",
            subject="a" * 26,
            arguments={"project_id": "p1"},
            at=at,
        )
    await db.dispose()
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    out = tmp_path / "audit.jsonl"
    assert await _run(["audit", "export", "-o", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["outcome"] for e in lines] == ["requested", "executed"]
    assert lines[0]["arguments"] == {"project_id": "p1"} and lines[0]["kind"] == "approval"
    assert await _run(["audit", "export", "--since", "2021-06-01"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["outcome"] for e in printed] == ["executed"]


async def _run(argv: list[str]) -> int:
    # The command runs its own event loop (as from a shell): off this test's loop.
    import asyncio

    return await asyncio.to_thread(main, argv)


def test_bad_since_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["audit", "export", "--since", "yesterday"])
    assert exited.value.code == 2
    assert "not a date" in capsys.readouterr().err


async def test_scheduler_polls_and_sweeps_approvals(sqlite_url: str) -> None:
    from bot.scheduler import build_scheduler, poll_approvals, sweep_approvals
    from bot.settings import load_settings
    from bot.wiring import open_deps

    settings = load_settings(
        DATABASE_URL=sqlite_url, APPROVAL_POLL_SECONDS=3, APPROVAL_SWEEP_SECONDS=45
    )
    async with open_deps(settings) as deps:
        scheduler = build_scheduler(deps)
        poll = scheduler.get_job("poll_approvals")
        sweep = scheduler.get_job("sweep_approvals")
        assert poll is not None and poll.func is poll_approvals
        assert sweep is not None and sweep.func is sweep_approvals
        assert poll.trigger.interval == timedelta(seconds=3)
        assert sweep.trigger.interval == timedelta(seconds=45)
        # With nothing to do, both jobs run and change nothing.
        await poll_approvals(deps)
        await sweep_approvals(deps)
