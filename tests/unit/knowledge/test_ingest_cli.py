"""``pmbot ingest`` end to end, through the real CLI function, on SQLite and PostgreSQL:
documents and chunks stored, their tuple delivered, bad files skipped with a reason,
unchanged files skipped, re-ingestion replacing chunks in one transaction."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from authz.factory import AuthzConfig, open_authorizer
from authz.ports import Consistency, TupleKey
from bot.cli import main
from bot.knowledge import ingest as ingest_module
from bot.knowledge.ingest import Ingester, document_object, find_project
from bot.projects.models import Chunk, Document
from bot.storage.db import Database
from bot.storage.models import FgaOutbox
from bot.storage.outbox import Outbox
from tests.unit.knowledge.helpers import create_project, minimal_pdf

HIGH = Consistency.HIGHER_CONSISTENCY

PLAN = """# Apollo plan

The launch is planned for March.

## Risks

The vendor contract is blocking the launch.

## Budget

""" + "\n\n".join(f"Budget line {i}: spending on item {i} is approved." for i in range(40))


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> str:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("CHUNK_CHARS", "400")
    monkeypatch.setenv("CHUNK_OVERLAP_CHARS", "80")
    return database_url


async def documents(db: Database) -> dict[str, Document]:
    async with db.session() as session:
        return {Path(d.source).name: d for d in await session.scalars(select(Document))}


async def chunks_of(db: Database, document_id: str) -> list[Chunk]:
    async with db.session() as session:
        rows = await session.scalars(
            select(Chunk).where(Chunk.document_id == document_id).order_by(Chunk.ordinal)
        )
        return list(rows)


def write_files(folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "plan.md").write_text(PLAN)
    (folder / "notes.txt").write_text("Standup notes.\n\nThe launch review moved to Friday.\n")
    (folder / "spec.pdf").write_bytes(minimal_pdf(["The launch checklist is signed."]))
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrash")
    (folder / "image.txt").write_bytes(bytes(range(256)) * 4)
    (folder / "empty.md").write_text("")


async def test_ingest_end_to_end(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = Database(env)
    try:
        project_id = await create_project(db, "Apollo")
        folder = tmp_path / "docs"
        write_files(folder)
        paths = [str(folder / n) for n in ("plan.md", "notes.txt", "spec.pdf", "broken.pdf")]
        paths += [str(folder / "image.txt"), str(folder / "empty.md"), str(tmp_path / "nope.md")]

        code = await _run(["ingest", *paths, "--project", "apollo"])
        out = capsys.readouterr()
        assert code == 1, out
        assert "Traceback" not in out.out + out.err
        assert "files read: 3" in out.out
        assert "documents:  3 new, 0 updated, 0 unchanged" in out.out
        assert "skipped:    4" in out.out
        assert "broken.pdf: PDF could not be parsed" in out.out
        assert "image.txt: binary file" in out.out
        assert "empty.md: no text (empty file)" in out.out
        assert "nope.md: no such file or directory" in out.out

        stored = await documents(db)
        assert sorted(stored) == ["notes.txt", "plan.md", "spec.pdf"]
        assert stored["plan.md"].title == "Apollo plan"
        assert stored["spec.pdf"].title == "Launch Spec"
        assert stored["notes.txt"].title == "notes"
        assert {d.project_id for d in stored.values()} == {project_id}

        plan_chunks = await chunks_of(db, stored["plan.md"].id)
        assert len(plan_chunks) > 3
        assert [c.heading for c in plan_chunks[:2]] == ["Apollo plan", "Apollo plan > Risks"]
        assert all(c.heading == "Apollo plan > Budget" for c in plan_chunks[2:])
        assert all(len(c.text) <= 400 for c in plan_chunks)
        pdf_chunks = await chunks_of(db, stored["spec.pdf"].id)
        assert [(c.heading, c.text) for c in pdf_chunks] == [
            ("page 1", "The launch checklist is signed.")
        ]

        # The tuples went through the outbox and reached the engine.
        async with db.session() as session:
            pending = await session.scalar(
                select(func.count()).select_from(FgaOutbox).where(FgaOutbox.done_at.is_(None))
            )
        assert pending == 0
        async with open_authorizer(AuthzConfig(), engine=db.engine) as authz:
            await authz.write([TupleKey("user:alice", "viewer", f"project:{project_id}")])
            for doc in stored.values():
                assert await authz.check(
                    "user:alice", "can_view", document_object(doc.id), consistency=HIGH
                )
                assert not await authz.check(
                    "user:bob", "can_view", document_object(doc.id), consistency=HIGH
                )

        # The same files again: unchanged, nothing written; exit 0 when nothing is skipped.
        good = paths[:3]
        assert await _run(["ingest", *good, "--project", "APOLLO"]) == 0
        out = capsys.readouterr()
        assert "documents:  0 new, 0 updated, 3 unchanged" in out.out
        assert "chunks:     0 written" in out.out
        assert (await documents(db))["plan.md"].content_hash == stored["plan.md"].content_hash

        # A changed file replaces its chunks; a directory is expanded to its files.
        (folder / "plan.md").write_text(PLAN.replace("March", "April"))
        for name in ("broken.pdf", "image.txt", "empty.md"):
            (folder / name).unlink()
        assert await _run(["ingest", str(folder), "--project", "Apollo"]) == 0
        out = capsys.readouterr()
        assert "documents:  0 new, 1 updated, 2 unchanged" in out.out
        after = await documents(db)
        assert after["plan.md"].id == stored["plan.md"].id
        new_chunks = await chunks_of(db, after["plan.md"].id)
        assert "April" in new_chunks[0].text
        assert not any("March" in c.text for c in new_chunks)
        async with db.session() as session:
            total = await session.scalar(select(func.count()).select_from(Chunk))
        assert total == len(new_chunks) + 2  # notes.txt and spec.pdf: one chunk each
    finally:
        await db.dispose()


async def _run(argv: list[str]) -> int:
    """``main`` runs its own event loop: in a thread, away from the test's loop."""
    import asyncio

    return await asyncio.to_thread(main, argv)


