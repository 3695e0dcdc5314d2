"""Tool calls per request of the agent, over scripted scenarios.

Starts pmbot (the real web app, Bolt app and agent loop, on a temporary SQLite database)
against the Slack sandbox, the dev identity provider and a fake OpenAI-compatible model
that plays a script per request (the tool calls a capable model makes for it), sends each
realistic request as a DM, and counts the tool calls the loop ran for it (from the audit
log). Prints one line per request and the median; the last line is one JSON object.

    python bench/agent.py
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bot.vault.ports import Connection  # noqa: E402
from tests.fakes.agent import (  # noqa: E402
    MemoryCalendar,
    RecordingApprovals,
    SandboxSlackAsUser,
    SlackVault,
    StaticConnectLinks,
)
from tests.fakes.openai import ScriptedModel, Turn, call, openai_server, say  # noqa: E402
from tests.support import running_bot  # noqa: E402


def scenarios() -> list[tuple[str, list[Turn]]]:
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    start = f"{tomorrow}T15:00:00"
    return [
        ("what are my projects?", [call("list_projects"), say("You own Apollo.")]),
        ("list my tasks in Apollo", [call("list_tasks", {"project": "Apollo"}), say("One task.")]),
        ("how is Apollo doing?", [call("project_status", {"project": "Apollo"}), say("On track.")]),
        (
            "add a task to Apollo: write the launch notes, due friday",
            [
                call(
                    "create_task",
                    {"project": "Apollo", "title": "Write the launch notes", "due": "friday"},
                ),
                say("Added."),
            ],
        ),
        (
            "mark task 1 done",
            [call("update_task", {"task_id": 1, "status": "done"}), say("Done.")],
        ),
        (
            "what's on my calendar this week?",
            [call("list_my_events", {"when": "week"}), say("Free.")],
        ),
        (
            "schedule a review of Apollo tomorrow at 15:00 with bob",
            [
                call("find_free_slot", {"attendees": ["@bob"], "day": "tomorrow"}),
                call(
                    "schedule_meeting",
                    {"title": "Apollo review", "start": start, "attendees": ["@bob"]},
                ),
                say("Booked."),
            ],
        ),
        (
            'post "Launch moved to Monday" to #apollo',
            [
                call("post_as_me", {"channel": "#apollo", "text": "Launch moved to Monday"}),
                say("Posted."),
            ],
        ),
        (
            "delete the project Apollo",
            [call("delete_project", {"project": "Apollo"}), say("Asked.")],
        ),
        (
            "find what the docs say about the launch and summarise the open tasks",
            [
                call("search_docs", {"query": "launch"}),
                call("list_tasks", {"project": "Apollo"}),
                say("Summary."),
            ],
        ),
    ]


async def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{folder}/bench.sqlite3"
        from bot.storage.migrate import upgrade_async

        await upgrade_async(url)
        async with openai_server() as llm:
            settings = {
                "OPENAI_BASE_URL": llm.base_url,
                "OPENAI_API_KEY": "sk-bench",
                "OPENAI_MODEL": "fake-model",
            }
            async with running_bot(url, **settings) as bot:
                await bot.link("U0ALICE", "alice@example.com")
                await bot.link("U0BOB", "bob@example.com")
                services = bot.deps.agent.services
                slack = SandboxSlackAsUser(bot.sandbox)
                vault = SlackVault(slack=slack)
                vault.connected |= {
                    ("auth0|alice", Connection.GOOGLE_CALENDAR),
                    ("auth0|alice", Connection.SLACK),
                }
                services.vault, services.slack_as_user = vault, slack
                services.calendar, services.connect = MemoryCalendar(), StaticConnectLinks()
                services.approvals = RecordingApprovals()
                asker = await bot.deps.identity.current("T0SANDBOX", "U0ALICE")
                assert asker is not None
                await bot.deps.projects.create_project(asker, "Apollo")
                await bot.deps.projects.add_task(asker, "Apollo", "Write the spec")
                dm = await bot.dm_channel("U0ALICE")
                counts = []
                for request, turns in scenarios():
                    before = len(await services.audit.entries())
                    llm.script = ScriptedModel(*turns)
                    await bot.sandbox.post_message("U0ALICE", dm, request)
                    await bot.ingress.drain()
                    entries = (await services.audit.entries())[before:]
                    counts.append(len(entries))
                    outcomes = ",".join(e.outcome for e in entries)
                    print(f"{len(entries)} tool calls  {outcomes:<40} {request}")
    median = statistics.median(counts)
    print(f"median tool calls per request: {median} over {len(counts)} requests")
    return {
        "requests": len(counts),
        "median_tool_calls": median,
        "max_tool_calls": max(counts),
        "total_tool_calls": sum(counts),
    }


if __name__ == "__main__":
    figures = asyncio.run(main())
    print(json.dumps(figures))
