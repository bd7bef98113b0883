"""The prod stack deployed for real: hardened, self-healing, durable, and secret-free in images and logs."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import cast

import pytest

from infra.settings import DEFAULT_REQUEST_HOLD_SECONDS, StackSettings
from proof.harness.cli import docker, inspect_container, timed, until, wait_healthy
from proof.harness.clients import exchange
from proof.harness.figures import report
from proof.harness.load import LoadLoop, under_load
from proof.harness.pulumi import RunResult
from proof.harness.stacks import Deployed, api_version, bump_version, deploy, edit_source, full, psql
from proof.harness.standins import Standins
from proof.mocks import TEST_SECRETS
from tests.integration import day2
from tests.integration.conftest import Bucket, assert_no_secret_leak
from tests.integration.ops import BACKUP_ONCE, operator_up, ops, script, table, timed_script

pytestmark = pytest.mark.docker
APPLICATION = ["api", "app", "scheduler", "migrate"]
LONG_RUNNING = ["postgres", "redis", "backup", "backup-offsite", "api", "app", "scheduler"]


@pytest.fixture(scope="module")
def prod(standins: Standins, offsite_bucket: Bucket) -> Iterator[Deployed]:
    # A heartbeat every 2 s: a rollout's window holds enough job runs to judge the scheduler by.
    with deploy("prod", standins, heartbeatSeconds="2", **offsite_bucket.settings()) as deployed:
        yield deployed
    docker("rmi", postgres_variant_name(standins.postgres), check=False)  # made by the image-change test


def health(prod: Deployed) -> tuple[int, dict[str, object]]:
    status, body = prod.http("GET", "api", "/health", timeout=10)
    return status, json.loads(body)


def test_every_container_is_healthy(prod: Deployed, offsite_bucket: Bucket) -> None:
    for service in LONG_RUNNING:
        assert inspect_container(prod.container(service))["State"]["Health"]["Status"] == "healthy", service
    assert health(prod)[0] == 200
    # The backup service's first dump, written by its unprivileged user into the new volume ...
    backup = until(lambda: health(prod)[1].get("backup"), timeout=60, what="the first dump in the api's health")
    assert int(backup["bytes"]) > 0 and str(backup["file"]).endswith(".dump"), backup  # type: ignore[index]
    # ... and copied off the host by the hardened copy, which reads its keys from files.
    name = str(backup["file"])  # type: ignore[index]
    copied = until(lambda: offsite_bucket.objects("prod") or None, 60, "the first dump in the bucket")
    assert set(copied) == {name, f"{name}.sha256"} and copied[name] == backup["sha256"], copied  # type: ignore[index]


def test_what_the_program_leaves_unnamed_is_named_by_the_stack(prod: Deployed) -> None:
    # The engine's autonaming (Pulumi.yaml, pulumi:autonaming): a create-first one-shot and the
    # holders of secret files carry the stack, with a suffix of their own.
    assert re.fullmatch(r"icb-prod-migrate-[0-9a-f]{7}", prod.container("migrate")), prod.container("migrate")
    holder = prod.container("secret-flask-secret-key")
    assert re.fullmatch(r"icb-prod-secret-flask-secret-key-[0-9a-f]{7}", holder), holder


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
    bindings = inspect_container(prod.container("ingress"))["HostConfig"]["PortBindings"]
    assert bindings == {
        "8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(prod.ports["ingress"])}],
        "8443/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(prod.ports["ingress_https"])}],
    }
    data_users = (("postgres", "999:999"), ("redis", "999:999"), ("backup", "999:999"))
    for service, user in (*data_users, ("ingress", "99:99"), ("router", "99:99")):
        info = inspect_container(prod.container(service))
        assert info["Config"]["User"] == user and info["HostConfig"]["ReadonlyRootfs"] is True, service
        assert info["HostConfig"]["CapDrop"] == ["ALL"] and not info["HostConfig"]["CapAdd"], service
    for service in ("postgres", "redis", "scheduler", "api", "app", "router"):
        assert not inspect_container(prod.container(service))["HostConfig"]["PortBindings"], f"{service} is published"


def test_only_the_ingress_listens_on_the_host(prod: Deployed) -> None:
    listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, check=True).stdout
    ports = {int(line.split()[3].rsplit(":", 1)[1]) for line in listening.splitlines()}
    assert {prod.ports["ingress"], prod.ports["ingress_https"]} <= ports
    for name in prod.ids():
        published = inspect_container(prod.container(name))["HostConfig"]["PortBindings"] or {}
        assert name == "ingress" or not published, f"{name} publishes {published}"
    status, body = prod.http("GET", "api", "/")
    assert status == 200 and json.loads(body)["service"] == "api"
    status, page = prod.http("GET", "app", "/")
    assert status == 200 and "<html" in page.lower()


def test_plain_http_only_redirects_and_https_carries_hsts(prod: Deployed) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", prod.ports["ingress"], timeout=5)
    connection.request("POST", "/tasks?x=1", body=b"{}", headers={"Host": "api.localhost"})
    response = connection.getresponse()
    https_port = prod.ports["ingress_https"]
    suffix = "" if https_port == 443 else f":{https_port}"
    assert response.status == 301 and response.getheader("Location") == f"https://api.localhost{suffix}/tasks?x=1"
    connection.close()
    ca = prod.outputs["ingress_ca_certificate"]
    context = ssl.create_default_context(cadata=ca)
    raw = socket.create_connection(("127.0.0.1", https_port), timeout=5)
    with context.wrap_socket(raw, server_hostname="api.localhost") as tls:
        certificate = tls.getpeercert()
        assert certificate, "the ingress presented no certificate"
        alternatives = cast(tuple[tuple[str, str], ...], certificate["subjectAltName"])
        names = [value for kind, value in alternatives if kind == "DNS"]
        tls.sendall(b"GET / HTTP/1.1\r\nHost: api.localhost\r\nConnection: close\r\n\r\n")
        head = tls.recv(65536).decode(errors="replace")
    assert names == ["localhost", "api.localhost"]
    assert "strict-transport-security: max-age=31536000; includesubdomains" in head.lower(), head
    assert "x-content-type-options: nosniff" in head.lower()
    assert post_of_size(prod, 1024 * 1024 + 1).startswith("HTTP/1.1 413"), "over the 1 MiB default"


def post_of_size(prod: Deployed, size: int) -> str:
    """The first response line to a POST declaring a body of `size` bytes, through the ingress.

    Only the head is sent: the router decides on Content-Length before it reads any body. (Sending
    body bytes it never reads would make its close a reset, which can overtake the 413.)
    """
    context = ssl.create_default_context(cadata=prod.outputs["ingress_ca_certificate"])
    raw = socket.create_connection(("127.0.0.1", prod.ports["ingress_https"]), timeout=10)
    head = f"POST /tasks HTTP/1.1\r\nHost: api.localhost\r\nContent-Length: {size}\r\n\r\n".encode()
    with context.wrap_socket(raw, server_hostname="api.localhost") as tls:
        tls.sendall(head)
        return tls.recv(65536).decode(errors="replace").splitlines()[0]


def gunicorn_processes(container: str) -> tuple[list[list[str]], list[list[str]]]:
    """(masters, workers) among the container's gunicorn processes, each as [pid, ppid, args]."""
    top = docker("top", container, "-eo", "pid,ppid,args").stdout.splitlines()[1:]
    processes = [line.split(None, 2) for line in top]
    # PID 1 is Docker's init (`docker-init -- gunicorn ...`): not a gunicorn process itself.
    gunicorn = [p for p in processes if "gunicorn" in p[2] and "docker-init" not in p[2]]
    masters = [p for p in gunicorn if not any(p[1] == q[0] for q in gunicorn)]
    workers = [p for p in gunicorn if masters and p[1] == masters[0][0]]
    return masters, workers


