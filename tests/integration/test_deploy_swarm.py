"""Prod with `orchestrator: swarm`, deployed by the real CLI on the three-node test swarm
(tests/swarm/up.sh): the image built and pushed by the manager's engine, Swarm secrets and configs,
services converged and spread over the nodes, requests through the ingress on the manager."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator

import pytest

from infra.engine import Engine
from infra.identity import PROJECT_DIR
from infra.releases import RELEASE_ENV, StackReleases
from infra.restore import WRITERS, StackEngine, SwarmStack
from infra.settings import DEFAULT_REQUEST_HOLD_SECONDS
from proof.harness.cli import until
from proof.harness.figures import report
from proof.harness.load import LoadLoop, under_load
from proof.harness.pulumi import RunFailed, RunResult
from proof.harness.stacks import api_version, bump_version, edit_source
from proof.harness.standins import Standins
from proof.harness.swarm import NODES, SwarmProd, node_socket, on, swarm_prod, swarm_script
from proof.mocks import TEST_SECRETS
from tests.integration.ops import ops, table, timed_script

pytestmark = pytest.mark.docker
# The request loop's floor here: each request is a new TLS connection into a namespace, answered by
# three engines sharing two cores (18 to 32 a second measured); a dead or stalled
# worker shows as a rate under it.
# The longest the api and app may go without a successful answer when a worker's engine stops:
# every service has a task on another node, and the ingress's checks take a lost server out in
# seconds (3 failed checks); the swarm's own rescheduling (tens of seconds) is not waited for.
STOPPED_NODE_MAX_GAP = 10.0
HOLD_SECONDS = DEFAULT_REQUEST_HOLD_SECONDS


@pytest.fixture(scope="module", name="swarm_prod")
def swarm_prod_fixture(standins: Standins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwarmProd]:
    with swarm_prod(standins, tmp_path_factory.mktemp("swarm")) as prod:
        report(f"swarm prod: first `up` converged in {prod.first_up_seconds:.1f} s")
        yield prod


def nodes_of(prod: SwarmProd, service: str) -> list[str]:
    listed = on(prod.manager, "service", "ps", f"icb-prod-{service}", "--filter", "desired-state=running",
                "--format", "{{.Node}}")  # fmt: skip
    return listed.stdout.split()


def versions(prod: SwarmProd) -> dict[str, int]:
    """Each service's version index: it moves with every update of the service."""
    ids = on(prod.manager, "service", "ls", "-q").stdout.split()
    listed = on(prod.manager, "service", "inspect", "-f", "{{.Spec.Name}} {{.Version.Index}}", *ids).stdout
    return {name: int(index) for name, index in (line.split() for line in listed.splitlines())}


def swarm_secrets(prod: SwarmProd) -> dict[str, str]:
    listed = on(prod.manager, "secret", "ls", "--format", "{{.Name}} {{.ID}}").stdout
    return dict(line.split() for line in listed.splitlines())


def running_tasks(prod: SwarmProd) -> list[tuple[str, str, str]]:
    """(service, node, current state) of every task the swarm wants running."""
    ids = on(prod.manager, "service", "ls", "-q").stdout.split()
    listed = on(prod.manager, "service", "ps", *ids, "--filter", "desired-state=running",
                "--format", "{{.Name}} {{.Node}} {{.CurrentState}}").stdout  # fmt: skip
    return [
        (name.rsplit(".", 1)[0], node, state)
        for name, node, state in (line.split(None, 2) for line in listed.splitlines())
    ]


def full_strength_without(prod: SwarmProd, node: str) -> bool:
    """Every service has all its replicas running, none of them on `node`."""
    replicas = dict(
        line.split()
        for line in on(prod.manager, "service", "ls", "--format", "{{.Name}} {{.Replicas}}").stdout.splitlines()
    )
    wanted = {name: int(r.split("/")[1]) for name, r in replicas.items()}
    running = [(svc, n) for svc, n, state in running_tasks(prod) if state.startswith("Running")]
    return all(n != node for _, n in running) and all(
        sum(1 for svc, _ in running if svc == name) == count for name, count in wanted.items()
    )