async def test_unknown_project_is_a_clear_error(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = Database(env)
    try:
        await create_project(db, "Apollo")
        await create_project(db, "Zeus", team_id="T0OTHER")
    finally:
        await db.dispose()
    (tmp_path / "a.md").write_text("# A\n\ntext\n")
    assert await _run(["ingest", str(tmp_path / "a.md"), "--project", "Hermes"]) == 2
    err = capsys.readouterr().err
    assert "no project named 'Hermes' in workspace T0SANDBOX (its projects: Apollo)" in err
    # Zeus exists, but in another workspace.
    assert await _run(["ingest", str(tmp_path / "a.md"), "--project", "Zeus"]) == 2
    other = ["--project", "Zeus", "--team", "T0OTHER"]
    assert await _run(["ingest", str(tmp_path / "a.md"), *other]) == 0


def test_production_requires_the_team(
    monkeypatch: pytest.MonkeyPatch, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    for name, value in {
        "PMBOT_MODE": "production",
        "PMBOT_PUBLIC_URL": "https://pmbot.example.com",
        "SLACK_BOT_TOKEN": "xoxb-1",
        "SLACK_SIGNING_SECRET": "s",
        "AUTH0_DOMAIN": "acme.eu.auth0.com",
        "AUTH0_CLIENT_ID": "c",
        "AUTH0_CLIENT_SECRET": "s",
        "TOKEN_ENCRYPTION_KEYS": "k1:" + "A" * 43 + "=",
    }.items():
        monkeypatch.setenv(name, value)
    assert main(["ingest", "x.md", "--project", "Apollo"]) == 2
    assert "--team TEAM_ID is required in production mode" in capsys.readouterr().err


async def test_a_failed_replacement_leaves_the_previous_version_whole(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(database_url)
    try:
        await create_project(db, "Apollo")
        project = await find_project(db, team_id="T0SANDBOX", name="apollo")
        async with open_authorizer(AuthzConfig(), engine=db.engine) as authz:
            ingester = Ingester(
                db=db, outbox=Outbox(db=db, authorizer=authz), chunk_chars=300, overlap_chars=50
            )
            path = tmp_path / "plan.md"
            path.write_text(PLAN)
            first = await ingester.ingest(project, [path])
            assert (first.new, first.chunks > 3) == (1, True)
            before = await documents(db)
            before_chunks = await chunks_of(db, before["plan.md"].id)

            real_insert = ingest_module.insert

            def failing_insert(table: object) -> object:
                raise IntegrityError("INSERT INTO chunks", {}, Exception("simulated"))

            monkeypatch.setattr(ingest_module, "insert", failing_insert)
            path.write_text(PLAN.replace("March", "April"))
            second = await ingester.ingest(project, [path])
            assert (second.updated, len(second.skipped)) == (0, 1)
            assert "nothing stored" in second.skipped[0].reason
            after = await documents(db)
            assert after["plan.md"].content_hash == before["plan.md"].content_hash
            assert [c.text for c in await chunks_of(db, after["plan.md"].id)] == [
                c.text for c in before_chunks
            ]

            monkeypatch.setattr(ingest_module, "insert", real_insert)
            third = await ingester.ingest(project, [path])
            assert (third.updated, third.skipped) == (1, [])
    finally:
        await db.dispose()


async def test_identical_chunks_are_stored_once_per_document(
    sqlite_url: str, tmp_path: Path
) -> None:
    db = Database(sqlite_url)
    try:
        await create_project(db, "Apollo")
        project = await find_project(db, team_id="T0SANDBOX", name="Apollo")
        async with open_authorizer(AuthzConfig(), engine=db.engine) as authz:
            ingester = Ingester(db=db, outbox=Outbox(db=db, authorizer=authz))
            text = "# Notes\n\nSame paragraph.\n\n# Notes\n\nSame paragraph.\n"
            (tmp_path / "a.md").write_text(text)
            (tmp_path / "b.md").write_text(text)
            report = await ingester.ingest(project, [tmp_path / "a.md", tmp_path / "b.md"])
            # Within a document the repeated section is stored once; b.md has its own copy.
            assert (report.new, report.chunks) == (2, 2)
    finally:
        await db.dispose()
