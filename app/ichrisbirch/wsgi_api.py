"""The api (FastAPI): `uvicorn ichrisbirch.wsgi_api:api` or gunicorn with uvicorn_worker.UvicornWorker."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import psycopg
import redis
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ichrisbirch import __version__, db, heartbeat, logs, tasks
from ichrisbirch.settings import ApiSettings, built_on_first_use, load

log = logging.getLogger("ichrisbirch.api")
RETRY_AFTER_SECONDS = 2  # a Postgres or Redis restart takes a few seconds


class NewTask(BaseModel):
    title: str = Field(min_length=1, max_length=200)


def create_api(settings: ApiSettings) -> FastAPI:
    logs.configure(settings.log_level)
    cache = redis.Redis(
        host=settings.redis_host,
        port=settings.redis_port,
        password=settings.redis_password.get_secret_value(),
        db=settings.redis_db,
        socket_timeout=3,
        socket_connect_timeout=3,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # A list cached before this process started may be of another database: a restore starts
        # the api again on the restored one.
        tasks.forget_the_list(cache)
        yield

    api = FastAPI(title="ichrisbirch api", version=__version__, lifespan=lifespan)

    # A dependency that is away (Postgres restarting for an upgrade, Redis replaced) is a 503 with
    # Retry-After, never a 500: the service is unavailable for a moment, not broken.
    def unavailable(dependency: str) -> Any:
        def answer(request: Request, error: Exception) -> JSONResponse:
            log.warning("%s %s: %s is unavailable: %s", request.method, request.url.path, dependency, error)
            body = {"detail": f"{dependency} is unavailable; retry shortly", "down": [dependency]}
            return JSONResponse(body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

        return answer

    api.add_exception_handler(psycopg.OperationalError, unavailable("postgres"))

    # Not a 503: the write may have been made, and a 503 would have the router send it again.
    def outcome_unknown(request: Request, error: Exception) -> JSONResponse:
        log.error("%s %s: %s", request.method, request.url.path, error)
        body = {"detail": "the database went away while committing: check before writing again"}
        return JSONResponse(body, status_code=500)

    api.add_exception_handler(db.CommitOutcomeUnknown, outcome_unknown)
    api.add_exception_handler(redis.ConnectionError, unavailable("redis"))
    api.add_exception_handler(redis.TimeoutError, unavailable("redis"))

    @api.get("/")
    def about() -> dict[str, str]:
        return {"service": "api", "environment": settings.environment, "version": __version__}

    @api.get("/health")
    def health() -> JSONResponse:
        checks: dict[str, str] = {}
        backup: dict[str, Any] | None = None
        try:
            with db.connect(settings) as connection:
                connection.execute("SELECT 1")
                backup = latest_backup(connection)
            checks["postgres"] = "ok"
        except psycopg.Error as error:
            log.warning("health: postgres is down: %s", error)
            checks["postgres"] = "down"
        try:
            cache.ping()
            checks["redis"] = "ok"
        except redis.RedisError as error:
            log.warning("health: redis is down: %s", error)
            checks["redis"] = "down"
        down = sorted(name for name, state in checks.items() if state != "ok")
        # The latest good backup, for monitoring: its age and size (its staleness is the backup
        # service's own health, not the api's).
        body: dict[str, Any] = {"status": "unavailable" if down else "ok", "checks": checks, "backup": backup}
        if down:
            body["down"] = down
        return JSONResponse(body, status_code=503 if down else 200)

    @api.get("/tasks")
    def list_tasks(response: Response) -> list[dict[str, Any]]:
        items, hit = tasks.list_tasks(settings, cache)
        response.headers["X-Cache"] = "hit" if hit else "miss"
        return items

    @api.post("/tasks", status_code=201)
    def create_task(task: NewTask) -> dict[str, Any]:
        return tasks.create_task(settings, cache, task.title)

    @api.post("/tasks/{task_id}/complete")
    def complete_task(task_id: int) -> dict[str, Any]:
        task = tasks.complete_task(settings, cache, task_id)
        if task is None:
            raise HTTPException(status_code=404, detail=f"no task {task_id}")
        return task

    @api.get("/scheduler")
    def scheduler() -> dict[str, Any]:
        return heartbeat.last_heartbeat(settings)

    return api


def latest_backup(connection: psycopg.Connection[dict[str, object]]) -> dict[str, Any] | None:
    """The latest dump the backup service recorded, or None (no backup service, or none yet)."""
    present = connection.execute("SELECT to_regclass('backup_runs') IS NOT NULL AS present").fetchone()
    if not present or not present["present"]:
        return None  # before the migrations
    row = connection.execute(
        "SELECT file, bytes, sha256, finished_at, extract(epoch FROM now() - finished_at)::int AS age_seconds"
        " FROM backup_runs ORDER BY finished_at DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    finished = row["finished_at"]
    return {**row, "finished_at": finished.isoformat() if isinstance(finished, datetime) else str(finished)}


__getattr__ = built_on_first_use("api", lambda: create_api(load(ApiSettings, "api")))
