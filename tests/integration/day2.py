"""Checks of the second and later `pulumi up` of a deployed stack, shared by the per-stack modules.

Each runs `pulumi up` again against the state the previous run left, and checks what the run did
(its steps, from the engine's events) and what Docker shows (container ids, data, logs).
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from infra.identity import PROJECT_DIR
from proof.harness.cli import DOCKER, inspect_container
from proof.harness.figures import report
from proof.harness.pulumi import RunFailed, RunResult
from proof.harness.stacks import Deployed, bump_version, changed, edit_source, full, program_with, psql, without
from proof.resources import CONTAINER

# The pack as a binary analyzer (policy/analyzer): the language host scripts/toolchain builds cannot
# start a Python policy pack for this CLI (docs/testing.md).
POLICY_PACK = PROJECT_DIR / "policy" / "analyzer"
APP_CONTAINERS = {"migrate", "api", "app", "scheduler", "tests"}


def container_identity(deployed: Deployed) -> dict[str, tuple[str, str]]:
    """Service -> (container id, start time) of every container the stack has on the engine."""
    identity = {}
    for name in deployed.ids(CONTAINER):
        info = inspect_container(deployed.container(name))
        identity[name] = (info["Id"], info["State"]["StartedAt"])
    return identity


def assert_second_up_changes_nothing(deployed: Deployed) -> None:
    """`pulumi preview --expect-no-changes --policy-pack` passes (prod with no violation at all, dev
    and test with advisory ones only), and a second `up` takes no step but `same`."""
    checked = deployed.preview(expect_no_changes=True, policy_packs=[str(POLICY_PACK)])
    assert "ichrisbirch-guard-rails" in checked.stdout, f"the policy pack did not run:\n{checked.stdout[-3000:]}"
    assert "[mandatory]" not in checked.stdout, checked.stdout[-6000:]
    advisories = re.findall(r"\[advisory\]\s+(\S+)", checked.stdout)
    if deployed.config[full("environment")] == "prod":
        assert advisories == [], checked.stdout[-6000:]
    report(f"{deployed.stack}: `pulumi preview --policy-pack`: {len(advisories)} advisory findings, none mandatory")
    before = container_identity(deployed)
    result = deployed.up()
    assert set(result.ops().values()) == {"same"}, result.preview()
    assert container_identity(deployed) == before, "a container was touched by an `up` with nothing changed"
    report(f"{deployed.stack}: second `up` with nothing changed: {len(result.steps)} resources, all `same`")


def assert_env_change_replaces_its_readers(deployed: Deployed, readers: set[str]) -> None:
    """A new heartbeat interval replaces exactly `readers`: written out by the caller, not derived
    from the program, so a program that gives the variable to the wrong containers fails."""
    before = container_identity(deployed)
    current = int(deployed.config.get("ichrisbirch:heartbeatSeconds", "60"))
    result = deployed.up(heartbeatSeconds=str(current + 1))
    assert result.touched("replace") == readers, result.preview()
    assert set(result.ops().values()) == {"same", "replace"}, result.preview()
    after = container_identity(deployed)
    for name in before:
        assert (after[name] != before[name]) == (name in readers), name
    env = inspect_container(deployed.container("scheduler"))["Config"]["Env"]
    assert f"SCHEDULER_HEARTBEAT_SECONDS={current + 1}" in env


def job_runs(deployed: Deployed, job: str, seconds_ago: float) -> list[tuple[str, float]]:
    """(runner, when as epoch seconds) of each run of `job` in the last `seconds_ago` seconds, in order."""
    rows = psql(
        deployed,
        f"SELECT runner, extract(epoch FROM ran_at) FROM job_runs WHERE job = '{job}' "
        f"AND ran_at > now() - interval '{seconds_ago:.0f} seconds' ORDER BY ran_at, id",
    )
    return [(runner, float(at)) for runner, at in (line.split("|") for line in rows.splitlines())]


def scheduler_problems(runs: list[tuple[str, float]], interval: float) -> list[str]:
    """What in these runs of an interval job shows two schedulers at once or a job run twice.

    One scheduler at a time means strict order: each runner's runs form one unbroken block, and no
    block begins before the one before it ended. A job run twice means more runs in a runner's
    block than its schedule allows: one on taking over, then one an interval.
    """
    problems = []
    blocks: list[tuple[str, list[float]]] = []
    for runner, at in runs:
        if blocks and blocks[-1][0] == runner:
            blocks[-1][1].append(at)
        else:
            blocks.append((runner, [at]))
    order = [runner for runner, _ in blocks]
    if len(order) != len(set(order)):
        problems.append(f"runners interleave (two schedulers running jobs at once): {order}")
    for runner, times in blocks:
        allowed = int((times[-1] - times[0]) / interval) + 2
        if len(times) > allowed:
            problems.append(
                f"{runner} ran the job {len(times)} times in {times[-1] - times[0]:.1f} s (at most {allowed})"
            )
    return problems


def write_task(deployed: Deployed) -> str:
    title = f"day2 {uuid.uuid4().hex[:8]}"
    status, body = deployed.http("POST", "api", "/tasks", body={"title": title}, timeout=10)
    assert status == 201, body
    return title


def task_titles(deployed: Deployed) -> set[str]:
    status, body = deployed.http("GET", "api", "/tasks", timeout=10)
    assert status == 200, body
    return {task["title"] for task in json.loads(body)}


def assert_source_change_rolls_out_the_application_only(deployed: Deployed) -> RunResult:
    title = write_task(deployed)
    before = container_identity(deployed)
    version = bump_version(deployed)
    result = deployed.up()
    ops = result.ops()
    assert ops["app-image"] == "update", result.preview()
    application = APP_CONTAINERS & set(ops)
    assert result.touched("replace") == application, result.preview()
    for untouched in ("postgres", "redis", "network", "postgres-image", "redis-image"):
        assert ops[untouched] == "same", (untouched, result.preview())
    after = container_identity(deployed)
    assert after["postgres"] == before["postgres"] and after["redis"] == before["redis"]
    migrate = inspect_container(deployed.container("migrate"))
    assert migrate["Id"] != before["migrate"][0] and migrate["State"]["ExitCode"] == 0, "migrate re-ran and passed"
    status, body = deployed.http("GET", "api", "/", timeout=10)
    assert status == 200 and json.loads(body)["version"] == version, body
    assert title in task_titles(deployed), "data written before the rollout is still there"
    return result


def add_migration(deployed: Deployed, name: str, sql: str) -> None:
    """Append a migration (the next version) to this deployment's copy of the application."""
    source = (deployed.app_dir / "ichrisbirch" / "migrate.py").read_text()
    version = max(int(v) for v in re.findall(r"^    \(\n        (\d+),", source, re.MULTILINE)) + 1
    entry = f'    ({version}, "{name}", """{sql}"""),\n]\n_LOCK_ID'

    def edit(text: str) -> str:
        edited = re.sub(r"\n\]\n_LOCK_ID", "\n" + entry, text, count=1)
        assert edited != text, "migrate.py has the expected shape"
        return edited

    edit_source(deployed, "ichrisbirch/migrate.py", edit)