def test_prod_converges_spread_over_the_nodes_and_serves_through_the_ingress(swarm_prod: SwarmProd) -> None:
    prod = swarm_prod
    listed = on(prod.manager, "service", "ls", "--format", "{{.Name}} {{.Replicas}}").stdout.splitlines()
    assert dict(line.split(" ", 1) for line in listed) == {
        "icb-prod-postgres": "1/1", "icb-prod-redis": "1/1", "icb-prod-backup": "1/1",
        "icb-prod-api": "2/2", "icb-prod-app": "2/2",
        "icb-prod-scheduler": "1/1", "icb-prod-router": "2/2", "icb-prod-ingress": "1/1",
    }  # fmt: skip
    assert len(set(nodes_of(prod, "api"))) == 2, "the two api tasks on two nodes"
    assert len(set(nodes_of(prod, "router"))) == 2, "losing a node never loses the only router"
    assert nodes_of(prod, "postgres") == nodes_of(prod, "redis") == nodes_of(prod, "backup") == ["icb-worker1"]
    assert nodes_of(prod, "ingress") == ["icb-manager"]
    status, body = prod.http("GET", "api", "/health")
    assert status == 200 and json.loads(body)["status"] == "ok", body
    # The backup service's first dump, taken on the data node with the password from its secret file.
    backup = until(lambda: json.loads(prod.http("GET", "api", "/health")[1])["backup"], 60, "the first dump")
    assert backup["bytes"] > 0, backup
    status, page = prod.http("GET", "app", "/")
    assert status == 200 and "<html" in page.lower()


def test_ops_status_logs_and_exec_reach_the_services_on_their_nodes(swarm_prod: SwarmProd) -> None:
    prod = swarm_prod
    stack = prod.project.name
    shown = ops(prod.project, stack, "status")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    rows = table(shown.stdout)
    assert rows["api"]["STATE"] == "2/2 running" and rows["api"]["HEALTH"] == "ok", rows["api"]
    assert sorted(rows["api"]["WHERE"].split(",")) == sorted(set(nodes_of(prod, "api"))), rows["api"]
    assert rows["postgres"]["WHERE"] == "icb-worker1", rows["postgres"]
    logged = ops(prod.project, stack, "logs", "api", "--since", "24h")
    assert logged.returncode == 0 and logged.stdout, logged.stderr
    # Each line names its task and node (`docker service logs`): icb-prod-api.1.<task>@<node> | ...
    task_lines = [
        line for line in logged.stdout.splitlines() if re.search(r"icb-prod-api\.\d+\.\w+@icb-[\w-]+\s*\|", line)
    ]
    assert len(task_lines) == len(logged.stdout.splitlines()), logged.stdout[:2000]
    ran = ops(prod.project, stack, "exec", "api", "--", "id", "-u")
    assert ran.returncode == 0 and ran.stdout.strip() == "10001", ran.stdout + ran.stderr


def test_no_secret_value_in_any_service_task_or_container(swarm_prod: SwarmProd) -> None:
    prod = swarm_prod
    seen = []
    services = on(prod.manager, "service", "ls", "-q").stdout.split()
    seen.append(on(prod.manager, "service", "inspect", *services).stdout)
    tasks = on(prod.manager, "service", "ps", "-q", *services).stdout.split()
    seen.append(on(prod.manager, "inspect", *tasks).stdout)
    for node in NODES:
        host = node_socket(node)
        containers = on(host, "ps", "-q").stdout.split()
        assert containers, f"no task runs on {node}"
        seen.append(on(host, "inspect", *containers).stdout)
    text = "\n".join(seen)
    for name, value in TEST_SECRETS.items():
        assert value not in text, f"{name}'s value appears in docker inspect"
    assert "POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password" in text


def test_a_second_up_with_nothing_changed_touches_nothing(swarm_prod: SwarmProd) -> None:
    """Judged against what the provider's Read wrote back (services, secrets, configs, networks as
    the swarm reports them), then again after a refresh."""
    prod = swarm_prod
    before = versions(prod)
    prod.project.preview(expect_no_changes=True)
    result = prod.up()
    assert set(result.ops().values()) == {"same"}, result.preview()
    services = [r for r in prod.project.resources() if r["type"] == "docker:index/service:Service"]
    assert services and all(r["outputs"]["taskSpec"]["containerSpec"]["image"] for r in services)
    refreshed = prod.project.refresh()
    assert set(refreshed.ops().values()) == {"same"}, refreshed.preview()
    result = prod.up()
    assert set(result.ops().values()) == {"same"}, result.preview()
    assert versions(prod) == before, "no service was updated"


