"""At most one scheduler runs jobs: the one holding a Postgres advisory lock.

Two scheduler containers overlap during a create-first rollout (and by accident). Each one takes
a session-level advisory lock before it schedules anything; the other waits as a standby and takes
over within a second when the leader stops (its session ends, Postgres releases the lock). A leader
that loses its lock session (Postgres restarted) stops at once rather than risk a second leader.
"""

from __future__ import annotations

import logging
import threading

import psycopg

from ichrisbirch.settings import PostgresSettings

log = logging.getLogger("ichrisbirch.leadership")


class Leadership:
    def __init__(self, settings: PostgresSettings, lock_id: int, poll_seconds: float = 1.0) -> None:
        self.settings = settings
        self.lock_id = lock_id
        self.poll_seconds = poll_seconds
        self._connection: psycopg.Connection[tuple[object, ...]] | None = None

    def acquire(self, stop: threading.Event) -> bool:
        """Wait until this process holds the lock (True), or until `stop` is set (False)."""
        announced = False
        while not stop.is_set():
            try:
                connection = self._connection or psycopg.connect(**self.settings.conninfo(), autocommit=True)
                self._connection = connection
                row = connection.execute("SELECT pg_try_advisory_lock(%s)", (self.lock_id,)).fetchone()
                if row and row[0]:
                    log.info("leader: holding scheduler lock %d", self.lock_id)
                    return True
                if not announced:
                    log.info("standby: another scheduler holds lock %d; waiting to take over", self.lock_id)
                    announced = True
            except psycopg.OperationalError as error:
                log.warning("cannot reach Postgres for the scheduler lock: %s", str(error).strip().splitlines()[-1])
                self.release()
            stop.wait(self.poll_seconds)
        return False

    def held(self) -> bool:
        """Whether the lock's session is alive and still holds it."""
        if self._connection is None:
            return False
        try:
            row = self._connection.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s"
                " AND pid = pg_backend_pid() AND granted",
                (self.lock_id,),
            ).fetchone()
        except psycopg.Error:
            return False
        return bool(row and row[0])

    def release(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None
