"""Container health checks without curl: `python -m ichrisbirch.healthcheck api|app|scheduler`.

Exit 0 when healthy, 1 otherwise, with one line saying why.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable

STALE_AFTER_INTERVALS = 3


def http_ok(
    url: str, timeout: float = 3, still_ok: Callable[[urllib.error.HTTPError], str | None] = lambda _: None
) -> tuple[bool, str]:
    """Whether `url` answers 2xx, and why not. `still_ok`: for an error answer that is no reason to
    restart, why (the check passes), else None."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return True, f"{url} answered {response.status}"
    except urllib.error.HTTPError as error:
        reason = still_ok(error)
        return (True, f"{url} answered {error.code}: {reason}") if reason else (False, f"{url} answered {error.code}")
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        return False, f"{url} unreachable: {error}"


def down_named(answer: urllib.error.HTTPError) -> list[str]:
    """The dependencies a 503 from a health endpoint names as down (its JSON `down`), or none."""
    if answer.code != 503:
        return []
    try:
        down = json.loads(answer.read() or b"null").get("down", [])
    except (ValueError, AttributeError, OSError):
        return []
    return [str(name) for name in down] if isinstance(down, list) else []


def _only_the_apis_dependency_down(answer: urllib.error.HTTPError) -> str | None:
    down = down_named(answer)
    return f"the api's {', '.join(down)} down" if down and "api" not in down else None


def app_ok(url: str) -> tuple[bool, str]:
    """Docker's check of the app: it answers, and reaches the api. While the api's own dependency is
    away the app's health says 503 (the router holds its requests); a restart would not help."""
    return http_ok(url, timeout=6, still_ok=_only_the_apis_dependency_down)


def scheduler_ok() -> tuple[bool, str]:
    from ichrisbirch import heartbeat
    from ichrisbirch.settings import SchedulerSettings, load

    settings = load(SchedulerSettings, "healthcheck")
    limit = STALE_AFTER_INTERVALS * settings.scheduler_heartbeat_seconds + 5
    try:
        state = heartbeat.last_heartbeat(settings)
    except Exception as error:  # noqa: BLE001 - any failure to read the heartbeat is unhealthy
        return False, f"cannot read the heartbeat: {type(error).__name__}"
    age = state["age_seconds"]
    if age is None:
        return False, "no heartbeat recorded yet"
    if age > limit:
        return False, f"last heartbeat {age:.0f}s ago (stale after {limit}s)"
    return True, f"last heartbeat {age:.0f}s ago"


def check(service: str) -> tuple[bool, str]:
    if service == "api":
        return http_ok(f"http://127.0.0.1:{os.environ.get('FASTAPI_PORT', '8000')}/health")
    if service == "app":
        return app_ok(f"http://127.0.0.1:{os.environ.get('FLASK_PORT', '5000')}/health")
    if service == "scheduler":
        return scheduler_ok()
    return False, f"unknown service {service!r} (expected api, app or scheduler)"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m ichrisbirch.healthcheck api|app|scheduler", file=sys.stderr)
        return 2
    healthy, reason = check(argv[0])
    print(f"{argv[0]}: {'healthy' if healthy else 'unhealthy'}: {reason}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