def test_a_rotated_secret_is_a_new_secret_its_readers_move_to_then_the_old_one_goes(swarm_prod: SwarmProd) -> None:
    prod = swarm_prod
    secrets_before, versions_before = swarm_secrets(prod), versions(prod)
    (old_name,) = [name for name in secrets_before if name.startswith("icb-prod-secret-flask-secret-key-")]
    rotated = "flask-rotated-4d9c1b7e"
    rotation = under_load(LoadLoop(prod, max_seconds=300), lambda: prod.up(flaskSecretKey=rotated))
    result, load = rotation.result, rotation.load
    ops = result.ops()
    assert rotation.uncovered() == []
    assert ops.pop("icb-prod-secret-flask-secret-key") == "replace" and ops.pop("app") == "update", result.preview()
    assert set(ops.values()) == {"same"}, "only the secret and its one reader"
    secrets_after = swarm_secrets(prod)
    (new_name,) = [name for name in secrets_after if name.startswith("icb-prod-secret-flask-secret-key-")]
    assert new_name != old_name and old_name not in secrets_after, "the old secret is deleted"
    assert {k: v for k, v in secrets_after.items() if k != new_name} == {
        k: v for k, v in secrets_before.items() if k != old_name
    }, "every other secret as it was"
    mounted = json.loads(on(prod.manager, "service", "inspect", "-f",
                            "{{json .Spec.TaskTemplate.ContainerSpec.Secrets}}", "icb-prod-app").stdout)  # fmt: skip
    assert [m["SecretName"] for m in mounted] == [new_name] and mounted[0]["SecretID"] == secrets_after[new_name]
    versions_after = versions(prod)
    assert versions_after.pop("icb-prod-app") > versions_before.pop("icb-prod-app")
    assert versions_after == versions_before, "no other service was updated"
    inspected = on(prod.manager, "service", "inspect", "icb-prod-app").stdout
    assert rotated not in inspected
    assert load.failed == [], f"{len(load.failed)} failed {load.failures_by_kind()}: {load.failed[:5]}"
    report(
        f"swarm secret rotation under load: {len(load.outcomes)} requests at {load.rate:.0f}/s, 0 failed, "
        f"longest without a successful answer {load.longest_without_service():.1f} s;"
        f" the `up` took {rotation.took:.1f} s"
    )


def test_a_rolling_update_under_load_fails_no_request(swarm_prod: SwarmProd) -> None:
    prod = swarm_prod
    v1 = api_version(prod)
    v2 = bump_version(prod)
    update = under_load(LoadLoop(prod, max_seconds=600), prod.up)
    result, load = update.result, update.load
    ops = result.ops()
    assert ops["app-image"] == "update" and ops["api"] == ops["app"] == ops["scheduler"] == "update", result.preview()
    assert load.failed == [], f"{len(load.failed)} failed {load.failures_by_kind()}: {load.failed[:5]}"
    assert set(load.versions()) <= {v1, v2} and load.versions()[-1] == v2, load.versions()
    assert load.switch_uncovered(v1, v2) == []
    assert len(set(nodes_of(prod, "api"))) == 2
    report(
        f"swarm rolling update v1 -> v2 under load: {len(load.outcomes)} requests at {load.rate:.0f}/s, "
        f"{len(load.failed)} failed, longest without a successful answer {load.longest_without_service():.1f} s; "
        f"the `up` took {update.took:.1f} s"
    )


