from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from ichrisbirch import db
from ichrisbirch.settings import ApiSettings
from ichrisbirch.wsgi_api import create_api


@pytest.fixture(scope="module")
def client(api_settings: ApiSettings) -> TestClient:
    return TestClient(create_api(api_settings))


def test_health_reports_postgres_and_redis(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"postgres": "ok", "redis": "ok"}, "backup": None}


def test_health_shows_the_latest_good_backup(client: TestClient, api_settings: ApiSettings) -> None:
    with db.connect(api_settings) as connection:
        connection.execute(
            "INSERT INTO backup_runs (file, bytes, sha256, seconds, finished_at)"
            " VALUES ('old.dump', 1, 'a', 1, now() - interval '2 days'),"
            " ('new.dump', 2048, 'b', 3, now() - interval '1 hour')"
        )
    try:
        backup = client.get("/health").json()["backup"]
        assert backup["file"] == "new.dump" and backup["bytes"] == 2048 and backup["sha256"] == "b"
        assert 3590 <= backup["age_seconds"] <= 3700, backup
    finally:
        with db.connect(api_settings) as connection:
            connection.execute("DELETE FROM backup_runs WHERE file IN ('old.dump', 'new.dump')")


def test_health_names_the_dependency_that_is_down(api_settings: ApiSettings) -> None:
    broken = api_settings.model_copy(update={"redis_host": "127.0.0.1", "redis_port": 1})
    response = TestClient(create_api(broken)).get("/health")
    assert response.status_code == 503
    assert response.json()["down"] == ["redis"]
    broken = api_settings.model_copy(update={"postgres_host": "127.0.0.1", "postgres_port": 1})
    response = TestClient(create_api(broken)).get("/health")
    assert response.status_code == 503
    assert response.json()["down"] == ["postgres"]


def test_a_request_while_a_dependency_is_away_is_a_503_to_retry(api_settings: ApiSettings) -> None:
    for dependency, method in (("postgres", "POST"), ("redis", "GET")):
        broken = api_settings.model_copy(update={f"{dependency}_host": "127.0.0.1", f"{dependency}_port": 1})
        response = TestClient(create_api(broken)).request(method, "/tasks", json={"title": "while away"})
        assert response.status_code == 503, (dependency, response.text)
        assert response.headers["Retry-After"] == "2" and response.json()["down"] == [dependency]


def test_a_write_committed_while_redis_is_away_is_acknowledged_not_a_503(api_settings: ApiSettings) -> None:
    """A 503 has the router send the request again: a write that was made must not answer one."""
    broken = api_settings.model_copy(update={"redis_host": "127.0.0.1", "redis_port": 1})
    title = f"redis away {uuid.uuid4()}"
    response = TestClient(create_api(broken)).post("/tasks", json={"title": title})
    assert response.status_code == 201, response.text
    with db.connect(api_settings) as connection:
        rows = connection.execute("SELECT count(*) AS n FROM tasks WHERE title = %s", (title,)).fetchone()
    assert rows == {"n": 1}


def test_a_commit_whose_connection_breaks_is_a_500_not_a_503(
    api_settings: ApiSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one database error after which the write may have been made: not sent again."""
    real_connect = psycopg.connect

    def connect_breaking_at_commit(*args: Any, **kwargs: Any) -> psycopg.Connection[Any]:
        connection = real_connect(*args, **kwargs)

        def commit() -> None:
            connection.rollback()
            raise psycopg.OperationalError("server closed the connection unexpectedly")

        monkeypatch.setattr(connection, "commit", commit)
        return connection

    monkeypatch.setattr(psycopg, "connect", connect_breaking_at_commit)
    response = TestClient(create_api(api_settings)).post("/tasks", json={"title": "at the commit"})
    assert response.status_code == 500 and "Retry-After" not in response.headers, response.text
    assert "check before writing again" in response.json()["detail"]


def test_tasks_are_stored_and_the_list_is_cached_until_a_write(client: TestClient) -> None:
    title = f"water the plants {uuid.uuid4().hex[:8]}"
    client.get("/tasks")
    assert client.get("/tasks").headers["X-Cache"] == "hit"

    created = client.post("/tasks", json={"title": title})
    assert created.status_code == 201
    task = created.json()
    assert task["title"] == title and task["completed"] is False

    listed = client.get("/tasks")
    assert listed.headers["X-Cache"] == "miss", "a write must drop the cached list"
    assert task["id"] in [t["id"] for t in listed.json()]

    done = client.post(f"/tasks/{task['id']}/complete")
    assert done.status_code == 200 and done.json()["completed"] is True
    after = {t["id"]: t for t in client.get("/tasks").json()}
    assert after[task["id"]]["completed"] is True


def test_an_api_that_starts_serves_no_list_cached_before_it(client: TestClient, api_settings: ApiSettings) -> None:
    # As after a restore, which starts the api again: the database changed under the cached list.
    client.get("/tasks")
    assert client.get("/tasks").headers["X-Cache"] == "hit"
    title = f"restored {uuid.uuid4().hex[:8]}"
    with db.connect(api_settings) as connection:
        connection.execute("INSERT INTO tasks (title) VALUES (%s)", (title,))
    with TestClient(create_api(api_settings)) as started:  # its start runs, as a server's does
        listed = started.get("/tasks")
    assert listed.headers["X-Cache"] == "miss" and title in [t["title"] for t in listed.json()]


def test_bad_requests(client: TestClient) -> None:
    assert client.post("/tasks", json={"title": ""}).status_code == 422
    assert client.post("/tasks/999999999/complete").status_code == 404


def test_scheduler_endpoint_shows_the_last_heartbeat(client: TestClient, api_settings: ApiSettings) -> None:
    from ichrisbirch import heartbeat

    heartbeat.record_run(api_settings, heartbeat.HEARTBEAT)
    state = client.get("/scheduler").json()
    assert state["runs"] >= 1
    assert state["age_seconds"] is not None and state["age_seconds"] < 60
