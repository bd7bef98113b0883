from __future__ import annotations

import uuid

import pytest
from ichrisbirch import db, healthcheck, heartbeat
from ichrisbirch.settings import SchedulerSettings
from ichrisbirch.wsgi_scheduler import build


def test_heartbeat_is_recorded_and_healthy(scheduler_settings: SchedulerSettings) -> None:
    before = heartbeat.last_heartbeat(scheduler_settings)["runs"]
    heartbeat.record_run(scheduler_settings, heartbeat.HEARTBEAT)
    after = heartbeat.last_heartbeat(scheduler_settings)
    assert after["runs"] == before + 1
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
