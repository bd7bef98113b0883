"""The test stack deployed for real: its `tests` container runs the application's suite against
the live services on the stack's own network and exits 0."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from proof.harness.cli import docker, inspect_container
from proof.harness.figures import report
from proof.harness.stacks import Deployed, deploy, psql
from proof.harness.standins import Standins
from proof.mocks import TEST_SECRETS
from tests.integration import day2
from tests.integration.conftest import assert_no_secret_leak

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def test_stack(standins: Standins) -> Iterator[Deployed]:
    with deploy("test", standins) as deployed:
        yield deployed


def test_the_suite_runs_against_the_live_stack_and_passes(test_stack: Deployed) -> None:
    tests = test_stack.resource("tests")
    logs = docker("logs", test_stack.container("tests")).stdout
    print(f"--- output of {test_stack.container('tests')} ---\n{logs}")
    summary = next((line for line in reversed(logs.splitlines()) if " passed" in line), "no summary line")
    report(f"test: the application's suite in {test_stack.container('tests')}: {summary.strip()}")
    assert test_stack.outputs["tests_exit_code"] == 0, logs
    assert " passed" in logs and " failed" not in logs
    assert not any(secret in logs for secret in TEST_SECRETS.values())
    assert tests["inputs"]["command"][:3] == ["python", "-m", "pytest"]
    # Its `stack` tests reached the deployed api and app through the ingress, by name, over TLS.
    through_ingress = re.findall(r"^PASSED tests/test_through_the_ingress.py::(\w+)", logs, re.MULTILINE)
    assert len(through_ingress) == 3, logs


def test_containers_are_attached_to_the_stack_network_only(test_stack: Deployed) -> None:
    for service in ("postgres", "redis", "migrate", "api", "app", "scheduler", "tests"):
        networks = inspect_container(test_stack.container(service))["NetworkSettings"]["Networks"]
        assert list(networks) == ["icb-test"], f"{service} is on {list(networks)}"
        assert service in networks["icb-test"]["Aliases"]


def test_postgres_keeps_throwaway_data_on_tmpfs_without_fsync(test_stack: Deployed) -> None:
    postgres = inspect_container(test_stack.container("postgres"))
    assert "/var/lib/postgresql/data" in postgres["HostConfig"]["Tmpfs"]
    assert not postgres["Mounts"] or all(m["Type"] != "volume" for m in postgres["Mounts"])
    assert psql(test_stack, "SHOW fsync").strip() == "off"


def test_no_secret_in_image_history_config_or_logs(test_stack: Deployed) -> None:
    assert_no_secret_leak(test_stack)


# --- the second and later `up`, against the state the first left (module order matters) ----------


def test_a_second_up_with_nothing_changed_touches_nothing(test_stack: Deployed) -> None:
    day2.assert_second_up_changes_nothing(test_stack)


def test_changing_an_environment_value_replaces_exactly_its_readers(test_stack: Deployed) -> None:
    day2.assert_env_change_replaces_its_readers(test_stack, readers={"scheduler", "tests"})
    assert test_stack.outputs["tests_exit_code"] == 0, "the suite ran again against the new scheduler"


def test_a_source_change_rebuilds_and_replaces_the_application_only(test_stack: Deployed) -> None:
    result = day2.assert_source_change_rolls_out_the_application_only(test_stack)
    assert result.ops()["tests"] == "replace" and test_stack.outputs["tests_exit_code"] == 0


def test_a_migration_failing_for_a_reason_outside_the_source_recovers_with_replace(test_stack: Deployed) -> None:
    # Someone made a table by hand that the next migration creates: `up` fails with migrate's logs.
    psql(test_stack, "CREATE TABLE audit_log (id integer)")
    day2.add_migration(test_stack, "audit log", "CREATE TABLE audit_log (id BIGSERIAL PRIMARY KEY, note TEXT)")
    api_before = day2.container_identity(test_stack)["api"]
    failure = day2.failed_up(test_stack)
    assert "migrate exited with code 1" in failure.result.error, failure
    assert 'relation "audit_log" already exists' in failure.result.error, "the error shows migrate's logs"
    assert day2.container_identity(test_stack)["api"] == api_before, "the old api keeps running"
    # The cause is removed outside the source: the recorded exit code still fails the next `up` ...
    psql(test_stack, "DROP TABLE audit_log")
    again = day2.failed_up(test_stack)
    assert again.result.ops()["migrate"] == "same", again.result.preview()
    # ... until migrate is replaced, as the README says: pulumi up --replace <migrate's URN>.
    recovered = test_stack.up(replace=("migrate",))
    assert recovered.ops()["migrate"] == "replace" and recovered.ops()["api"] == "replace", recovered.preview()
    assert "audit_log" in psql(test_stack, "SELECT tablename FROM pg_tables WHERE tablename = 'audit_log'")


# Last: the next `up` of the committed program would replace Postgres back.
def test_a_changed_tmpfs_replaces_postgres_and_migrations_run_again(test_stack: Deployed) -> None:
    result = day2.assert_change_replaces(
        test_stack, "postgres", "tmpfs", tmpfs={"/var/lib/postgresql/data": "rw,size=384m"}
    )
    tmpfs = inspect_container(test_stack.container("postgres"))["HostConfig"]["Tmpfs"]
    assert tmpfs == {"/var/lib/postgresql/data": "rw,size=384m"}
    # Postgres has a fixed name, so the engine deletes it first; migrate, which records the server
    # it ran against, is replaced after it, create-first, and ran against the new (empty) server.
    ops = result.ops()
    assert result.replaced_first_by_delete("postgres"), result.preview()
    assert ops["migrate"] == "replace" and not result.replaced_first_by_delete("migrate"), result.preview()
    assert result.order("postgres", "migrate") == ["postgres", "migrate"], result.preview()
    migrate = inspect_container(test_stack.container("migrate"))
    new_postgres = inspect_container(test_stack.container("postgres"))["Id"]
    assert migrate["Config"]["Labels"]["ichrisbirch.ran-against.postgres"] == new_postgres
    assert migrate["State"]["ExitCode"] == 0
    # What serves is left running (it reconnects): the api, app, scheduler, router and ingress, and
    # the stack's suite, which ran against them.
    for service in ("api", "app", "scheduler", "router", "ingress", "tests"):
        assert ops[service] == "same", result.preview()
    day2.write_task(test_stack)
