"""The scheduler: `python -m ichrisbirch.wsgi_scheduler`. Run exactly one per deployment."""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType

from apscheduler.schedulers.blocking import BlockingScheduler

from ichrisbirch import heartbeat, logs
from ichrisbirch.settings import SchedulerSettings, load

log = logging.getLogger("ichrisbirch.scheduler")


def build(settings: SchedulerSettings) -> BlockingScheduler:
    scheduler = BlockingScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
    scheduler.add_job(
        heartbeat.record_run,
        "interval",
        args=(settings, heartbeat.HEARTBEAT),
        seconds=settings.scheduler_heartbeat_seconds,
        id=heartbeat.HEARTBEAT,
    )
    scheduler.add_job(heartbeat.purge_completed_tasks, "cron", args=(settings,), hour=3, id=heartbeat.PURGE)
    return scheduler


def main() -> int:
    settings = load(SchedulerSettings, "scheduler")
    logs.configure(settings.log_level)
    scheduler = build(settings)
    heartbeat.record_run(settings, heartbeat.HEARTBEAT)  # healthy from the first second, not after one interval

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: shutting down", signum)
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    log.info("scheduler started: heartbeat every %ds", settings.scheduler_heartbeat_seconds)
    scheduler.start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
