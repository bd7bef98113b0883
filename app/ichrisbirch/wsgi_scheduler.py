"""The scheduler: `python -m ichrisbirch.wsgi_scheduler`. Run exactly one per deployment."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType

from apscheduler.schedulers.blocking import BlockingScheduler

from ichrisbirch import heartbeat, logs
from ichrisbirch.leadership import Leadership
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


LEADERSHIP_CHECK = "leadership-check"


def main() -> int:
    settings = load(SchedulerSettings, "scheduler")
    logs.configure(settings.log_level)
    stopping = threading.Event()
    scheduler: BlockingScheduler | None = None

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: shutting down", signum)
        stopping.set()
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    leadership = Leadership(settings, settings.scheduler_lock_id)
    if not leadership.acquire(stopping):  # a standby until the leader stops
        return 0

    def keep_leadership() -> None:
        if not leadership.held():
            log.error("lost the scheduler lock (Postgres restarted?): stopping so no second leader runs jobs")
            os._exit(3)  # the restart policy brings this process back as a standby

    scheduler = build(settings)
    scheduler.add_job(keep_leadership, "interval", seconds=2, id=LEADERSHIP_CHECK)
    heartbeat.record_run(settings, heartbeat.HEARTBEAT)  # healthy from the first second, not after one interval
    log.info("scheduler started: heartbeat every %ds", settings.scheduler_heartbeat_seconds)
    try:
        scheduler.start()
    finally:
        leadership.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