def test_a_rollback_puts_the_previous_release_back_on_every_node_under_load(
    swarm_prod: SwarmProd, monkeypatch: pytest.MonkeyPatch
) -> None:
    prod = swarm_prod
    releases = StackReleases(
        "prod", Engine(prod.manager), f"{prod.config['ichrisbirch:imageRegistry']}/ichrisbirch", keep=5
    )
    listed = releases.releases()
    assert len(listed) >= 2 and listed[0].running, [r.line() for r in listed]
    running, previous = listed[0], releases.previous()
    serving = api_version(prod)

    def rollback() -> RunResult:
        monkeypatch.setenv(RELEASE_ENV, previous.tag)  # what scripts/rollback gives its `pulumi up`
        try:
            return prod.up()
        finally:
            monkeypatch.delenv(RELEASE_ENV)

    rolled = under_load(LoadLoop(prod, max_seconds=600), rollback)
    result, load = rolled.result, rolled.load
    assert not result.built(), "nothing built: every node pulls the release by its digest"
    assert result.ops()["api"] == "update", result.preview()
    assert load.failed == [], f"{len(load.failed)} failed {load.failures_by_kind()}: {load.failed[:5]}"
    rolled_back = api_version(prod)
    assert rolled_back != serving and load.versions()[-1] == rolled_back, load.versions()
    assert load.switch_uncovered(serving, rolled_back) == []
    assert [r.tag for r in releases.releases() if r.running] == [previous.tag]
    # The next plain `up` builds (here: the same source as before, from the cache) and rolls forward.
    prod.up()
    assert api_version(prod) == serving and [r.tag for r in releases.releases() if r.running] == [running.tag]
    report(
        f"swarm rollback to the previous release under load: {len(load.outcomes)} requests, "
        f"{len(load.failed)} failed; the `up` took {rolled.took:.1f} s, nothing built"
    )


def test_a_postgres_setting_change_on_the_swarm_fails_no_request(swarm_prod: SwarmProd) -> None:
    prod = swarm_prod
    loop = LoadLoop(prod, max_seconds=600, request_timeout=HOLD_SECONDS + 20)
    changed = under_load(loop, lambda: prod.up(postgresParameters='["max_connections=150"]'))
    result, load = changed.result, changed.load
    ops = result.ops()
    assert ops["postgres"] == "update", result.preview()
    assert all(ops[s] == "same" for s in ("api", "app", "scheduler", "router", "ingress")), result.preview()
    assert swarm_psql(prod, "SHOW max_connections").strip() == "150"
    assert load.failed == [], f"{len(load.failed)} failed {load.failures_by_kind()}: {load.failed[:5]}"
    kept = set(swarm_psql(prod, "SELECT title FROM tasks").splitlines())
    acknowledged, lost = load.unkept_writes(kept, "title")
    assert acknowledged and not lost, f"lost: {lost[:5]}"
    report(
        f"swarm Postgres setting changed under load (its task stopped, then started): 0 of {len(load.outcomes)}"
        f" requests failed, the longest waited {load.slowest():.1f} s; {acknowledged} acknowledged"
        f" writes, all kept; the `up` took {changed.took:.1f} s"
    )


def test_a_version_whose_health_check_fails_rolls_back_by_itself(swarm_prod: SwarmProd) -> None:
    # Last: it leaves the state with the failed spec recorded, as the provider does.
    prod = swarm_prod
    serving = api_version(prod)
    image_before = on(prod.manager, "service", "inspect", "-f", "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
                      "icb-prod-api").stdout.strip()  # fmt: skip
    edit_source(
        prod,
        "ichrisbirch/wsgi_api.py",
        lambda t: t.replace("status_code=503 if down else 200", "status_code=500"),
    )
    with LoadLoop(prod, max_seconds=600) as loop:
        with pytest.raises(RunFailed) as failed:
            prod.up()
        time.sleep(2)
        load = loop.report()
    message = failed.value.result.error
    assert "icb-prod-api" in message and "rolled back" in message, message
    assert load.failed == [], f"{len(load.failed)} failed {load.failures_by_kind()}: {load.failed[:5]}"
    assert set(load.versions()) == {serving}, "only the old version answered"
    image_after = on(prod.manager, "service", "inspect", "-f", "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
                     "icb-prod-api").stdout.strip()  # fmt: skip
    assert image_after == image_before, "the swarm rolled the service back to the old image"
    report(f"swarm update to a never-healthy api: rolled back by itself, {len(load.outcomes)} requests, 0 failed")


