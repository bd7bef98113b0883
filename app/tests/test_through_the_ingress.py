"""The deployed stack as a client sees it: through its ingress, over TLS, by name.

Only the test stack's `tests` container runs these: it sets STACK_APP_URL, STACK_API_URL and
STACK_CA_CERTIFICATE (the stack's internal CA). Elsewhere run the suite with `-m "not stack"`;
selected without those variables, the run stops (tests/conftest.py).
"""

from __future__ import annotations

import os
import ssl
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    # Verified against the stack's own CA, with the site's name as SNI: as a browser would.
    context = ssl.create_default_context(cadata=os.environ["STACK_CA_CERTIFICATE"])
    with httpx.Client(verify=context, timeout=10) as client:
        yield client


def api(path: str) -> str:
    return os.environ["STACK_API_URL"] + path


def app(path: str) -> str:
    return os.environ["STACK_APP_URL"] + path


def test_the_api_answers_through_the_ingress_with_security_headers(client: httpx.Client) -> None:
    response = client.get(api("/health"))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ok"
    assert response.headers["strict-transport-security"].startswith("max-age=")
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_task_added_in_the_app_is_listed_by_the_api(client: httpx.Client) -> None:
    title = f"through the ingress {uuid.uuid4().hex[:8]}"
    added = client.post(app("/tasks"), data={"title": title})
    assert added.status_code == 303, added.text
    assert title in client.get(app("/")).text
    assert title in [task["title"] for task in client.get(api("/tasks")).json()]


def test_plain_http_only_redirects_to_https(client: httpx.Client) -> None:
    site = urlsplit(os.environ["STACK_APP_URL"])
    response = client.post(f"http://{site.hostname}:8080/tasks", data={"title": "never stored"})
    assert response.status_code == 301
    assert response.headers["location"].startswith(f"https://{site.hostname}")
