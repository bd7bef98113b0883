"""The prod stack deployed for real: hardened, self-healing, durable, and secret-free in images and logs."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import day2
from tests.integration.conftest import (
    Deployed,
    Standins,
    assert_no_secret_leak,
    deploy,
    docker,
    http,
    inspect_container,
    until,
)

pytestmark = pytest.mark.docker
APPLICATION = ["api", "app", "scheduler", "migrate"]
LONG_RUNNING = ["postgres", "redis", "api", "app", "scheduler"]


@pytest.fixture(scope="module")
def prod(standins: Standins) -> Iterator[Deployed]:
    with deploy("prod", standins) as deployed:
        yield deployed


def health(prod: Deployed) -> tuple[int, dict[str, object]]:
    status, body = http("GET", prod.url("api", "/health"), timeout=10)
    return status, json.loads(body)


def test_every_container_is_healthy(prod: Deployed) -> None:
    for service in LONG_RUNNING:
        assert inspect_container(prod.container(service))["State"]["Health"]["Status"] == "healthy", service
    assert health(prod)[0] == 200


def test_application_containers_are_hardened(prod: Deployed) -> None:
    for service in APPLICATION:
        info = inspect_container(prod.container(service))
        host = info["HostConfig"]
        assert info["Config"]["User"] == "10001:10001", service
        assert host["ReadonlyRootfs"] is True, service
        assert host["CapDrop"] == ["ALL"] and not host["CapAdd"], service
        assert host["SecurityOpt"] == ["no-new-privileges:true"], service
        assert host["Memory"] == 768 * 1024 * 1024 and host["NanoCpus"] == 1_000_000_000, service
        assert {u["Name"]: u["Hard"] for u in host["Ulimits"]} == {"nproc": 256}, service
        assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "3", "max-size": "10m"}}
        assert host["Privileged"] is False and host["PidMode"] == ""
        # Created on the default bridge, then moved to the stack's network, as the provider does.
        assert list(inspect_container(prod.container(service))["NetworkSettings"]["Networks"]) == ["icb-prod"]
        # One-shot migrate must not be restarted; everything long-running always is.
        assert host["RestartPolicy"]["Name"] == ("always" if service != "migrate" else "no"), service
    for service in ("api", "app"):
        bindings = inspect_container(prod.container(service))["HostConfig"]["PortBindings"]
        assert all(b["HostIp"] == "127.0.0.1" for port in bindings.values() for b in port), bindings
    for service in ("postgres", "redis"):
        info = inspect_container(prod.container(service))
        assert info["Config"]["User"] == "999:999" and info["HostConfig"]["ReadonlyRootfs"] is True, service
        assert info["HostConfig"]["CapDrop"] == ["ALL"] and not info["HostConfig"]["CapAdd"], service
    for service in ("postgres", "redis", "scheduler"):
        assert not inspect_container(prod.container(service))["HostConfig"]["PortBindings"], f"{service} is published"


def gunicorn_processes(container: str) -> tuple[list[list[str]], list[list[str]]]:
    """(masters, workers) among the container's gunicorn processes, each as [pid, ppid, args]."""
    top = docker("top", container, "-eo", "pid,ppid,args").stdout.splitlines()[1:]
    gunicorn = [line.split(None, 2) for line in top if "gunicorn" in line]
    masters = [p for p in gunicorn if not any(p[1] == q[0] for q in gunicorn)]
    workers = [p for p in gunicorn if masters and p[1] == masters[0][0]]
    return masters, workers


def test_api_runs_gunicorn_with_the_configured_workers(prod: Deployed) -> None:
    # Healthy means one worker serves; the others may still be booting for a moment.
    masters, workers = until(
        lambda: found if len((found := gunicorn_processes(prod.container("api")))[1]) >= 4 else None,
        timeout=20,
        what="4 gunicorn workers",
    )
    assert len(masters) == 1 and len(workers) == 4, (masters, workers)


def test_killing_the_api_main_process_brings_it_back_healthy(prod: Deployed) -> None:
    name = prod.container("api")
    before = inspect_container(name)
    os.kill(before["State"]["Pid"], signal.SIGKILL)  # the process itself, not `docker kill`/`docker stop`
    until(
        lambda: True if inspect_container(name)["RestartCount"] > before["RestartCount"] else None,
        timeout=30,
        what="Docker restarting the api",
    )
    prod.deployer.wait_healthy(name, timeout=60)
    assert health(prod)[0] == 200