def swarm_psql(prod: SwarmProd, sql: str) -> str:
    """`sql` run in the Postgres task's container, on whichever node runs it; its rows, unaligned."""
    for node in NODES:
        found = on(node_socket(node), "ps", "-q", "--filter", "label=com.docker.swarm.service.name=icb-prod-postgres")
        for container in found.stdout.split():
            return on(node_socket(node), "exec", "-u", "postgres", container, "psql", "-U", "ichrisbirch",
                      "-d", "ichrisbirch", "-v", "ON_ERROR_STOP=1", "-Atc", sql).stdout  # fmt: skip
    raise AssertionError("no running Postgres task on any node")


def test_a_restore_on_the_swarm_under_load_fails_no_request_and_keeps_the_writes_made_after_it(
    swarm_prod: SwarmProd,
) -> None:
    for i in range(20):
        status, body = swarm_prod.http("POST", "api", "/tasks", {"title": f"swarm drill {i}"})
        assert status == 201, body
    rows = "SELECT id, title, completed, created_at, completed_at FROM tasks ORDER BY id"
    before = swarm_psql(swarm_prod, rows)
    engine = StackEngine.of("prod", swarm_prod.manager)
    assert isinstance(engine, SwarmStack), "the manager runs the stack's backup service"
    taken = engine.backup("once")  # a job on the data node, as the backup service's task
    assert taken.returncode == 0, taken.stdout + taken.stderr
    replicas = {w: engine.replicas(f"icb-prod-{w}") for w in WRITERS}
    swarm_psql(swarm_prod, "DELETE FROM tasks")  # the data lost

    # Under the request loop, writes too: the router holds what comes while the api is scaled to 0
    # (the app stays up and says so in its health), and serves it from the restored database.
    loop = LoadLoop(swarm_prod, max_seconds=600, request_timeout=HOLD_SECONDS + 20)
    restore = under_load(
        loop, lambda: timed_script(swarm_prod.project, "restore", "prod", "--docker-host", swarm_prod.manager)
    )
    (code, printed), load = restore.result, restore.load
    output = "\n".join(line for _, line in printed)
    assert code == 0, output
    assert "migrations applied" in output and "the writers are back and healthy" in output
    assert restore.uncovered() == []
    assert load.failed == [], f"{len(load.failed)} failed {load.failures_by_kind()}: {load.failed[:5]}"
    after = swarm_psql(swarm_prod, rows)
    assert set(before.splitlines()) <= set(after.splitlines()), "every row, every column, as it was"
    # Every write sent once the dump was restored waited for the api and is kept. (Those answered
    # before the writers stopped were made after the dump: the restore drops them.)
    printed_at = {w: next(at for at, line in printed if w in line) for w in ("stopping", " restored", "migrations")}
    writes = [o for o in load.outcomes if o.sent and o.at > printed_at[" restored"] - loop.started]
    kept = set(swarm_psql(swarm_prod, "SELECT title FROM tasks").splitlines())
    assert writes and not {str(json.loads(o.sent)["title"]) for o in writes} - kept, output
    assert {w: engine.replicas(f"icb-prod-{w}") for w in WRITERS} == replicas, "the writers at their scale again"
    status, body = swarm_prod.http("GET", "api", "/tasks")
    assert status == 200 and {t["title"] for t in json.loads(body)} >= {f"swarm drill {i}" for i in range(20)}
    api_away = printed_at["migrations"] - printed_at["stopping"]  # from the writers stopping to the api back
    started = loop.started + restore.began
    steps = ", ".join(
        f"{line.removeprefix('restore: ').split(':')[0]} at {at - started:.1f} s"
        for at, line in printed
        if line.startswith("restore: ")
    )

    refused = subprocess.run(
        [str(PROJECT_DIR / "scripts" / "restore"), "prod", "missing.dump", "--docker-host", swarm_prod.manager],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert refused.returncode == 2 and "no dump named missing.dump" in refused.stderr, refused.stderr
    jobs = on(swarm_prod.manager, "service", "ls", "-q", "--filter", "label=ichrisbirch.service=backup-job")
    assert jobs.stdout.split() == [], "every one-off job removed"
    report(
        f"swarm restore under load: {before.count(chr(10)) + 1} rows back after they were deleted; 0 of"
        f" {len(load.outcomes)} requests failed, the longest waited {load.slowest():.1f} s; {len(writes)} writes"
        f" sent after the restore, all kept; the api away {api_away:.1f} s, scripts/restore took"
        f" {restore.took:.1f} s ({steps})"
    )


def test_a_stopped_worker_has_its_tasks_rescheduled_and_the_api_keeps_answering(swarm_prod: SwarmProd) -> None:
    prod = swarm_prod
    node = "icb-worker2"  # not the data node: Postgres and Redis cannot leave their volumes
    moved = sorted(svc for svc, n, _ in running_tasks(prod) if n == node)
    assert moved, f"no task runs on {node}"
    try:
        with LoadLoop(prod, max_seconds=300) as loop:
            time.sleep(2)
            stopped = swarm_script("stop-node.sh", node)
            assert stopped.returncode == 0, stopped.stdout + stopped.stderr
            began = time.monotonic()
            until(lambda: full_strength_without(prod, node) or None, 180, f"full strength without {node}", interval=1)
            to_full_strength = time.monotonic() - began
            time.sleep(3)
            load = loop.report()
        assert load.uncovered(began - loop.started, began - loop.started + to_full_strength) == []
        status, body = prod.http("GET", "api", "/health")
        assert status == 200 and json.loads(body)["status"] == "ok", body
        answered = [o for o in load.outcomes if o.ok and o.at > load.outcomes[-1].at - 3]
        assert answered, "the api and app answer at full strength"
        # The ingress takes a lost router out after its failed checks; the other node's router serves on.
        assert load.longest_without_service() <= STOPPED_NODE_MAX_GAP, (
            f"{load.longest_without_service():.1f} s without a successful answer; failed {load.failures_by_kind()}"
        )
        report(
            f"swarm: dockerd of {node} stopped ({', '.join(moved)} on it): full strength on the other nodes "
            f"{to_full_strength:.1f} s later; {len(load.outcomes)} requests at {load.rate:.0f}/s, "
            f"{len(load.failed)} failed {load.failures_by_kind()}, "
            f"longest without a successful answer {load.longest_without_service():.1f} s"
        )
    finally:
        # The node comes back (up.sh starts its dockerd again), for what follows, whatever happened here.
        up = swarm_script("up.sh")
        assert up.returncode == 0, up.stdout + up.stderr


def test_teardown_keeps_the_protected_data_until_unprotected(swarm_prod: SwarmProd) -> None:
    # Last: `pulumi destroy`.
    prod = swarm_prod
    data_node = node_socket("icb-worker1")
    data = {"icb-prod-postgres-data", "icb-prod-redis-data", "icb-prod-backups"}

    def volumes_on_data_node() -> set[str]:
        return set(on(data_node, "volume", "ls", "--format", "{{.Name}}").stdout.split())

    assert data <= volumes_on_data_node(), "declared on the data node's engine, through its own provider"
    began = time.monotonic()
    with pytest.raises(RunFailed, match="protect") as refused:
        prod.project.destroy()
    assert data <= volumes_on_data_node(), "the data outlive a careless `pulumi destroy`"
    kept = {r["urn"].split("::")[-1] for r in prod.project.resources() if r["type"] == "docker:index/volume:Volume"}
    assert kept == {"postgres-data", "redis-data", "backups"}, "in state still, protected"
    deleted = sorted(refused.value.result.touched("delete"))
    report(f"swarm: `pulumi destroy` refused at the protected data, having deleted {deleted}")
    # On purpose, the data go too: `pulumi state unprotect`, then destroy again.
    prod.project.unprotect_all()
    result = prod.project.destroy()
    took = time.monotonic() - began
    assert kept <= result.touched("delete") | refused.value.result.touched("delete"), result.preview()
    assert [r for r in prod.project.resources() if r.get("custom")] == [], "nothing left in state"

    def no_containers() -> bool | None:
        left = [n for n in NODES if on(node_socket(n), "ps", "-aq").stdout.split()]
        return not left or None

    until(no_containers, 60, "every task's container removed on every node")
    for kind in ("service", "secret", "config"):
        assert on(prod.manager, kind, "ls", "-q").stdout.split() == [], f"a {kind} is left"
    assert "icb-prod" not in on(prod.manager, "network", "ls", "--format", "{{.Name}}").stdout.split()
    assert not data & volumes_on_data_node(), "deleted on the data node, by the provider that declared them"
    report(f"swarm teardown: refused at the protected data, then all gone in {took:.1f} s")
