"""The Docker command line as the suite uses it, and bounded polling."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

DOCKER = os.environ.get("DOCKER_BIN", "/usr/bin/docker")  # the client that can build with BuildKit
LOCAL_ENGINE = "unix:///var/run/docker.sock"
TEST_LABEL = "ichrisbirch.test=1"  # on everything the suite runs beside the stacks (stand-in bucket, builds)


def engine_host() -> str:
    """The Docker engine the suite deploys to: DOCKER_HOST (.ci/run starts one of the run's own), else
    the local one. The Docker CLI and the stacks (their dockerHost) both use it."""
    return os.environ.get("DOCKER_HOST") or LOCAL_ENGINE


def docker(*args: str, check: bool = True, timeout: float = 600, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DOCKER, *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
        env={**os.environ, "DOCKER_BUILDKIT": "1"},
        **kwargs,
    )


def labelled(label: str) -> list[tuple[str, str]]:
    """(kind, id) of every container, volume and network on the engine that carries `label`."""
    found = []
    for kind in ("container", "volume", "network"):
        listed = docker(kind, "ls", *(["-a"] if kind == "container" else []), "-q", "--filter", f"label={label}")
        found += [(kind, item) for item in listed.stdout.split()]
    return found


def remove_objects(objects: list[tuple[str, str]]) -> None:
    removal = {"container": ("rm", "-f", "-v"), "volume": ("rm", "-f"), "network": ("rm",)}
    for kind, command in removal.items():  # containers first: they hold the others
        names = [name for k, name in objects if k == kind]
        if names:
            docker(kind, *command, *names, check=False)


STANDIN_REPOSITORY = "icb-standin/"  # tests/standins/build.sh: kept across runs, rebuilt from their inputs


def images() -> dict[str, set[str]]:
    """Every image on the engine (intermediate ones too), by id, with its repository:tag names."""
    listed = docker("images", "-a", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}").stdout
    found: dict[str, set[str]] = {}
    for line in listed.splitlines():
        image, name = line.split(" ", 1)
        found.setdefault(image, set())
        if name != "<none>:<none>":
            found[image].add(name)
    return found


def images_made_since(before: dict[str, set[str]]) -> dict[str, set[str]]:
    """The images on the engine now that were not at `before`, stand-ins aside."""
    return {
        image: names
        for image, names in images().items()
        if image not in before and not (names and all(n.startswith(STANDIN_REPOSITORY) for n in names))
    }


def build_cache_size() -> str:
    """The engine's build cache, as `docker system df` puts it (e.g. 1.2GB)."""
    for line in docker("system", "df", "--format", "{{.Type}}\t{{.Size}}").stdout.splitlines():
        kind, size = line.split("\t")
        if kind == "Build Cache":
            return size
    return "0B"


def timed(call: Callable[[], T]) -> tuple[T, float]:
    """What `call` returned, and how many seconds it took."""
    began = time.monotonic()
    return call(), time.monotonic() - began


def until(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.5) -> T:
    """Poll `check` until it returns a value, at most `timeout` seconds; bounded, stops by itself."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result is not None:
                return result
        except (OSError, urllib.error.URLError) as error:
            last_error = error
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout} s" + (f" (last error: {last_error})" if last_error else ""))


def inspect_container(name: str) -> dict[str, Any]:
    return dict(json.loads(docker("inspect", name).stdout)[0])


def wait_healthy(container: str, timeout: float) -> None:
    """Poll a container until healthy; fail early, with its logs, when it exits or restarts."""
    deadline = time.monotonic() + timeout
    restarts_before = inspect_container(container)["RestartCount"]
    while True:
        info = inspect_container(container)
        state = info["State"]
        if (state.get("Health") or {}).get("Status") == "healthy":
            return
        if state["Status"] == "exited" or info["RestartCount"] > restarts_before:
            logs = docker("logs", "--tail", "40", container, check=False)
            raise AssertionError(
                f"{container} exited with {state['ExitCode']} before it was healthy:\n{logs.stdout}{logs.stderr}"
            )
        if time.monotonic() > deadline:
            probes = (state.get("Health") or {}).get("Log") or []
            last = probes[-1]["Output"].strip() if probes else "no probe ran"
            raise AssertionError(f"{container} not healthy within {timeout}s (last probe: {last})")
        time.sleep(0.2)
