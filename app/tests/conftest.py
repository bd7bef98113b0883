"""The application's suite runs against the real Postgres and Redis named by the contract's variables.

In the test stack these come from the `tests` container's environment; elsewhere set them
yourself (see README). Missing variables stop the run with their names: nothing skips.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from ichrisbirch import migrate
from ichrisbirch.settings import ApiSettings, SchedulerSettings

REQUIRED = [
    "ENVIRONMENT",
    "POSTGRES_HOST",
    "POSTGRES_USERNAME",
    "POSTGRES_PASSWORD",
    "POSTGRES_DB",
    "REDIS_HOST",
    "REDIS_PASSWORD",
]


# What the `stack` tests (a deployed stack, through its ingress) need; the test stack sets them.
STACK = ["STACK_APP_URL", "STACK_API_URL", "STACK_CA_CERTIFICATE"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "stack: needs a deployed stack's ingress (the test stack's `tests` container)")
    missing = [name for name in REQUIRED if not os.environ.get(name) and not os.environ.get(f"{name}_FILE")]
    if missing:
        raise pytest.UsageError("the application suite needs a real Postgres and Redis; set: " + ", ".join(missing))


@pytest.hookimpl(trylast=True)  # after `-m` has deselected what it leaves out
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = [name for name in STACK if not os.environ.get(name)]
    if missing and any(item.get_closest_marker("stack") for item in items):
        raise pytest.UsageError(
            "the `stack` tests reach a deployed stack through its ingress; set "
            + ", ".join(missing)
            + ', or leave them out with -m "not stack"'
        )


@pytest.fixture(scope="session")
def api_settings() -> ApiSettings:
    settings = ApiSettings()  # type: ignore[call-arg]
    migrate.apply(settings)
    return settings


@pytest.fixture(scope="session")
def scheduler_settings(api_settings: ApiSettings) -> SchedulerSettings:
    return SchedulerSettings()  # type: ignore[call-arg]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving_api(settings: ApiSettings) -> Iterator[str]:
    """The api for `settings` served over real HTTP on 127.0.0.1 while in the block: its base URL."""
    from ichrisbirch.wsgi_api import create_api

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_api(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the api did not start within 15 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def live_api(api_settings: ApiSettings) -> Iterator[str]:
    """The api served over real HTTP, for the Flask app to call."""
    with serving_api(api_settings) as url:
        yield url
