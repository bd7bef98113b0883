"""The scheduler's jobs and the record they leave in Postgres (table job_runs)."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from typing import Any

from ichrisbirch import db
from ichrisbirch.settings import PostgresSettings

HEARTBEAT = "heartbeat"
PURGE = "purge-completed-tasks"


RUNNER = f"{socket.gethostname()}:{os.getpid()}"  # which scheduler ran a job: its container and process


def record_run(pg: PostgresSettings, job: str) -> None:
    with db.connect(pg) as connection:
        connection.execute("INSERT INTO job_runs (job, runner) VALUES (%s, %s)", (job, RUNNER))


def last_heartbeat(pg: PostgresSettings) -> dict[str, Any]:
    """The latest heartbeat, its age in seconds, and how many were recorded."""
    with db.connect(pg) as connection:
        row = connection.execute(
            "SELECT max(ran_at) AS last, count(*) AS runs FROM job_runs WHERE job = %s", (HEARTBEAT,)
        ).fetchone()
    assert row is not None
    last = row["last"]
    age = (datetime.now(UTC) - last).total_seconds() if isinstance(last, datetime) else None
    return {
        "last_heartbeat": last.isoformat() if isinstance(last, datetime) else None,
        "age_seconds": age,
        "runs": row["runs"],
    }


def purge_completed_tasks(pg: PostgresSettings, older_than_days: int = 30) -> int:
    """The daily job: drop tasks completed long ago and job runs older than a week."""
    with db.connect(pg) as connection:
        purged = connection.execute(
            "DELETE FROM tasks WHERE completed AND completed_at < now() - make_interval(days => %s)", (older_than_days,)
        ).rowcount
        connection.execute("DELETE FROM job_runs WHERE ran_at < now() - interval '7 days'")
    record_run(pg, PURGE)
    return purged