def test_stopping_postgres_turns_health_into_a_503_naming_it(prod: Deployed) -> None:
    name = prod.container("postgres")
    docker("stop", name)
    try:

        def unavailable() -> dict[str, object] | None:
            status, body = health(prod)
            return body if status == 503 else None

        body = until(unavailable, timeout=30, what="the api reporting Postgres down")
        assert body["down"] == ["postgres"]
    finally:
        docker("start", name)
    prod.deployer.wait_healthy(name, timeout=60)
    until(lambda: True if health(prod)[0] == 200 else None, timeout=30, what="the api healthy again")


def test_no_secret_in_image_history_config_or_logs(prod: Deployed) -> None:
    assert_no_secret_leak(prod)


# --- the second and later `up`, against the state the first left (module order matters) ----------


def test_a_second_up_with_nothing_changed_touches_nothing(prod: Deployed) -> None:
    day2.assert_second_up_changes_nothing(prod)


def test_changing_an_environment_value_replaces_exactly_its_readers(prod: Deployed) -> None:
    day2.assert_env_change_replaces_its_readers(prod)


def test_a_source_change_rebuilds_and_replaces_the_application_only(prod: Deployed) -> None:
    day2.assert_source_change_rolls_out_the_application_only(prod)


def postgres_variant(base: str) -> str:
    """Another Postgres image (another id) for an image bump: the stand-in with one label more."""
    variant = f"{base}-variant"
    docker("build", "-t", variant, "-", input=f"FROM {base}\nLABEL ichrisbirch.test.variant=2\n")
    return variant


def cluster_identifier(deployed: Deployed) -> str:
    """Postgres's system identifier: set once by initdb, so it changes only with a new data directory."""
    sql = "SELECT system_identifier FROM pg_control_system()"
    container = deployed.container("postgres")
    return docker("exec", "-u", "postgres", container, "psql", "-U", "ichrisbirch", "-Atc", sql).stdout.strip()


def test_a_postgres_image_change_keeps_its_protected_volume_and_shuts_down_cleanly(
    prod: Deployed, standins: Standins, tmp_path: Path
) -> None:
    title = day2.write_task(prod)
    cluster_before = cluster_identifier(prod)
    old_postgres = day2.LogFollower(prod.container("postgres"), tmp_path)
    result = prod.up(postgresImage=postgres_variant(standins.postgres))
    ops = result.ops()
    assert ops["postgres"] == "replace" and ops["postgres-data"] == "same", result.preview()
    assert ops["api"] == ops["app"] == ops["scheduler"] == "same", "they depend on Postgres by order only"
    assert ops["migrate"] == "replace", "migrations run again against the replaced server"
    assert cluster_identifier(prod) == cluster_before, "the same database cluster: the protected volume was kept"
    shutdown = old_postgres.text()
    assert "received fast shutdown request" in shutdown and "database system is shut down" in shutdown, shutdown
    startup = docker("logs", prod.container("postgres")).stderr + docker("logs", prod.container("postgres")).stdout
    assert "not properly shut down" not in startup and "automatic recovery" not in startup, startup
    until(lambda: True if health(prod)[0] == 200 else None, timeout=30, what="the api reconnected to Postgres")
    assert title in day2.task_titles(prod), "the data survived the replacement"


def test_a_failing_migration_fails_up_with_its_logs_and_the_fix_in_the_source_goes_through(prod: Deployed) -> None:
    broken = "ALTER TABLE tasks ADD COLUMN priority INTEGER NOT NULL DEFAULT no_such_function()"
    day2.add_migration(prod, "task priority", broken)
    before = day2.container_identity(prod)
    failure = day2.failed_up(prod)
    assert "migrate exited with code 1" in str(failure.__cause__)
    assert "no_such_function() does not exist" in str(failure.__cause__), "the error shows migrate's logs"
    after = day2.container_identity(prod)
    assert {s: after[s] for s in ("api", "app", "scheduler")} == {s: before[s] for s in ("api", "app", "scheduler")}
    assert health(prod)[0] == 200, "the old api keeps serving"

    day2.replace_migration(prod, broken, broken.replace("no_such_function()", "0"))
    fixed = prod.up()
    assert {fixed.ops()[s] for s in ("migrate", "api", "app", "scheduler")} == {"replace"}, fixed.preview()
    assert inspect_container(prod.container("migrate"))["State"]["ExitCode"] == 0
    status, body = http("POST", prod.url("api", "/tasks"), body={"title": "after the fix"})
    assert status == 201, body
