"""The test stack deployed for real: its `tests` container runs the application's suite against
the live services on the stack's own network and exits 0."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import TEST_SECRETS
from tests.integration.conftest import Deployed, Standins, assert_no_secret_leak, deploy, inspect_container, report

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def test_stack(standins: Standins) -> Iterator[Deployed]:
    with deploy("test", standins) as deployed:
        yield deployed


def test_the_suite_runs_against_the_live_stack_and_passes(test_stack: Deployed) -> None:
    tests = test_stack.run.named("docker:index/container:Container", "tests")
    logs = test_stack.deployer.client().logs(test_stack.container("tests")).decode(errors="replace")
    print(f"--- output of {test_stack.container('tests')} ---\n{logs}")
    summary = next((line for line in reversed(logs.splitlines()) if " passed" in line), "no summary line")
    report(f"test: the application's suite in {test_stack.container('tests')}: {summary.strip()}")
    assert test_stack.run.outputs["tests_exit_code"] == 0, logs
    assert " passed" in logs and " failed" not in logs
    assert not any(secret in logs for secret in TEST_SECRETS.values())
    assert tests.inputs["command"][:3] == ["python", "-m", "pytest"]


def test_containers_are_attached_to_the_stack_network_only(test_stack: Deployed) -> None:
    for service in ("postgres", "redis", "migrate", "api", "app", "scheduler", "tests"):
        networks = inspect_container(test_stack.container(service))["NetworkSettings"]["Networks"]
        assert list(networks) == ["icb-test"], f"{service} is on {list(networks)}"
        assert service in networks["icb-test"]["Aliases"]


def test_postgres_keeps_throwaway_data_on_tmpfs_without_fsync(test_stack: Deployed) -> None:
    postgres = inspect_container(test_stack.container("postgres"))
    assert "/var/lib/postgresql/data" in postgres["HostConfig"]["Tmpfs"]
    assert not postgres["Mounts"] or all(m["Type"] != "volume" for m in postgres["Mounts"])
    fsync = test_stack.deployer.client().exec_create(
        test_stack.container("postgres"),
        ["psql", "-U", "ichrisbirch", "-d", "ichrisbirch", "-Atc", "SHOW fsync"],
        user="postgres",
    )
    assert test_stack.deployer.client().exec_start(fsync).decode().strip() == "off"


def test_no_secret_in_image_history_config_or_logs(test_stack: Deployed) -> None:
    assert_no_secret_leak(test_stack)