def replace_migration(deployed: Deployed, old_sql: str, new_sql: str) -> None:
    edit_source(deployed, "ichrisbirch/migrate.py", lambda text: text.replace(old_sql, new_sql))


def failed_up(deployed: Deployed, **kwargs: Any) -> RunFailed:
    with pytest.raises(RunFailed) as failure:
        deployed.up(**kwargs)
    return failure.value


def assert_removing_a_service_deletes_its_container(deployed: Deployed, service: str) -> None:
    before = container_identity(deployed)
    result = deployed.up(program=program_with(without(service)))
    assert result.ops()[service] == "delete", result.preview()
    assert {op for name, op in result.ops().items() if name != service} == {"same"}, result.preview()
    gone = subprocess.run([DOCKER, "inspect", deployed.container(service)], capture_output=True, check=False)
    assert gone.returncode != 0, f"{deployed.container(service)} still exists"
    after = container_identity(deployed)
    assert after == {k: v for k, v in before.items() if k != service}
    back = deployed.up()
    assert back.ops()[service] == "create", back.preview()


def assert_change_replaces(deployed: Deployed, service: str, field: str, **spec_fields: Any) -> RunResult:
    before = container_identity(deployed)
    result = deployed.up(program=program_with(changed(service, **spec_fields)))
    assert result.ops()[service] == "replace", result.preview()
    assert field in result.replaces(service), result.preview()
    assert container_identity(deployed)[service] != before[service]
    return result


class LogFollower:
    """`docker logs -f` of a container from now until it is removed: what it said while shutting down."""

    def __init__(self, container: str, workspace: Path) -> None:
        self.path = workspace / f"{container}.log"
        self._file = self.path.open("w")
        self._process = subprocess.Popen(
            [DOCKER, "logs", "-f", "--since", "0s", container], stdout=self._file, stderr=subprocess.STDOUT
        )

    def text(self) -> str:
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
        self._file.close()
        return self.path.read_text()
