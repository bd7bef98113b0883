"""The dev stack deployed for real: healthy, serving, scheduling, and reloading edited source."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator

import pytest

from infra.spec import HealthCheck
from proof.harness.cli import docker, inspect_container, until, wait_healthy
from proof.harness.figures import report
from proof.harness.stacks import Deployed, deploy
from proof.harness.standins import Standins
from tests.integration import day2
from tests.integration.conftest import assert_no_secret_leak
from tests.integration.ops import ops, table

pytestmark = pytest.mark.docker
LONG_RUNNING = ["postgres", "redis", "api", "app", "scheduler"]


@pytest.fixture(scope="module")
def dev(standins: Standins) -> Iterator[Deployed]:
    with deploy("dev", standins) as deployed:
        yield deployed


def test_every_long_running_container_is_healthy(dev: Deployed) -> None:
    for service in LONG_RUNNING:
        state = inspect_container(dev.container(service))["State"]
        assert state["Health"]["Status"] == "healthy", service
    migrate = inspect_container(dev.container("migrate"))["State"]
    assert migrate["Status"] == "exited" and migrate["ExitCode"] == 0


def test_api_health_answers_200(dev: Deployed) -> None:
    status, body = dev.http("GET", "api", "/health")
    assert status == 200, body
    assert json.loads(body)["checks"] == {"postgres": "ok", "redis": "ok"}


def test_a_task_created_through_the_api_shows_on_the_app_page(dev: Deployed) -> None:
    title = f"dev task {uuid.uuid4().hex[:8]}"
    status, body = dev.http("POST", "api", "/tasks", body={"title": title})
    assert status == 201, body
    status, page = dev.http("GET", "app", "/")
    assert status == 200 and title in page


def test_the_scheduler_heartbeat_advances(dev: Deployed) -> None:
    def runs() -> int:
        return int(json.loads(dev.http("GET", "api", "/scheduler")[1])["runs"])

    first = runs()
    later = until(lambda: n if (n := runs()) > first else None, timeout=60, what="a new heartbeat (every 5 s in dev)")
    assert later > first


def test_ops_status_shows_every_service_from_state_and_gates_on_health(dev: Deployed) -> None:
    shown = ops(dev.project, "dev", "status")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    rows = table(shown.stdout)
    assert set(rows) == {*LONG_RUNNING, "migrate"}, shown.stdout
    for service in LONG_RUNNING:
        assert rows[service]["RUNS"] == dev.container(service) and rows[service]["HEALTH"] == "healthy", rows[service]
    assert rows["migrate"]["STATE"] == "exited (0)", rows["migrate"]
    running = docker("inspect", "-f", "{{.Image}}", dev.container("api")).stdout.strip()
    assert rows["api"]["RELEASE"].startswith("ichrisbirch:dev-"), rows["api"]
    assert docker("image", "inspect", "-f", "{{.Id}}", rows["api"]["RELEASE"]).stdout.strip() == running
    assert "last update: #1 update succeeded" in shown.stdout, shown.stdout
    # A stopped Redis is what status exists to catch: exit 1, naming it.
    docker("stop", dev.container("redis"))
    try:
        stopped = ops(dev.project, "dev", "status")
        assert stopped.returncode == 1 and "unhealthy: redis" in stopped.stdout, stopped.stdout
    finally:
        docker("start", dev.container("redis"))
        wait_healthy(dev.container("redis"), 60)


def test_ops_logs_and_exec_find_the_containers_by_state(dev: Deployed) -> None:
    api = dev.container("api")
    logged = ops(dev.project, "dev", "logs", "api", "--since", "24h")
    assert logged.returncode == 0, logged.stderr
    lines = logged.stdout.splitlines()
    assert lines and all(line.startswith(f"{api}| ") for line in lines), lines[:5]
    migrate = ops(dev.project, "dev", "logs", "migrate")
    assert migrate.returncode == 0 and migrate.stdout.startswith(dev.container("migrate") + "| "), migrate.stdout
    ran = ops(dev.project, "dev", "exec", "api", "--", "python", "-c", "import socket; print(socket.gethostname())")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == inspect_container(api)["Config"]["Hostname"], ran.stdout


def test_ops_history_names_each_update_and_its_release(dev: Deployed) -> None:
    shown = ops(dev.project, "dev", "history")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split()[:4] == ["#", "WHEN", "(UTC)", "KIND"], lines
    release = table(ops(dev.project, "dev", "status").stdout)["api"]["RELEASE"]
    assert release.startswith("ichrisbirch:dev-")
    assert any(line.split()[0] == "1" and " update " in line and release in line for line in lines[1:]), shown.stdout
    assert "lock: free" in shown.stdout, shown.stdout


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("nope", "status"), "no stack 'nope' in this project: one of dev"),
        (("dev", "restart"), "no verb 'restart': one of status, logs, exec, maintenance, history"),
        (("dev", "logs", "web"), "the dev stack has no service 'web': one of api, app, migrate, postgres"),
        (("dev", "maintenance", "on"), "maintenance: the dev stack runs no ingress"),
        (("dev", "exec", "api"), "exec needs a command after --"),
    ],
)
def test_ops_refuses_bad_input_in_one_line_and_changes_nothing(dev: Deployed, args: tuple[str, ...], said: str) -> None:
    stack_file = (dev.project.dir / "Pulumi.dev.yaml").read_text()
    refused = ops(dev.project, *args)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert said in line, line
    assert (dev.project.dir / "Pulumi.dev.yaml").read_text() == stack_file, "the stack's config is untouched"


def test_ops_says_when_a_stack_is_not_deployed(dev: Deployed) -> None:
    (dev.project.dir / "Pulumi.test.yaml").write_text("config:\n  ichrisbirch:environment: test\n")
    try:
        refused = ops(dev.project, "test", "status")
    finally:
        (dev.project.dir / "Pulumi.test.yaml").unlink()
    assert refused.returncode == 2 and "the test stack is not deployed" in refused.stderr, refused.stderr


def test_editing_the_bind_mounted_source_reloads_the_api(dev: Deployed) -> None:
    source = dev.app_dir / "ichrisbirch" / "__init__.py"
    original = source.read_text()
    started_at = inspect_container(dev.container("api"))["State"]["StartedAt"]
    marker = f"0.1.0+reload.{uuid.uuid4().hex[:6]}"
    try:
        source.write_text(re.sub(r'__version__ = ".*"', f'__version__ = "{marker}"', original))
        edited = time.monotonic()

        def reloaded() -> float | None:
            status, body = dev.http("GET", "api", "/", timeout=2)
            return time.monotonic() - edited if status == 200 and json.loads(body)["version"] == marker else None

        # A bound a loaded machine keeps (the reloader polls, then a worker boots); the figure is reported.
        seconds = until(reloaded, timeout=60, what="the api answering with the edited source", interval=0.25)
    finally:
        source.write_text(original)
    assert inspect_container(dev.container("api"))["State"]["StartedAt"] == started_at, "the container restarted"
    report(f"dev hot reload: the api answered with the edited source {seconds:.1f} s after the edit")


def test_no_secret_in_image_history_config_or_logs(dev: Deployed) -> None:
    assert_no_secret_leak(dev)


# --- the second and later `up`, against the state the first left (module order matters) ----------


def test_a_second_up_with_nothing_changed_touches_nothing(dev: Deployed) -> None:
    day2.assert_second_up_changes_nothing(dev)


def test_changing_an_environment_value_replaces_exactly_its_readers(dev: Deployed) -> None:
    day2.assert_env_change_replaces_its_readers(dev, readers={"scheduler"})


def test_a_source_change_rebuilds_and_replaces_the_application_only(dev: Deployed) -> None:
    day2.assert_source_change_rolls_out_the_application_only(dev)


def test_removing_a_service_from_the_program_deletes_its_container(dev: Deployed) -> None:
    day2.assert_removing_a_service_deletes_its_container(dev, "scheduler")


def test_a_changed_health_check_replaces_the_container(dev: Deployed) -> None:
    api = dev.resource("api")
    health = HealthCheck(test=tuple(api["inputs"]["healthcheck"]["tests"]), interval_seconds=4)
    result = day2.assert_change_replaces(dev, "api", "healthcheck", health=health)
    assert inspect_container(dev.container("api"))["Config"]["Healthcheck"]["Interval"] == 4_000_000_000
    assert result.ops()["app"] == "same", "the app depends on the api only by order: not replaced"


def test_refresh_forgets_a_container_removed_by_hand_and_records_those_stopped_by_hand(dev: Deployed) -> None:
    dev.up()  # the committed program again: the test before deployed the api with another health check
    # By hand, outside the program: Redis removed, the scheduler and the app (which publishes a port) stopped.
    redis = dev.container("redis")
    scheduler, app = (inspect_container(dev.container(name))["Id"] for name in ("scheduler", "app"))
    docker("rm", "-f", redis)
    docker("stop", scheduler, app)
    refreshed = dev.refresh()
    # The refresh records exactly what was done by hand: Redis gone, two containers stopped.
    assert refreshed.ops()["redis"] == "delete" and "redis" not in dev.ids(), refreshed.preview()
    changed = {name: refreshed.drift(name) for name in refreshed.touched("update")}
    assert changed.keys() == {"scheduler", "app"}, refreshed.preview()
    assert set(refreshed.ops().values()) == {"same", "update", "delete"}, refreshed.preview()
    assert "mustRun" in changed["scheduler"] and "ports" not in changed["scheduler"], changed
    assert {"mustRun", "ports"} <= changed["app"], "a stopped container reads back no ports"

    # The next `up` does what the engine would: creates Redis again; starts the scheduler in place
    # (mustRun false -> true: an Update); replaces the app, whose published port now differs.
    result = dev.up()
    ops = result.ops()
    assert ops["redis"] == "create" and ops["scheduler"] == "update" and ops["app"] == "replace", result.preview()
    assert inspect_container(dev.container("scheduler"))["Id"] == scheduler, "the same scheduler, started again"
    assert inspect_container(dev.container("app"))["Id"] != app
    for name in ("redis", "scheduler", "app"):
        wait_healthy(dev.container(name), timeout=120)
    until(lambda: True if dev.http("GET", "api", "/health")[0] == 200 else None, 60, "the api healthy again")
    others = {name: op for name, op in ops.items() if name not in ("redis", "scheduler", "app")}
    assert set(others.values()) == {"same"}, f"only the drift made by hand: {result.preview()}"
    # ... and nothing after that: the next `up` has nothing to do.
    again = dev.up()
    assert set(again.ops().values()) == {"same"}, again.preview()
