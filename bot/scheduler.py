"""Scheduled jobs (APScheduler on the bot's event loop).

Jobs keep their state in the database, so a restart resumes where it stopped and several
replicas can run the same job safely.
"""

from __future__ import annotations

import logging

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.wiring import Deps

log = logging.getLogger(__name__)


async def sweep_processed_events(deps: Deps) -> None:
    removed = await deps.dedup.sweep()
    if removed:
        log.info("forgot %d processed Slack deliveries past their retry window", removed)


async def sweep_link_requests(deps: Deps) -> None:
    removed = await deps.identity.sweep_link_requests()
    if removed:
        log.info("deleted %d expired account-link requests", removed)


async def drain_fga_outbox(deps: Deps) -> None:
    delivered = await deps.outbox.drain()
    if delivered:
        log.info("delivered %d pending authorization changes", delivered)


async def sweep_fga_outbox(deps: Deps) -> None:
    await deps.outbox.sweep()


async def sweep_connect_requests(deps: Deps) -> None:
    removed = await deps.connect.sweep()
    if removed:
        log.info("deleted %d expired account-connect requests", removed)


async def poll_approvals(deps: Deps) -> None:
    """One polling round of the CIBA requests that are due (their interval honoured), then
    the Slack messages of whatever changed."""
    polled = await deps.approvals.poll_round()
    await deps.approvals.render_pending()
    if polled:
        log.debug("polled %d CIBA requests", polled)


async def sweep_approvals(deps: Deps) -> None:
    """Deadlines, the half-way reminders and executions whose lease ran out."""
    swept = await deps.approvals.sweep()
    await deps.approvals.render_pending()
    if swept.expired or swept.reminders or swept.resumed:
        log.info(
            "approvals: %d expired, %d reminders due, %d executions resumed",
            swept.expired,
            swept.reminders,
            swept.resumed,
        )


def build_scheduler(deps: Deps) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(job_defaults={"coalesce": True, "max_instances": 1})
    scheduler.add_job(
        sweep_processed_events,
        "interval",
        minutes=10,
        args=[deps],
        id="sweep_processed_events",
        replace_existing=True,
    )
    scheduler.add_job(
        sweep_link_requests,
        "interval",
        minutes=15,
        args=[deps],
        id="sweep_link_requests",
        replace_existing=True,
    )
    scheduler.add_job(
        drain_fga_outbox,
        "interval",
        seconds=5,
        args=[deps],
        id="drain_fga_outbox",
        replace_existing=True,
    )
    scheduler.add_job(
        sweep_fga_outbox,
        "interval",
        hours=6,
        args=[deps],
        id="sweep_fga_outbox",
        replace_existing=True,
    )
    scheduler.add_job(
        sweep_connect_requests,
        "interval",
        minutes=15,
        args=[deps],
        id="sweep_connect_requests",
        replace_existing=True,
    )
    # Approvals: their state is in the database, not in a job store; any replica may run
    # these (conditional updates and SKIP LOCKED keep them from doing anything twice).
    scheduler.add_job(
        poll_approvals,
        "interval",
        seconds=deps.settings.approval_poll_seconds,
        args=[deps],
        id="poll_approvals",
        replace_existing=True,
    )
    scheduler.add_job(
        sweep_approvals,
        "interval",
        seconds=deps.settings.approval_sweep_seconds,
        args=[deps],
        id="sweep_approvals",
        replace_existing=True,
    )
    return scheduler
