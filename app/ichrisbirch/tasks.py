"""Tasks: stored in Postgres, the list cached in Redis and dropped on every write."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

import redis

from ichrisbirch import db
from ichrisbirch.settings import PostgresSettings

CACHE_KEY = "tasks:list"
CACHE_SECONDS = 60
log = logging.getLogger("ichrisbirch.tasks")


def _serialise(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def list_tasks(pg: PostgresSettings, cache: redis.Redis) -> tuple[list[dict[str, Any]], bool]:
    """All tasks, newest first, and whether they came from the cache."""
    cached = cache.get(CACHE_KEY)
    if cached is not None:
        return json.loads(cached), True
    with db.connect(pg) as connection:
        rows = connection.execute(
            "SELECT id, title, completed, created_at, completed_at FROM tasks ORDER BY id DESC"
        ).fetchall()
    tasks = [_serialise(row) for row in rows]
    cache.set(CACHE_KEY, json.dumps(tasks), ex=CACHE_SECONDS)
    return tasks, False


def forget_the_list(cache: redis.Redis) -> None:
    """Drop the cached list (after a write that committed, or at start): best effort, since an error
    here must not turn a write that was made into a 503 (which the router would send again). Were
    Redis away, it holds no list to go stale; a blip leaves one for at most CACHE_SECONDS."""
    try:
        cache.delete(CACHE_KEY)
    except redis.RedisError as error:
        log.warning("the cached task list was not dropped: %s", error)


def create_task(pg: PostgresSettings, cache: redis.Redis, title: str) -> dict[str, Any]:
    with db.connect(pg) as connection:
        row = connection.execute(
            "INSERT INTO tasks (title) VALUES (%s) RETURNING id, title, completed, created_at, completed_at", (title,)
        ).fetchone()
    forget_the_list(cache)
    assert row is not None
    return _serialise(row)


def complete_task(pg: PostgresSettings, cache: redis.Redis, task_id: int) -> dict[str, Any] | None:
    with db.connect(pg) as connection:
        row = connection.execute(
            "UPDATE tasks SET completed = TRUE, completed_at = coalesce(completed_at, now()) WHERE id = %s"
            " RETURNING id, title, completed, created_at, completed_at",
            (task_id,),
        ).fetchone()
    forget_the_list(cache)
    return _serialise(row) if row else None
