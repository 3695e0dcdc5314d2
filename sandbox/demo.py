"""The demo workspace `make run` starts with: four people with different access, four
projects, tasks with due dates and about fifty documents, so that the same question shows
different answers to different people.

Who may see what (subs are the dev identity provider's ``auth0|<handle>``):

* Apollo (the mobile app launch): alice owns it, bob edits, carol views.
* Apollo Board (budget and vendor decisions about Apollo): alice only.
* Borealis (the data platform migration): bob owns it, carol and dave view.
* Cassini (customer onboarding): carol owns it, dave edits.

"What is blocking Apollo's launch?" therefore reads the board's notes for alice, the
project's status reports for bob and carol, and nothing for dave.

Seeding is idempotent: a workspace that has any project is left as it is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from authz.ids import fga_user, fga_workspace
from authz.ports import TupleKey
from bot.projects.models import Project, ProjectMember, Task
from bot.storage.db import Database
from bot.storage.outbox import Outbox, stage

TEAM = "T0SANDBOX"


@dataclass(frozen=True)
class DemoProject:
    id: str
    name: str
    members: Sequence[tuple[str, str]]  # (handle, relation)
    tasks: Sequence[tuple[str, str | None, int, str]]  # (title, assignee, due in days, status)
    documents: Sequence[tuple[str, str]]  # (file name, Markdown)


def _status(week: int, done: str, blocker: str, next_step: str) -> str:
    return (
        f"# Apollo status, week {week}\n\n## Done\n\n{done}\n\n"
        f"## Blockers\n\n{blocker}\n\n## Next\n\n{next_step}\n"
    )


def _apollo() -> DemoProject:
    weeks = [
        (
            44,
            "Beta build 0.9 shipped to 200 testers.",
            "Crash on launch with the payment SDK 4.2 on Android 12.",
            "Pin the payment SDK to 4.1 until the vendor fixes 4.2.",
        ),
        (
            45,
            "Crash fixed by pinning the payment SDK to 4.1.",
            "Push notifications arrive twice on iOS.",
            "Deduplicate notification ids on the server.",
        ),
        (
            46,
            "Duplicate push notifications fixed.",
            "Accessibility audit found 14 issues in checkout.",
            "Fix the checkout contrast and screen-reader labels.",
        ),
        (
            47,
            "Accessibility issues down to 2.",
            "The App Store review is pending: Apple asked for a demo account.",
            "Send Apple the demo account and the review notes.",
        ),
        (
            48,
            "Demo account sent to Apple.",
            "The launch is blocked by the App Store review, still pending, and by the "
            "missing Spanish translation of the onboarding screens.",
            "Translate onboarding (carol's team), answer Apple within a day.",
        ),
        (
            49,
            "Spanish onboarding translated.",
            "The launch is still blocked by the App Store review.",
            "Plan the launch for the first Tuesday after approval.",
        ),
    ]
    docs: list[tuple[str, str]] = [
        (f"status-week-{w}.md", _status(w, done, blocker, nxt)) for w, done, blocker, nxt in weeks
    ]
    meetings = [
        ("kickoff", "Scope agreed: iOS and Android together, payments in v1, chat in v2."),
        ("design-review", "The checkout flow goes from five screens to three."),
        ("beta-retro", "Testers loved offline mode; the sign-up form is too long."),
        ("risk-review", "Top risks: App Store review time, payment SDK stability."),
        ("launch-planning", "Launch day checklist owned by bob; marketing ready two days before."),
        ("support-handover", "Support gets a runbook and a shared channel, #apollo-support."),
    ]
    docs += [
        (
            f"meeting-{slug}.md",
            f"# Apollo meeting notes: {slug.replace('-', ' ')}\n\n## Decisions\n\n{text}\n",
        )
        for slug, text in meetings
    ]
    specs = [
        ("payments", "Card payments through the vendor SDK; Apple Pay and Google Pay in v1."),
        ("offline-mode", "The last 50 orders are cached; changes sync when back online."),
        ("notifications", "Order updates as push notifications, at most one per order step."),
        ("onboarding", "Three screens: welcome, sign up, permissions; English and Spanish."),
    ]
    docs += [
        (f"spec-{slug}.md", f"# Apollo specification: {slug}\n\n## Behaviour\n\n{text}\n")
        for slug, text in specs
    ]
    docs.append(
        (
            "launch-checklist.md",
            "# Apollo launch checklist\n\n## Before launch\n\n- App Store approval\n"
            "- Play Store approval\n- Spanish onboarding\n- Support runbook\n\n"
            "## Launch day\n\n- Announce in #general\n- Watch crash reports for 48 hours\n",
        )
    )
    return DemoProject(
        id="demo-apollo",
        name="Apollo",
        members=[("alice", "owner"), ("bob", "editor"), ("carol", "viewer")],
        tasks=[
            ("Answer Apple's review questions", "bob", 1, "open"),
            ("Translate onboarding to Spanish", "carol", -2, "done"),
            ("Write the support runbook", "bob", 5, "open"),
            ("Plan launch announcement", "alice", 9, "open"),
            ("Fix the last two accessibility issues", "bob", -1, "open"),
        ],
        documents=docs,
    )


def _apollo_board() -> DemoProject:
    notes = [
        (
            "board-notes-november.md",
            "# Apollo board notes, November\n\n## Blockers\n\nWhat blocks Apollo's launch is "
            "the unsigned payment vendor contract: legal has not approved the liability clause, "
            "and the vendor will not enable live payments before signature.\n",
        ),
        (
            "budget-2027.md",
            "# Apollo budget 2027\n\n## Figures\n\nApollo's budget for 2027 is 480k EUR; "
            "marketing takes 120k, the vendor fees 90k.\n",
        ),
        (
            "vendor-contract.md",
            "# Payment vendor contract\n\n## Status\n\nThe contract is with legal; the "
            "liability clause caps damages at 50k EUR, legal asks for 250k.\n",
        ),
    ]
    return DemoProject(
        id="demo-apollo-board",
        name="Apollo Board",
        members=[("alice", "owner")],
        tasks=[("Get legal sign-off on the vendor contract", "alice", 3, "open")],
        documents=notes,
    )


def _borealis() -> DemoProject:
    topics = [
        ("plan", "Move the reporting database from the old cluster to the managed service."),
        ("timeline", "Dry run in week 50, cut-over on a Saturday in week 2."),
        ("risks", "Reports older than 2019 use a date format the new service rejects."),
        ("data-quality", "Row counts match for 41 of 43 tables; two tables lose time zones."),
        ("runbook", "Freeze writes, snapshot, restore, verify counts, switch the DNS name."),
        ("costs", "The managed service costs 30 percent less from month three."),
        ("access", "Analysts keep read-only access; the ETL user gets write access."),
        ("blockers", "Borealis is blocked by the time zone loss in two tables."),
        ("decisions", "Keep the old cluster read-only for 30 days after the cut-over."),
        ("monitoring", "Dashboards for replication lag and failed queries."),
        ("testing", "Replay one week of production queries against the new service."),
        ("rollback", "Switch the DNS name back; writes since cut-over are replayed."),
        ("stakeholders", "Finance reads the monthly reports; sales reads the daily ones."),
        ("glossary", "Cut-over: the moment the DNS name points at the new service."),
        ("faq", "Reports keep their links; bookmarks to the old cluster redirect."),
    ]
    return DemoProject(
        id="demo-borealis",
        name="Borealis",
        members=[("bob", "owner"), ("carol", "viewer"), ("dave", "viewer")],
        tasks=[
            ("Fix the time zone loss in two tables", "bob", 2, "open"),
            ("Dry run of the migration", "bob", 7, "open"),
            ("Replay a week of queries", "dave", 10, "open"),
        ],
        documents=[
            (f"borealis-{slug}.md", f"# Borealis {slug.replace('-', ' ')}\n\n## Notes\n\n{text}\n")
            for slug, text in topics
        ],
    )


def _cassini() -> DemoProject:
    topics = [
        ("goals", "New customers are live within five days of signing."),
        ("checklist", "Kick-off call, data import, training, go-live review."),
        ("templates", "Welcome email, import guide, training agenda."),
        ("metrics", "Median time to go-live is 8 days; the goal is 5."),
        ("blockers", "Cassini is blocked by slow data imports for customers with CSV files."),
        ("importer", "A new CSV importer validates files before upload."),
        ("training", "Two one-hour sessions instead of one three-hour session."),
        ("feedback", "Customers ask for a sandbox account before go-live."),
        ("staffing", "Two onboarding managers, dave covers Fridays."),
        ("faq", "Answers to the twenty most common onboarding questions."),
        ("playbook", "What to do when an import fails: check encoding, then delimiters."),
        ("retrospective", "Three customers went live in four days after the new importer."),
        ("handover", "After go-live the account manager owns the customer."),
        ("tools", "Onboarding runs on the CRM's project board."),
        ("pricing", "Onboarding is free for annual plans."),
    ]
    return DemoProject(
        id="demo-cassini",
        name="Cassini",
        members=[("carol", "owner"), ("dave", "editor")],
        tasks=[
            ("Ship the CSV importer validation", "dave", 4, "open"),
            ("Shorten the training sessions", "carol", -3, "done"),
            ("Offer sandbox accounts before go-live", "carol", 12, "open"),
        ],
        documents=[
            (f"cassini-{slug}.md", f"# Cassini {slug}\n\n## Notes\n\n{text}\n")
            for slug, text in topics
        ],
    )


def demo_projects() -> list[DemoProject]:
    return [_apollo(), _apollo_board(), _borealis(), _cassini()]


Ingest = Callable[[Project, Sequence[Path]], Awaitable[object]]


async def seed_demo(
    db: Database,
    outbox: Outbox,
    ingest: Ingest,
    *,
    folder: Path,
    today: date | None = None,
    projects: Sequence[DemoProject] | None = None,
) -> bool:
    """Create the demo workspace (or ``projects``) unless the sandbox team has projects;
    True if seeded. The documents are written to ``folder`` (their source, as citations
    show it) and ingested from there."""
    async with db.session() as session:
        existing = await session.scalar(
            select(func.count()).select_from(Project).where(Project.team_id == TEAM)
        )
    if existing:
        return False
    now = datetime.now(UTC)
    day = today or now.date()
    projects = demo_projects() if projects is None else projects
    async with db.session() as session:
        for demo in projects:
            session.add(
                Project(
                    id=demo.id,
                    team_id=TEAM,
                    name=demo.name,
                    name_key=demo.name.casefold(),
                    created_by=f"auth0|{demo.members[0][0]}",
                    created_at=now,
                )
            )
            await session.flush()
            tuples = [
                TupleKey(
                    user=fga_workspace(TEAM), relation="workspace", object=f"project:{demo.id}"
                )
            ]
            for handle, relation in demo.members:
                sub = f"auth0|{handle}"
                session.add(
                    ProjectMember(
                        project_id=demo.id,
                        sub=sub,
                        relation=relation,
                        granted_by=f"auth0|{demo.members[0][0]}",
                        granted_at=now,
                    )
                )
                tuples.append(
                    TupleKey(user=fga_user(sub), relation=relation, object=f"project:{demo.id}")
                )
            for title, assignee, due_in, status in demo.tasks:
                task = Task(
                    project_id=demo.id,
                    title=title,
                    assignee_sub=f"auth0|{assignee}" if assignee else None,
                    status=status,
                    due=day + timedelta(days=due_in),
                    created_by=f"auth0|{demo.members[0][0]}",
                    created_at=now,
                    updated_at=now,
                )
                session.add(task)
                await session.flush()
                tuples.append(
                    TupleKey(
                        user=f"project:{demo.id}", relation="project", object=f"task:{task.id}"
                    )
                )
                if task.assignee_sub:
                    tuples.append(
                        TupleKey(
                            user=fga_user(task.assignee_sub),
                            relation="assignee",
                            object=f"task:{task.id}",
                        )
                    )
            stage(session, writes=tuples)
    await outbox.drain()
    for demo in projects:
        directory = folder / demo.name.replace(" ", "-").lower()
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for file_name, text in demo.documents:
            path = directory / file_name
            path.write_text(text, encoding="utf-8")
            paths.append(path)
        async with db.session() as session:
            project = await session.get(Project, demo.id)
        assert project is not None
        await ingest(project, paths)
    return True
