from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

import pytest
from ichrisbirch import db, healthcheck, heartbeat
from ichrisbirch.settings import SchedulerSettings
from ichrisbirch.wsgi_scheduler import build


def own_runs(settings: SchedulerSettings) -> int:
    """Heartbeats recorded by this process (a live scheduler may record its own meanwhile)."""
    with db.connect(settings) as connection:
        row = connection.execute(
            "SELECT count(*) AS n FROM job_runs WHERE job = %s AND runner = %s", (heartbeat.HEARTBEAT, heartbeat.RUNNER)
        ).fetchone()
    assert row is not None
    return int(row["n"])


def test_heartbeat_is_recorded_and_healthy(scheduler_settings: SchedulerSettings) -> None:
    before = own_runs(scheduler_settings)
    heartbeat.record_run(scheduler_settings, heartbeat.HEARTBEAT)
    assert own_runs(scheduler_settings) == before + 1
    assert heartbeat.last_heartbeat(scheduler_settings)["age_seconds"] < 5
    healthy, reason = healthcheck.scheduler_ok()
    assert healthy, reason


def test_a_stale_heartbeat_is_unhealthy(monkeypatch: pytest.MonkeyPatch, scheduler_settings: SchedulerSettings) -> None:
    interval = scheduler_settings.scheduler_heartbeat_seconds
    stale = {"last_heartbeat": "then", "age_seconds": interval * 10.0 + 60, "runs": 1}
    monkeypatch.setattr(heartbeat, "last_heartbeat", lambda _settings: stale)
    healthy, reason = healthcheck.scheduler_ok()
    assert not healthy and "stale" in reason
    monkeypatch.setattr(heartbeat, "last_heartbeat", lambda _settings: {**stale, "age_seconds": None})
    assert healthcheck.scheduler_ok() == (False, "no heartbeat recorded yet")


def test_daily_job_purges_only_old_completed_tasks(scheduler_settings: SchedulerSettings) -> None:
    marker = uuid.uuid4().hex[:8]
    with db.connect(scheduler_settings) as connection:
        for title, age in [(f"old {marker}", "40 days"), (f"recent {marker}", "1 day")]:
            connection.execute(
                "INSERT INTO tasks (title, completed, completed_at) VALUES (%s, TRUE, now() - %s::interval)",
                (title, age),
            )
    heartbeat.purge_completed_tasks(scheduler_settings)
    with db.connect(scheduler_settings) as connection:
        left = {
            row["title"] for row in connection.execute("SELECT title FROM tasks WHERE title LIKE %s", (f"% {marker}",))
        }
    assert left == {f"recent {marker}"}


def test_scheduler_runs_a_heartbeat_at_the_configured_interval_and_a_daily_job(
    scheduler_settings: SchedulerSettings,
) -> None:
    jobs = {job.id: job for job in build(scheduler_settings).get_jobs()}
    assert jobs[heartbeat.HEARTBEAT].trigger.interval.total_seconds() == scheduler_settings.scheduler_heartbeat_seconds
    assert str(jobs[heartbeat.PURGE].trigger.fields[5]) == "3"  # hour field of the daily cron


def test_healthcheck_command_rejects_an_unknown_service(capsys: pytest.CaptureFixture[str]) -> None:
    assert healthcheck.main(["worker"]) == 1
    assert "unknown service" in capsys.readouterr().out


def runners_since(settings: SchedulerSettings, since: datetime, runners: set[str]) -> list[str]:
    with db.connect(settings) as connection:
        rows = connection.execute(
            "SELECT runner FROM job_runs WHERE job = %s AND ran_at >= %s ORDER BY ran_at", (heartbeat.HEARTBEAT, since)
        ).fetchall()
    return [str(row["runner"]) for row in rows if row["runner"] in runners]


def test_two_schedulers_one_runs_jobs_and_the_other_takes_over(scheduler_settings: SchedulerSettings) -> None:
    lock_id = 0x7000 + uuid.uuid4().int % 0x0FFF  # its own lock: the stack's scheduler may be running beside us
    env = {**os.environ, "SCHEDULER_HEARTBEAT_SECONDS": "1", "SCHEDULER_LOCK_ID": str(lock_id)}
    with db.connect(scheduler_settings) as connection:
        started = connection.execute("SELECT now() AS now").fetchone()["now"]  # type: ignore[index]
    command = [sys.executable, "-m", "ichrisbirch.wsgi_scheduler"]
    processes = [subprocess.Popen(command, env=env) for _ in range(2)]
    try:
        runners = {f"{socket.gethostname()}:{p.pid}" for p in processes}
        deadline = time.monotonic() + 20
        while len(runners_since(scheduler_settings, started, runners)) < 4 and time.monotonic() < deadline:
            time.sleep(0.5)
        first = runners_since(scheduler_settings, started, runners)
        assert len(first) >= 4 and len(set(first)) == 1, f"exactly one scheduler runs jobs: {first}"
        leader = next(p for p in processes if f"{socket.gethostname()}:{p.pid}" == first[0])
        standby = next(p for p in processes if p is not leader)
        leader.send_signal(signal.SIGTERM)
        assert leader.wait(timeout=15) == 0
        handover = datetime.now(UTC)
        standby_runner = f"{socket.gethostname()}:{standby.pid}"
        while (
            standby_runner not in runners_since(scheduler_settings, handover, runners) and time.monotonic() < deadline
        ):
            time.sleep(0.5)
        assert standby_runner in runners_since(scheduler_settings, started, runners), "the standby took over"
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=15)
