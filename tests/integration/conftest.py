"""Integration tests run against a real Docker engine (installed and started by .ci/run).

Without an engine they skip locally with a loud reason; in CI (CI=true) they fail instead.
Stand-in images are built once, cached by content (tests/standins/build.sh).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.simulate import PROJECT_DIR

DOCKER = os.environ.get("DOCKER_BIN", "/usr/bin/docker")  # the client that can build with BuildKit
APP_DIR = PROJECT_DIR / "app"
TEST_LABEL = "ichrisbirch.test=1"
FIGURES: list[str] = []


def docker(*args: str, check: bool = True, timeout: float = 600, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DOCKER, *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
        env={**os.environ, "DOCKER_BUILDKIT": "1"},
        **kwargs,  # type: ignore[arg-type]
    )


def engine_problem() -> str | None:
    if not Path(DOCKER).exists():
        return f"{DOCKER} not found (apt-get install docker.io)"
    try:
        result = docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=20)
    except subprocess.TimeoutExpired:
        return "docker info timed out"
    return None if result.returncode == 0 else f"no Docker engine answers: {result.stderr.strip()}"


@pytest.fixture(scope="session")
def engine() -> None:
    problem = engine_problem()
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the Docker tests, but {problem}", pytrace=False)
    pytest.skip(f"!!! SKIPPING DOCKER TESTS: {problem}. Start dockerd to run them (CI always does). !!!")


@dataclass(frozen=True)
class Standins:
    python: str
    postgres: str
    redis: str


@pytest.fixture(scope="session")
def standins(engine: None) -> Standins:
    result = subprocess.run(
        ["bash", str(PROJECT_DIR / "tests" / "standins" / "build.sh")], capture_output=True, text=True, timeout=1200
    )
    assert result.returncode == 0, f"building the stand-in images failed:\n{result.stdout}\n{result.stderr}"
    refs = dict(line.strip().split("=", 1) for line in result.stdout.splitlines() if "Image=" in line)
    return Standins(python=refs["pythonBaseImage"], postgres=refs["postgresImage"], redis=refs["redisImage"])


@dataclass(frozen=True)
class Build:
    tag: str
    seconds: float
    log: str


def build_image(context: Path, target: str, tag: str, base: str, *extra: str) -> Build:
    started = time.monotonic()
    result = docker(
        "build",
        "--progress=plain",
        "--target",
        target,
        "--build-arg",
        f"PYTHON_BASE_IMAGE={base}",
        "--label",
        TEST_LABEL,
        "-t",
        tag,
        *extra,
        str(context),
        check=False,
        timeout=1200,
    )
    seconds = time.monotonic() - started
    assert result.returncode == 0, f"building {target} failed:\n{result.stderr[-4000:]}"
    return Build(tag, seconds, result.stderr)  # BuildKit's plain progress goes to stderr


@pytest.fixture(scope="session")
def images(standins: Standins) -> dict[str, Build]:
    """Both targets of app/Dockerfile, built with BuildKit from the stand-in base."""
    return {
        target: build_image(APP_DIR, target, f"ichrisbirch-test:{target}", standins.python)
        for target in ("development", "production")
    }


def report(line: str) -> None:
    """A figure to print at the end of the run (image sizes, build times, time to healthy)."""
    FIGURES.append(line)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


@pytest.fixture
def scratch_network() -> Iterator[str]:
    """A private network for one test; removed with every container on it afterwards."""
    name = f"icb-itest-{os.getpid()}-{time.monotonic_ns() % 100000}"
    docker("network", "create", "--label", TEST_LABEL, name)
    yield name
    containers = docker("ps", "-aq", "--filter", f"network={name}").stdout.split()
    if containers:
        docker("rm", "-f", "-v", *containers, check=False)
    docker("network", "rm", name, check=False)


def copy_app(destination: Path) -> Path:
    shutil.copytree(APP_DIR, destination, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    return destination