def test_api_runs_gunicorn_with_the_configured_workers(prod: Deployed) -> None:
    # Healthy means one worker serves; the others may still be booting for a moment.
    masters, workers = until(
        lambda: found if len((found := gunicorn_processes(prod.container("api")))[1]) >= 4 else None,
        timeout=60,
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
    wait_healthy(name, timeout=60)
    assert health(prod)[0] == 200


def test_while_postgres_is_away_requests_wait_for_it_up_to_the_hold_then_get_503_with_retry_after(
    prod: Deployed,
) -> None:
    """An outage longer than any update (Postgres stopped by hand): health says at once what is away;
    a request waits `requestHoldSeconds`, then gets 503 with Retry-After; one sent while Postgres comes
    back waits for it and is answered."""
    hold = DEFAULT_REQUEST_HOLD_SECONDS
    assert full("requestHoldSeconds") not in prod.config, "the test expects the default hold"
    name = prod.container("postgres")
    docker("stop", name)
    try:

        def unavailable() -> dict[str, object] | None:
            status, body = health(prod)
            return body if status == 503 else None

        body = until(unavailable, timeout=60, what="the api's health reporting Postgres down")
        assert body["down"] == ["postgres"], "health is not held: a monitor sees what is away"
        # A write: it needs Postgres (a read of the task list may come from Redis's cache).
        (status, headers, answer), waited = timed(lambda: post_task(prod, "while away", timeout=hold + 20))
        assert status == 503 and headers.get("retry-after", "").isdigit(), (status, headers, answer)
        assert waited >= hold - 0.5, f"answered after {waited:.1f} s, before the {hold} s hold"
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(timed, lambda: post_task(prod, "sent while away", timeout=hold + 20))
            time.sleep(1)
            docker("start", name)
            (status, _, answer), held_for = held.result()
    finally:
        docker("start", name)
    assert status == 201 and json.loads(answer)["title"] == "sent while away", (status, answer)
    titles = psql(prod, "SELECT title FROM tasks").splitlines()
    assert "while away" not in titles and titles.count("sent while away") == 1, "the 503 wrote nothing"
    wait_healthy(name, timeout=60)
    report(
        f"prod with Postgres stopped: a write waited {waited:.1f} s (requestHoldSeconds {hold}), then 503 with"
        f" Retry-After {headers['retry-after']}; one sent before Postgres started again was answered 200 after"
        f" {held_for:.1f} s"
    )


def post_task(prod: Deployed, title: str, timeout: float) -> tuple[int, dict[str, str], str]:
    """A task written through the ingress: (status, the answer's headers, its body)."""
    ca = str(prod.outputs["ingress_ca_certificate"])
    port, host = prod.ports["ingress_https"], str(prod.host("api"))
    return exchange(port, host, "/tasks", {}, ca=ca, timeout=timeout, body={"title": title})


def test_no_secret_in_image_history_config_or_logs(prod: Deployed) -> None:
    assert_no_secret_leak(prod)


def secret_digest(prod: Deployed, container: str, name: str) -> str:
    """The SHA-256 of a secret file as a container reads it (the value itself stays out of the output)."""
    path = f"/run/secrets/{name}/value"
    return docker("exec", prod.container(container), "sha256sum", path).stdout.split()[0]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_secrets_are_files_only_their_readers_mount_and_never_in_docker_inspect(prod: Deployed) -> None:
    containers = docker("ps", "-aq", "--filter", "label=ichrisbirch.stack=prod").stdout.split()
    container_text = docker("inspect", *containers).stdout
    inspected = json.loads(container_text)
    # Everything the engine shows of the stack, whole: containers (the secret holders included),
    # volumes, the network, the application image.
    shown = {
        "containers": container_text,
        "volumes": docker("volume", "inspect", *docker("volume", "ls", "-q", "--filter", "label=ichrisbirch.stack=prod")
                          .stdout.split()).stdout,
        "network": docker("network", "inspect", "icb-prod").stdout,
        "image": docker("image", "inspect", prod.image()).stdout,  # the one the stack runs, by its digest
    }  # fmt: skip
    for what, text in shown.items():
        leaked = [name for name, value in TEST_SECRETS.items() if value in text]
        assert not leaked, f"the value of {leaked} in docker inspect of the {what}"
    for info in inspected:
        assert not any(e.split("=")[0].endswith(("_PASSWORD", "_SECRET_KEY")) for e in info["Config"]["Env"] or [])
    mounts = {info["Name"].lstrip("/"): {m["Name"]: m for m in info["Mounts"]} for info in inspected}
    app = mounts[prod.container("app")]["icb-prod-secret-flask-secret-key"]
    assert app["Destination"] == "/run/secrets/flask_secret_key" and app["RW"] is False
    readers = {name for name, m in mounts.items() if "icb-prod-secret-flask-secret-key" in m}
    assert {r for r in readers if not r.startswith("icb-prod-secret-")} == {prod.container("app")}, readers
    assert secret_digest(prod, "app", "flask_secret_key") == sha256(TEST_SECRETS["flaskSecretKey"])
    listing = docker("exec", prod.container("api"), "ls", "-ln", "/run/secrets/postgres_password/value").stdout
    assert listing.startswith("-r--r--r-- 1 0 0 "), listing
    written = docker("exec", prod.container("api"), "sh", "-c", "echo x > /run/secrets/postgres_password/value",
                     check=False)  # fmt: skip
    assert written.returncode != 0 and "Read-only file system" in written.stderr


# --- the second and later `up`, against the state the first left (module order matters) ----------


def test_a_second_up_with_nothing_changed_touches_nothing(prod: Deployed) -> None:
    day2.assert_second_up_changes_nothing(prod)


def test_changing_an_environment_value_replaces_exactly_its_readers(prod: Deployed) -> None:
    day2.assert_env_change_replaces_its_readers(prod, readers={"scheduler"})


def test_a_rotated_secret_replaces_exactly_its_readers_which_read_the_new_value(prod: Deployed) -> None:
    before = day2.container_identity(prod)
    rotated = "flask-rotated-6c1e0b9d"
    result = prod.up(flaskSecretKey=rotated)
    touched = {name for name, op in result.ops().items() if op != "same"}
    assert touched == {"app", "secret-flask-secret-key"}, result.preview()
    assert result.ops()["app"] == "replace" and not result.replaced_first_by_delete("app"), result.preview()
    after = day2.container_identity(prod)
    for name in set(before) & set(after) - touched:
        assert after[name] == before[name], f"{name} was touched"
    assert secret_digest(prod, "app", "flask_secret_key") == sha256(rotated)
    assert docker("container", "inspect", "icb-prod-secret-flask-secret-key", check=False).returncode != 0, "autonamed"
    holders = docker("ps", "-aq", "--filter", "label=ichrisbirch.service=secret-flask-secret-key").stdout.split()
    assert len(holders) == 1, "the old holder is deleted"
    status, _ = prod.http("GET", "app", "/")
    assert status == 200


def test_a_source_change_rebuilds_and_replaces_the_application_only(prod: Deployed) -> None:
    day2.assert_source_change_rolls_out_the_application_only(prod)


def postgres_variant_name(base: str) -> str:
    return f"{base}-variant"


def postgres_variant(base: str) -> str:
    """Another Postgres image (another id) for an image bump: the stand-in with one label more."""
    variant = postgres_variant_name(base)
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
    variant = postgres_variant(standins.postgres)

    def replace_postgres() -> RunResult:
        result = prod.up(postgresImage=variant)
        until(lambda: True if health(prod)[0] == 200 else None, timeout=60, what="the api serving again")
        return result

    changed = under_load(LoadLoop(prod), replace_postgres)
    result, load = changed.result, changed.load
    assert changed.uncovered() == []
    steps = result.ops()
    # What is replaced, and in which order: Postgres (a fixed name) delete-first, its protected
    # volume kept; then migrate, create-first, against the new server; the backup for its own image
    # (the same Postgres image). What serves stays up and reconnects.
    assert steps["postgres"] == "replace" and steps["postgres-data"] == "same", result.preview()
    assert result.replaced_first_by_delete("postgres"), result.preview()
    assert steps["migrate"] == "replace" and not result.replaced_first_by_delete("migrate"), result.preview()
    assert result.order("postgres", "migrate") == ["postgres", "migrate"], result.preview()
    assert steps["backup"] == "replace", result.preview()
    for service in ("api", "app", "scheduler", "router", "ingress", "redis"):
        assert steps[service] == "same", result.preview()
    migrate = inspect_container(prod.container("migrate"))
    assert migrate["State"]["ExitCode"] == 0, "migrations ran against the new server"
    assert (
        migrate["Config"]["Labels"]["ichrisbirch.ran-against.postgres"]
        == inspect_container(prod.container("postgres"))["Id"]
    )
    assert cluster_identifier(prod) == cluster_before, "the same database cluster: the protected volume was kept"
    shutdown = old_postgres.text()
    assert "received fast shutdown request" in shutdown and "database system is shut down" in shutdown, shutdown
    startup = docker("logs", prod.container("postgres")).stderr + docker("logs", prod.container("postgres")).stdout
    assert "not properly shut down" not in startup and "automatic recovery" not in startup, startup
    # While Postgres is away the router holds the requests (infra/ingress.py): none fails, and every
    # write acknowledged before, during and after is kept.
    assert load.failed == [], load.failures_by_kind()
    kept = set(psql(prod, "SELECT title FROM tasks").splitlines())
    acknowledged, lost = load.unkept_writes(kept, "title")
    assert acknowledged and not lost, f"lost: {lost[:5]}"
    assert title in kept, "the data written before survived the replacement"
    report(
        f"prod Postgres image change under load (Postgres delete-first, then migrate and backup; api and app "
        f"kept): 0 of {len(load.outcomes)} requests failed, the longest waited {load.slowest():.1f} s; "
        f"{acknowledged} acknowledged writes, all kept; the `up` and the api serving again took {changed.took:.1f} s"
    )


def test_a_postgres_setting_that_replaces_it_fails_no_request(prod: Deployed) -> None:
    changed = under_load(LoadLoop(prod), lambda: prod.up(postgresParameters='["max_connections=150"]'))
    result, load = changed.result, changed.load
    assert changed.uncovered() == []
    steps = result.ops()
    assert steps["postgres"] == "replace" and steps["postgres-data"] == "same", result.preview()
    for service in ("api", "app", "scheduler", "router", "ingress", "redis"):
        assert steps[service] == "same", result.preview()
    assert psql(prod, "SHOW max_connections").strip() == "150"
    assert load.failed == [], load.failures_by_kind()
    kept = set(psql(prod, "SELECT title FROM tasks").splitlines())
    acknowledged, lost = load.unkept_writes(kept, "title")
    assert acknowledged and not lost, f"lost: {lost[:5]}"
    report(
        f"prod Postgres setting changed under load (max_connections, Postgres replaced): 0 of {len(load.outcomes)}"
        f" requests failed, the longest waited {load.slowest():.1f} s; {acknowledged} acknowledged"
        f" writes, all kept; the `up` took {changed.took:.1f} s"
    )


def test_a_restore_under_load_fails_no_request_and_keeps_every_write_made_while_it_ran(prod: Deployed) -> None:
    """scripts/restore stops the writers, restores and migrates, and starts them again: the router
    holds what comes meanwhile, and serves it from the restored database."""
    hold = DEFAULT_REQUEST_HOLD_SECONDS
    assert prod.http("POST", "api", "/tasks", {"title": "in the dump"})[0] == 201
    dumped = script(prod.project, "ops", "prod", "exec", "backup", "--", "sh", "-c", BACKUP_ONCE)
    assert dumped.returncode == 0, dumped.stdout + dumped.stderr
    assert prod.http("POST", "api", "/tasks", {"title": "after the dump"})[0] == 201
    loop = LoadLoop(prod, request_timeout=hold + 20)
    restored = under_load(loop, lambda: timed_script(prod.project, "restore", "prod"))
    (code, printed), load = restored.result, restored.load
    output = "\n".join(line for _, line in printed)
    assert code == 0, output
    assert restored.uncovered() == []
    assert load.failed == [], load.failures_by_kind()
    kept = set(psql(prod, "SELECT title FROM tasks").splitlines())
    assert "in the dump" in kept and "after the dump" not in kept, "the database is the dump's"
    # Every write sent once the dump was restored (the writers stopped before) waited for them to
    # start again, and is kept. (One answered before they stopped was after the dump: it is dropped.)
    restored_at = next(t for t, line in printed if line.endswith(" restored")) - loop.started
    writes = [o for o in load.outcomes if o.sent and o.at > restored_at]
    assert writes, output
    lost = {str(json.loads(o.sent)["title"]) for o in writes} - kept
    assert not lost, f"lost: {sorted(lost)[:5]}"
    report(
        f"prod restore under load (writers stopped, pg_restore, migrations, writers started): 0 of "
        f"{len(load.outcomes)} requests failed, the longest waited {load.slowest():.1f} s; {len(writes)} writes"
        f" sent after the restore, before the writers were back, all kept; scripts/restore took {restored.took:.1f} s"
    )


def test_a_failing_migration_fails_up_with_its_logs_and_the_fix_in_the_source_goes_through(prod: Deployed) -> None:
    broken = "ALTER TABLE tasks ADD COLUMN priority INTEGER NOT NULL DEFAULT no_such_function()"
    day2.add_migration(prod, "task priority", broken)
    before = day2.container_identity(prod)
    failure = day2.failed_up(prod)
    assert "migrate exited with code 1" in failure.result.error, failure
    assert "no_such_function() does not exist" in failure.result.error, "the error shows migrate's logs"
    after = day2.container_identity(prod)
    assert {s: after[s] for s in ("api", "app", "scheduler")} == {s: before[s] for s in ("api", "app", "scheduler")}
    assert health(prod)[0] == 200, "the old api keeps serving"

    day2.replace_migration(prod, broken, broken.replace("no_such_function()", "0"))
    fixed = prod.up()
    assert {fixed.ops()[s] for s in ("migrate", "api", "app", "scheduler")} == {"replace"}, fixed.preview()
    assert fixed.pending_deleted() == {"migrate"}, "the migrate of the last good release, left by the failure"
    assert inspect_container(prod.container("migrate"))["State"]["ExitCode"] == 0
    status, body = prod.http("POST", "api", "/tasks", body={"title": "after the fix"})
    assert status == 201, body


def test_a_rollout_under_load_fails_no_request_and_runs_no_job_twice(prod: Deployed) -> None:
    v1 = api_version(prod)
    before = day2.container_identity(prod)
    v2 = bump_version(prod)
    rollout = under_load(LoadLoop(prod), prod.up)
    result, load, began = rollout.result, rollout.load, rollout.began
    assert {"api", "app", "scheduler"} <= result.touched("replace"), result.preview()
    assert not any(result.replaced_first_by_delete(name) for name in ("api", "app", "scheduler")), "created first"
    assert load.failed == [], f"{len(load.failed)} failed {load.failures_by_kind()}: {load.failed[:5]}"
    assert set(load.versions()) <= {v1, v2} and load.versions()[-1] == v2, load.versions()
    assert load.switch_uncovered(v1, v2) == []
    moved = load.first(v2)
    last_v1 = max(o.at for o in load.outcomes if o.version == v1)
    assert moved is not None
    report(
        f"prod rollout v1 -> v2 under load: {len(load.outcomes)} requests at {load.rate:.0f}/s, "
        f"{len(load.failed)} failed; v2 first answered {moved - began:.1f} s into the `up`, "
        f"v1 last answered {last_v1 - began:.1f} s into it; the `up` took {rollout.took:.1f} s"
    )
    # One scheduler at a time, each job once: with a heartbeat every few seconds the window holds
    # enough runs to see two schedulers interleave, or one run a job twice.
    interval = float(prod.config["ichrisbirch:heartbeatSeconds"])
    runs = day2.job_runs(prod, "heartbeat", load.seconds + 5)
    assert len(runs) >= (load.seconds + 5) / interval / 2, f"only {len(runs)} heartbeats to judge"
    assert day2.scheduler_problems(runs, interval) == [], runs
    # The runners' hosts (a container's host name is the start of its id), in order: the window may
    # begin with an earlier scheduler's last runs, and must end with the old one's, then the new one's.
    hosts = list(dict.fromkeys(runner.split(":")[0] for runner, _ in runs))
    old_scheduler, new_scheduler = before["scheduler"][0], day2.container_identity(prod)["scheduler"][0]
    assert len(hosts) >= 2, hosts
    assert old_scheduler.startswith(hosts[-2]) and new_scheduler.startswith(hosts[-1]), (
        f"the old scheduler ({old_scheduler[:12]}), then the new ({new_scheduler[:12]}): {hosts}"
    )


def test_a_router_configuration_change_rolls_over_under_load_and_leaves_the_ingress_alone(prod: Deployed) -> None:
    before = day2.container_identity(prod)
    changed = under_load(LoadLoop(prod), lambda: prod.up(requestBodyLimitKb="512"))
    result, load = changed.result, changed.load
    steps = result.ops()
    assert steps["router"] == "replace" and steps["ingress"] == "same", result.preview()
    assert not result.replaced_first_by_delete("router"), "the new router starts before the old one stops"
    after = day2.container_identity(prod)
    assert after["ingress"] == before["ingress"], "the ingress, which holds the host's ports, kept running"
    assert after["router"][0] != before["router"][0]
    for service in ("api", "app", "scheduler", "postgres", "redis"):
        assert after[service] == before[service], service
    # Clients that keep their connections open (to the old router, until it answers one with
    # `Connection: close` in its soft stop) see no failure either, their POSTs among them.
    kept = [o for o in load.outcomes if o.what.endswith("(keep-alive)")]
    assert any(o.what.startswith("POST") for o in kept), "keep-alive clients wrote too"
    assert load.failed == [], f"{len(load.failed)} failed {load.failures_by_kind()}: {load.failed[:5]}"
    # The new configuration serves: the smaller limit refuses what the old one let through.
    assert changed.uncovered() == []
    assert post_of_size(prod, 600 * 1024).startswith("HTTP/1.1 413")
    report(
        f"prod router configuration change under load: {len(load.outcomes)} requests at {load.rate:.0f}/s, "
        f"{len(load.failed)} failed, longest without a successful answer {load.longest_without_service():.1f} s; "
        f"the `up` took {changed.took:.1f} s, the ingress untouched"
    )


MAINTENANCE_PAGE = "<title>Maintenance</title>"


def switch_maintenance_under_load(prod: Deployed, *switch: str) -> tuple[list[str], list[str], float]:
    """`scripts/ops prod maintenance ...` under the request loop: (the kinds of failed requests, the
    kinds of answers in order, the `up`'s seconds). A maintenance page is an expected answer."""
    changed = under_load(LoadLoop(prod), lambda: ops(prod.project, "prod", "maintenance", *switch))
    switched, load = changed.result, changed.load
    assert switched.returncode == 0, switched.stdout[-4000:] + switched.stderr[-2000:]
    assert changed.uncovered() == []
    in_maintenance = [o.status == 503 and MAINTENANCE_PAGE in o.error for o in load.outcomes]
    failed = [o.error[:120] for o, page in zip(load.outcomes, in_maintenance, strict=True) if not o.ok and not page]
    kinds = ["maintenance" if page else "served" for page in in_maintenance]
    return failed, [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k], changed.took


def test_ops_status_logs_and_exec_on_prod(prod: Deployed) -> None:
    shown = ops(prod.project, "prod", "status")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    rows = table(shown.stdout)
    assert {"api", "app", "scheduler", "postgres", "redis", "router", "ingress", "backup", "migrate"} <= set(rows)
    assert all(rows[s]["RUNS"] == prod.container(s) for s in rows), shown.stdout
    migrate = ops(prod.project, "prod", "logs", "migrate")
    assert migrate.returncode == 0 and migrate.stdout.startswith(prod.container("migrate") + "| "), migrate.stdout
    whoami = ops(prod.project, "prod", "exec", "api", "--", "id", "-u")
    assert whoami.returncode == 0 and whoami.stdout.strip() == "10001", whoami.stdout + whoami.stderr


def test_ops_maintenance_switches_the_router_alone_under_load_and_back(prod: Deployed) -> None:
    before = day2.container_identity(prod)
    # A change of another service's setting, pending in the stack file: the page must not take it out.
    prod.set(heartbeatSeconds="45")
    try:
        failed, answers, took = switch_maintenance_under_load(prod, "on", "--message", "Back at 14:00 UTC")
        changed = {name for name, identity in day2.container_identity(prod).items() if before.get(name) != identity}
        pending = prod.project.preview()
    finally:
        prod.project.remove_config(full("heartbeatSeconds"))
        prod.config.pop(full("heartbeatSeconds"))
    assert failed == [], f"{len(failed)} requests failed on the switch to maintenance: {failed[:5]}"
    assert answers[0] == "served" and answers[-1] == "maintenance", answers
    assert "router" in changed and changed <= {"router", "router-haproxy-cfg"}, changed
    # ... and the next plain preview still proposes it, and only it.
    assert pending.touched("replace") == {"scheduler"}, pending.preview()
    assert set(pending.ops().values()) == {"same", "replace"}, pending.preview()
    # Every request gets the page, the health endpoint too, with Retry-After.
    ca = str(prod.outputs["ingress_ca_certificate"])
    status, headers, body = exchange(prod.ports["ingress_https"], str(prod.host("api")), "/health", {}, ca=ca)
    assert status == 503 and "Back at 14:00 UTC" in body and headers.get("retry-after") == "300", (status, headers)
    back_failed, back, back_took = switch_maintenance_under_load(prod, "off")
    assert back_failed == [], f"{len(back_failed)} requests failed on the switch back: {back_failed[:5]}"
    assert back[0] == "maintenance" and back[-1] == "served", back
    assert health(prod)[0] == 200
    report(
        f"prod maintenance on under load: 0 failed, the router alone replaced, the `up` {took:.1f} s;"
        f" off: 0 failed, {back_took:.1f} s"
    )


def test_a_second_up_while_one_runs_is_refused_naming_who_holds_the_lock(prod: Deployed) -> None:
    first = subprocess.Popen(
        [sys.executable, "-m", "infra.ops", "prod", "maintenance", "on"],
        cwd=prod.project.dir, env={**os.environ, **prod.project.env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        held = until(
            lambda: shown.stdout if "lock: held by" in (shown := ops(prod.project, "prod", "history")).stdout else None,
            timeout=60, what="the first update holding the stack's lock",
        )  # fmt: skip
        second = prod.project.cli("up", "--yes", "--skip-preview", check=False)
        assert second.returncode != 0, second.stdout
        assert "the stack is currently locked" in second.stderr and "created by" in second.stderr, second.stderr
        holder = held.split("lock: held by ", 1)[1].split(" since", 1)[0]
        assert holder.split(" (pid ")[0] in second.stderr, (holder, second.stderr)
    finally:
        assert first.wait(timeout=600) == 0, first.stdout.read() if first.stdout else ""
    off = ops(prod.project, "prod", "maintenance", "off")
    assert off.returncode == 0, off.stdout[-3000:]
    assert "lock: free" in ops(prod.project, "prod", "history").stdout


def test_a_version_that_never_gets_healthy_fails_up_while_the_old_one_serves(prod: Deployed) -> None:
    # Last in the module: it leaves the stack with a failed replacement.
    serving = api_version(prod)
    prod_wait = str(StackSettings.model_fields["wait_timeout_seconds"].default)
    before = day2.container_identity(prod)
    edit_source(
        prod, "ichrisbirch/wsgi_api.py", lambda t: t.replace("status_code=503 if down else 200", "status_code=500")
    )
    prod.set(waitTimeoutSeconds="40")  # a shorter wait than prod's, so that the `up` fails within the test
    # As the operator runs it: scripts/deploy's `pulumi up`, which says why when it fails.
    attempt = under_load(LoadLoop(prod), lambda: operator_up(prod.project))
    failed, load = attempt.result, attempt.load
    assert attempt.uncovered() == []
    prod.set(waitTimeoutSeconds=prod_wait)
    assert failed.returncode != 0, failed.stdout[-3000:]
    new_api = prod.container("api")
    assert "failed to be in healthy state" in failed.stdout + failed.stderr, failed.stdout[-3000:]
    why = [line for line in failed.stderr.splitlines() if line.startswith("why:")]
    # The new api by name and service, its probes' exit codes and what they printed, and its log.
    # Unhealthy, or still in its start period when the provider's wait ran out: either way named.
    head = re.compile(
        rf"why: {re.escape(new_api)} \(service api\) is (unhealthy|still starting, [^;]+); its last 3 health probes:"
    )
    assert any(head.fullmatch(line) for line in why), why
    probes = [line for line in why if line.startswith("why:   exit ")]
    assert len(probes) == 3 and all(re.fullmatch(r"why:   exit 1: .*answered 500", p) for p in probes), why
    assert any(line.startswith("why:   | ") and "gunicorn" in line for line in why), "the tail of its log"
    assert not any("(service app)" in line or "(service router)" in line for line in why), (
        "the healthy ones are not named"
    )
    after = day2.container_identity(prod)
    for service in ("api", "app", "scheduler", "router", "ingress", "postgres", "redis"):
        assert after.get(service) == before[service] or service == "api", service
    assert load.failed == [], f"{len(load.failed)} failed {load.failures_by_kind()}: {load.failed[:5]}"
    assert set(load.versions()) == {serving}, "only the old version answered"
    old_api = before["api"][0]
    assert inspect_container(old_api)["State"]["Health"]["Status"] == "healthy", "the old api keeps serving"
    report(
        f"prod rollout to a never-healthy api: `up` failed, {len(load.outcomes)} requests, {len(load.failed)} failed"
    )

    # v4, the fix: deployed under load from the state the failure left (the failed api recorded,
    # the old one pending deletion), and at the end only v4's containers are left.
    failed_api = prod.container("api")
    edit_source(
        prod, "ichrisbirch/wsgi_api.py", lambda t: t.replace("status_code=500", "status_code=503 if down else 200")
    )
    v4 = bump_version(prod)
    fix = under_load(LoadLoop(prod), prod.up)
    fixed, load = fix.result, fix.load
    assert load.failed == [], f"{len(load.failed)} failed {load.failures_by_kind()}: {load.failed[:5]}"
    assert load.versions()[-1] == v4 and set(load.versions()) <= {serving, v4}, load.versions()
    assert load.switch_uncovered(serving, v4) == []
    assert "api" in fixed.pending_deleted(), fixed.preview()
    assert fixed.steps[-1].op == "delete-replaced", "what the failure left pending goes at the end"
    for gone in (old_api, failed_api):
        assert docker("container", "inspect", gone, check=False).returncode != 0, f"{gone[:12]} is left"
    names = docker(
        "ps", "-a", "--filter", "label=ichrisbirch.stack=prod", "--format", '{{.Label "ichrisbirch.service"}}'
    )
    services = names.stdout.split()
    assert sorted(services) == sorted(set(services)), f"more than one container of a service: {sorted(services)}"
    report(f"prod fix v4 after the failed v3: {len(load.outcomes)} requests, {len(load.failed)} failed")
