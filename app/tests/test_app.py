from __future__ import annotations

import contextlib
import http.server
import threading
import uuid
from collections.abc import Iterator

import pytest
from conftest import serving_api
from flask.testing import FlaskClient
from ichrisbirch import healthcheck
from ichrisbirch.settings import ApiSettings, AppSettings
from ichrisbirch.wsgi_app import create_app
from werkzeug.serving import make_server


def app_settings(api_url: str) -> AppSettings:
    host, port = api_url.removeprefix("http://").split(":")
    return AppSettings(  # type: ignore[call-arg]
        environment="test", fastapi_host=host, fastapi_port=int(port), flask_secret_key="test-only-key"
    )


@pytest.fixture
def client(live_api: str) -> FlaskClient:
    return create_app(app_settings(live_api)).test_client()


def test_page_lists_tasks_from_the_api_and_adds_one(client: FlaskClient) -> None:
    title = f"call the plumber {uuid.uuid4().hex[:8]}"
    added = client.post("/tasks", data={"title": title})
    assert added.status_code == 303
    page = client.get("/")
    assert page.status_code == 200
    assert title in page.get_data(as_text=True)


def test_health_checks_that_the_api_answers(client: FlaskClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200 and response.get_json()["status"] == "ok"


def test_health_says_what_the_api_says_is_down(api_settings: ApiSettings) -> None:
    # The router takes the app out (and holds its requests) only if its health says it cannot serve.
    without_postgres = api_settings.model_copy(update={"postgres_host": "127.0.0.1", "postgres_port": 1})
    with serving_api(without_postgres) as api_url:
        client = create_app(app_settings(api_url)).test_client()
        health = client.get("/health")
        assert health.status_code == 503
        assert health.get_json()["down"] == ["postgres"]


class BrokenApiHealth(http.server.BaseHTTPRequestHandler):
    """One api container of a failed release: its own health answers 500, naming nothing down."""

    def do_GET(self) -> None:
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


def test_health_stays_200_when_one_api_container_has_bad_news_of_its_own() -> None:
    # The api's name leads to every api container, one of a failed release too: that one's 500 is
    # not the app's to report (the router takes the app out only when the api's dependency is away).
    broken = http.server.ThreadingHTTPServer(("127.0.0.1", 0), BrokenApiHealth)
    thread = threading.Thread(target=broken.serve_forever, daemon=True)
    thread.start()
    try:
        client = create_app(app_settings(f"http://127.0.0.1:{broken.server_port}")).test_client()
        assert client.get("/health").status_code == 200
    finally:
        broken.shutdown()
        broken.server_close()


@contextlib.contextmanager
def serving_app(settings: AppSettings) -> Iterator[str]:
    """The app served over real HTTP on 127.0.0.1 while in the block: its base URL."""
    server = make_server("127.0.0.1", 0, create_app(settings), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def test_docker_keeps_an_app_that_waits_on_the_apis_database_and_not_one_without_its_api(
    api_settings: ApiSettings,
) -> None:
    # Docker's check restarts what fails it: a restart brings back neither Postgres nor the api.
    without_postgres = api_settings.model_copy(update={"postgres_host": "127.0.0.1", "postgres_port": 1})
    with serving_api(without_postgres) as api_url, serving_app(app_settings(api_url)) as app_url:
        healthy, reason = healthcheck.app_ok(app_url + "/health")
    assert healthy and "postgres down" in reason, reason
    with serving_app(app_settings("http://127.0.0.1:1")) as app_url:
        healthy, reason = healthcheck.app_ok(app_url + "/health")
    assert not healthy and "answered 503" in reason, reason


def test_api_down_gives_a_503_page_not_a_crash() -> None:
    client = create_app(app_settings("http://127.0.0.1:1")).test_client()
    page = client.get("/")
    assert page.status_code == 503
    assert "The api is unavailable" in page.get_data(as_text=True)
    assert client.get("/health").status_code == 503
    assert client.post("/tasks", data={"title": "x"}).status_code == 503
