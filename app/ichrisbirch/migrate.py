"""Create or upgrade the schema: `python -m ichrisbirch.migrate`.

Idempotent: each migration runs once, recorded in schema_migrations, under an advisory lock so
two runs at once cannot both apply one. Exits 1 with a clear message when the database cannot
be reached.
"""

from __future__ import annotations

import logging
import sys

import psycopg

from ichrisbirch import db, logs
from ichrisbirch.settings import MigrateSettings, PostgresSettings, load

log = logging.getLogger("ichrisbirch.migrate")

# Append only: a released migration is never edited, a change is a new entry.
MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "tasks",
        """
        CREATE TABLE tasks (
            id BIGSERIAL PRIMARY KEY,
            title TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
            completed BOOLEAN NOT NULL DEFAULT FALSE,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            completed_at TIMESTAMPTZ
        )
        """,
    ),
    (
        2,
        "job runs",
        """
        CREATE TABLE job_runs (
            id BIGSERIAL PRIMARY KEY,
            job TEXT NOT NULL,
            ran_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE INDEX job_runs_job_ran_at ON job_runs (job, ran_at DESC)
        """,
    ),
    (
        3,
        "job runner",
        """
        ALTER TABLE job_runs ADD COLUMN runner TEXT
        """,
    ),
    (
        4,
        "backup runs",
        # Written by the deployment's backup service after each good dump; left out of the dumps.
        """
        CREATE TABLE backup_runs (
            id BIGSERIAL PRIMARY KEY,
            file TEXT NOT NULL,
            bytes BIGINT NOT NULL,
            sha256 TEXT NOT NULL,
            seconds INTEGER NOT NULL,
            finished_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )
        """,
    ),
]
_LOCK_ID = 0x1C5B  # pg_advisory_xact_lock key of this application's migrations


def apply(settings: PostgresSettings) -> list[int]:
    """Apply the pending migrations; return the versions applied now."""
    applied_now = []
    with db.connect(settings) as connection:
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        done = {row["version"] for row in connection.execute("SELECT version FROM schema_migrations")}
        for version, name, sql in MIGRATIONS:
            if version in done:
                continue
            connection.execute(sql)  # type: ignore[arg-type]
            connection.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
            applied_now.append(version)
            log.info("applied migration %d (%s)", version, name)
    return applied_now


def main() -> int:
    settings = load(MigrateSettings, "migrate")
    logs.configure(settings.log_level)
    try:
        applied = apply(settings)
    except psycopg.OperationalError as error:
        print(
            f"migrate: cannot reach Postgres at {settings.postgres_host}:{settings.postgres_port}"
            f" as {settings.postgres_username}: {str(error).strip().splitlines()[-1]}",
            file=sys.stderr,
        )
        return 1
    latest = MIGRATIONS[-1][0]
    print(f"migrate: schema at version {latest} ({len(applied)} applied now)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
