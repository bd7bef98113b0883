"""The app (Flask): `flask --app ichrisbirch.wsgi_app:app run` or `gunicorn ichrisbirch.wsgi_app:app`."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import time
import urllib.error
import urllib.request
from typing import Any

from flask import Flask, redirect, render_template_string, request, url_for
from werkzeug.wrappers import Response

from ichrisbirch import logs
from ichrisbirch.healthcheck import down_named
from ichrisbirch.settings import AppSettings, built_on_first_use, load

log = logging.getLogger("ichrisbirch.app")
API_TIMEOUT = 5
# On the stack's network a connect takes well under a millisecond, while one to a container that has
# just been removed is never answered: give up on an address soon and try the name's next one.
CONNECT_TIMEOUT = 1


class _FastConnect(http.client.HTTPConnection):
    """Connects within CONNECT_TIMEOUT (to each address the name resolves to, in turn), then reads
    within the request's own timeout."""

    def connect(self) -> None:
        self.sock = socket.create_connection((self.host, self.port), CONNECT_TIMEOUT)
        self.sock.settimeout(self.timeout)


class _FastConnectHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_FastConnect, req)


_OPENER = urllib.request.build_opener(_FastConnectHandler)

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>ichrisbirch: tasks</title></head>
<body>
<h1>Tasks</h1>
{% if error %}<p role="alert">The api is unavailable: {{ error }}</p>{% endif %}
<form method="post" action="{{ url_for('add_task') }}">
  <input name="title" maxlength="200" required aria-label="New task"><button type="submit">Add</button>
</form>
<ul>
{% for task in tasks %}
  <li>{% if task.completed %}<s>{{ task.title }}</s>{% else %}{{ task.title }}
    <form method="post" action="{{ url_for('complete_task', task_id=task.id) }}" style="display:inline">
      <button type="submit">Done</button></form>{% endif %}</li>
{% endfor %}
</ul>
</body>
</html>
"""


class ApiUnavailable(Exception):
    pass


class ApiClient:
    """The few calls the app makes to the api, with timeouts; any failure is ApiUnavailable."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        for attempt in (1, 2):
            req = urllib.request.Request(
                self.base_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
            )
            try:
                with _OPENER.open(req, timeout=API_TIMEOUT) as response:
                    return json.loads(response.read() or b"null")
            except urllib.error.HTTPError as error:
                raise ApiUnavailable(f"{method} {path} answered {error.code}") from error
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                # During a rollout the api's name can still lead to a container that is stopping:
                # once more, for a read, or for any request that was refused (so never received).
                reason = getattr(error, "reason", error)
                if attempt == 1 and (method == "GET" or isinstance(reason, ConnectionRefusedError)):
                    time.sleep(0.2)
                    continue
                raise ApiUnavailable(f"cannot reach {self.base_url}") from error
        raise AssertionError("unreachable")


def create_app(settings: AppSettings) -> Flask:
    logs.configure(settings.log_level)
    app = Flask(__name__)
    app.secret_key = settings.flask_secret_key.get_secret_value()
    api = ApiClient(settings.api_url)

    @app.get("/")
    def index() -> tuple[str, int]:
        try:
            return render_template_string(PAGE, tasks=api.call("GET", "/tasks"), error=None), 200
        except ApiUnavailable as error:
            log.warning("index: %s", error)
            return render_template_string(PAGE, tasks=[], error=str(error)), 503

    @app.post("/tasks")
    def add_task() -> Response | tuple[str, int]:
        try:
            api.call("POST", "/tasks", {"title": request.form.get("title", "")})
        except ApiUnavailable as error:
            return render_template_string(PAGE, tasks=[], error=str(error)), 503
        return redirect(url_for("index"), code=303)

    @app.post("/tasks/<int:task_id>/complete")
    def complete_task(task_id: int) -> Response | tuple[str, int]:
        try:
            api.call("POST", f"/tasks/{task_id}/complete")
        except ApiUnavailable as error:
            return render_template_string(PAGE, tasks=[], error=str(error)), 503
        return redirect(url_for("index"), code=303)

    @app.get("/health")
    def health() -> tuple[dict[str, Any], int]:
        # While the api's Postgres or Redis is away every page would be a 503: the app says so too,
        # and the router holds its requests meanwhile. Any other bad news is that api container's
        # own (the name leads to each of them, a failed release's too): its health reports it.
        try:
            _OPENER.open(settings.api_url + "/health", timeout=API_TIMEOUT).close()
        except urllib.error.HTTPError as error:
            down = down_named(error)
            if down:
                body = {"status": "unavailable", "api": f"{settings.api_url}/health answered 503", "down": down}
                return body, 503
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            return {"status": "unavailable", "api": f"cannot reach {settings.api_url}: {error}", "down": ["api"]}, 503
        return {"status": "ok", "api": settings.api_url}, 200

    return app


__getattr__ = built_on_first_use("app", lambda: create_app(load(AppSettings, "app")))
