"""app/Dockerfile on a real engine: both targets build with BuildKit, production is lean and
non-root, a source-only change reuses every dependency layer, and the application suite passes in
the development image against real Postgres and Redis containers."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from proof.harness.buildkit import step_states
from proof.harness.cli import TEST_LABEL, docker, inspect_container, until
from proof.harness.figures import report
from proof.harness.standins import Build, Standins, build_image, copy_app
from proof.mocks import TEST_SECRETS

pytestmark = pytest.mark.docker

# Steps that install dependencies: a source-only change must re-run none of them.
DEPENDENCY_STEPS = [
    "pip install --no-cache-dir uv",
    "uv venv",
    "uv pip sync --require-hashes --python /opt/venv/bin/python requirements.txt",
    "uv pip sync --require-hashes --python /opt/venv/bin/python requirements-dev.txt",
    "COPY --from=builder /opt/venv /opt/venv",
]


def inspect(image: str) -> dict[str, Any]:
    inspected: dict[str, Any] = json.loads(docker("image", "inspect", image).stdout)[0]
    return inspected


def run_in(image: str, *command: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    extra = ["--user", user] if user else []
    return docker(
        "run", "--rm", "--label", TEST_LABEL, *extra, "--entrypoint", command[0], image, *command[1:], check=False
    )


def test_both_targets_build_with_buildkit(targets: dict[str, Build]) -> None:
    for target, build in targets.items():
        assert "naming to" in build.log and inspect(build.tag)["Id"].startswith("sha256:"), target
    dev, prod = inspect(targets["development"].tag), inspect(targets["production"].tag)
    assert dev["Config"]["Cmd"][:2] == ["uvicorn", "ichrisbirch.wsgi_api:api"]
    assert prod["Config"]["Cmd"][:2] == ["gunicorn", "ichrisbirch.wsgi_api:api"]
    assert "uvicorn_worker.UvicornWorker" in prod["Config"]["Cmd"]


def test_production_image_is_non_root_lean_and_health_checked(targets: dict[str, Build], standins: Standins) -> None:
    image = targets["production"].tag
    config = inspect(image)["Config"]
    assert config["User"] == "10001:10001"
    assert run_in(image, "id", "-u").stdout.strip() == "10001"
    assert config["Healthcheck"]["Test"] == ["CMD", "python", "-m", "ichrisbirch.healthcheck", "api"]
    assert config["Labels"]["org.opencontainers.image.version"] == "0.1.0"

    for tool in ("gcc", "cc", "uv"):
        found = run_in(image, "sh", "-c", f"command -v {tool}")
        assert found.returncode != 0, f"{tool} is in the production image at {found.stdout.strip()}"
    assert run_in(image, "python", "-c", "import uv").returncode != 0

    imported = run_in(
        image,
        "python",
        "-c",
        "import ichrisbirch.wsgi_api, ichrisbirch.wsgi_app, ichrisbirch.wsgi_scheduler, ichrisbirch.migrate;"
        "import ichrisbirch, sys; print(ichrisbirch.__file__)",
    )
    assert imported.returncode == 0, imported.stderr
    assert "/opt/venv/lib/" in imported.stdout, "the project must be installed in the venv, not run from source"
    assert run_in(image, "sh", "-c", "test -e /app/ichrisbirch").returncode != 0, "no source tree in production"

    size = inspect(image)["Size"]
    base = inspect(standins.python)["Size"]
    dev = inspect(targets["development"].tag)["Size"]
    report(
        f"production image: {size / 1e6:.0f} MB ({(size - base) / 1e6:.0f} MB above the base); "
        f"development image: {dev / 1e6:.0f} MB"
    )


def test_a_missing_variable_stops_each_process_with_its_name(targets: dict[str, Build]) -> None:
    name = f"icb-itest-missing-{uuid.uuid4().hex[:8]}"
    secret = TEST_SECRETS["postgresPassword"]
    for process in (["gunicorn", "ichrisbirch.wsgi_app:app", "--preload"], ["python", "-m", "ichrisbirch.migrate"]):
        try:
            result = docker(
                "run",
                "--name",
                name,
                "--label",
                TEST_LABEL,
                "-e",
                "ENVIRONMENT=prod",
                "-e",
                f"POSTGRES_PASSWORD={secret}",
                targets["production"].tag,
                *process,
                check=False,
                timeout=60,
            )
        finally:
            docker("rm", "-f", name, check=False)
        output = result.stdout + result.stderr
        assert result.returncode != 0, process
        assert ("FASTAPI_HOST: is required" if "gunicorn" in process else "POSTGRES_HOST: is required") in output
        assert secret not in output
    default = docker("run", "--rm", "--label", TEST_LABEL, targets["production"].tag, check=False, timeout=60)
    assert default.returncode != 0 and "POSTGRES_HOST: is required" in default.stdout + default.stderr


def test_source_only_change_reuses_every_dependency_layer(tmp_path: Path, standins: Standins) -> None:
    context = copy_app(tmp_path / "app")
    # A base of this test's own (the stand-in and one label more): no build on the engine from another
    # test shares a step with these, so what ran and what came from the cache is this test's alone.
    base = f"icb-itest-base:{uuid.uuid4().hex[:12]}"
    docker(
        "build",
        "--label",
        TEST_LABEL,
        "--label",
        f"ichrisbirch.cache-probe={base}",
        "-t",
        base,
        "-",
        input=f"FROM {standins.python}\n",
    )
    built = {base}  # every image this test makes: a rebuild leaves the last one untagged

    def probe(target: str, tag: str, *extra: str) -> Build:
        build = build_image(context, target, tag, base, *extra)
        built.add(docker("image", "inspect", "-f", "{{.Id}}", tag).stdout.strip())
        return build

    try:
        probe_and_check(context, probe)
    finally:
        docker("image", "rm", "-f", *built, check=False)


def probe_and_check(context: Path, probe: Callable[..., Build]) -> None:
    # Both targets first, so that what the source change re-runs is judged against a cache that
    # holds each (on a fresh engine nothing has built `development` yet).
    cold = probe("production", "ichrisbirch-test:cache-probe", "--no-cache")
    probe("development", "ichrisbirch-test:cache-probe-dev")
    warm = probe("production", "ichrisbirch-test:cache-probe")
    ran = [step for step, state in step_states(warm.log).items() if state != "CACHED"]
    assert ran == [], f"an unchanged rebuild ran {ran}:\n{warm.log[-3000:]}"

    source = context / "ichrisbirch" / "tasks.py"
    # Unique per run: BuildKit's cache is keyed by content, so a change seen before would be cached.
    source.write_text(source.read_text() + f"\n# a source-only change {uuid.uuid4()}\n")
    rebuilt = probe("production", "ichrisbirch-test:cache-probe")
    dev = probe("development", "ichrisbirch-test:cache-probe-dev")
    dependency_states = {
        f"{target}: {step}": state
        for target, build in (("production", rebuilt), ("development", dev))
        for step, state in step_states(build.log).items()
        if any(d in step for d in DEPENDENCY_STEPS)
    }
    assert len(dependency_states) >= len(DEPENDENCY_STEPS), f"dependency steps not found: {dependency_states}"
    rerun = [step for step, state in dependency_states.items() if state != "CACHED"]
    assert rerun == [], f"a source-only change re-ran dependency layers: {rerun}"
    prod_states = step_states(rebuilt.log)
    assert any("uv build --wheel" in s and v == "RAN" for s, v in prod_states.items()), "the project must rebuild"
    assert any("COPY ichrisbirch" in s and v == "RAN" for s, v in step_states(dev.log).items())
    report(
        f"production build: cold {cold.seconds:.1f} s (no cache), source-only rebuild {rebuilt.seconds:.1f} s "
        f"({100 * rebuilt.seconds / cold.seconds:.0f}% of cold), dependency layers re-run: {len(rerun)}"
    )


def start(network: str, alias: str, image: str, env: dict[str, str], health: str, *command: str) -> str:
    """A detached container on `network` under `alias`, health-checked every second; returns its id."""
    env_args = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
    return docker(
        "run",
        "-d",
        "--label",
        TEST_LABEL,
        "--network",
        network,
        "--network-alias",
        alias,
        *env_args,
        "--health-cmd",
        health,
        "--health-interval",
        "1s",
        image,
        *command,
    ).stdout.strip()


def wait_healthy(container: str) -> None:
    until(
        lambda: True if inspect_container(container)["State"]["Health"]["Status"] == "healthy" else None,
        timeout=60,
        what=f"container {container[:12]} healthy",
    )


def test_application_suite_passes_against_real_postgres_and_redis(
    targets: dict[str, Build], standins: Standins, scratch_network: str
) -> None:
    password, redis_password = TEST_SECRETS["postgresPassword"], TEST_SECRETS["redisPassword"]
    postgres = start(
        scratch_network,
        "postgres",
        standins.postgres,
        {"POSTGRES_USER": "ichrisbirch", "POSTGRES_PASSWORD": password, "POSTGRES_DB": "ichrisbirch"},
        "pg_isready -h 127.0.0.1 -U ichrisbirch -d ichrisbirch",
    )
    redis = start(
        scratch_network,
        "redis",
        standins.redis,
        {"REDIS_PASSWORD": redis_password},
        'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli ping | grep -q PONG',
        "sh",
        "-c",
        'exec docker-entrypoint.sh redis-server --requirepass "$REDIS_PASSWORD"',
    )
    wait_healthy(postgres)
    wait_healthy(redis)
    env = {
        "ENVIRONMENT": "test",
        "POSTGRES_HOST": "postgres",
        "POSTGRES_USERNAME": "ichrisbirch",
        "POSTGRES_PASSWORD": password,
        "POSTGRES_DB": "ichrisbirch",
        "REDIS_HOST": "redis",
        "REDIS_PASSWORD": redis_password,
    }
    env_args = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
    result = docker(
        "run",
        "--rm",
        "--label",
        TEST_LABEL,
        "--network",
        scratch_network,
        *env_args,
        targets["development"].tag,
        "python",
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        # No deployed stack here: the suite's `stack` tests run in the test stack's `tests` container.
        "-m",
        "not stack",
        "tests",
        check=False,
        timeout=600,
    )
    print(result.stdout[-3000:])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert re.search(r"\d+ passed", result.stdout)
    assert password not in result.stdout and redis_password not in result.stdout
