"""prod on another machine, over SSH, as a team runs it against its server: the test run's own host
(tests/remote/up.sh: Debian 13 with its Docker 26 and OpenSSH, in network and mount namespaces of
its own), reached only through `dockerHost: ssh://deploy@<address>` with `dockerSshOpts` naming the
run's key and its pinned known_hosts. The image is built by the host's engine from a context sent
over SSH; the ingress answers over TLS on the host's address; what runs is read through the same SSH."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.identity import PROJECT_DIR
from infra.stack_state import CONTAINER
from proof.harness.figures import report
from proof.harness.load import LoadLoop, under_load
from proof.harness.pulumi import PROGRAM, VENV, ProjectStack, RunFailed
from proof.harness.remote import RemoteProd, remote_prod, remote_script, ssh_agent
from proof.harness.stacks import api_version, bump_version, full
from proof.harness.stacks import test_settings as suite_settings  # (not collected as a test)
from proof.harness.standins import Standins, copy_app
from proof.mocks import TEST_SECRETS
from tests.integration.ops import BACKUP_ONCE, module, script, table

pytestmark = pytest.mark.docker
LONG_RUNNING = ("postgres", "redis", "api", "app", "scheduler", "router", "ingress", "backup")


@pytest.fixture(scope="module")
def prod(standins: Standins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RemoteProd]:
    with remote_prod(standins, tmp_path_factory.mktemp("remote")) as deployed:
        report(f"remote prod over ssh://: first `up` {deployed.first_up_seconds:.1f} s, "
               f"building {deployed.first.build_seconds():.1f} s of it")  # fmt: skip
        yield deployed


def test_prod_runs_on_the_remote_docker_26_as_declared_and_answers_on_its_address(prod: RemoteProd) -> None:
    version = prod.host.ssh("docker", "version", "-f", "{{.Server.Version}}").stdout.strip()
    assert int(version.split(".")[0]) >= 26, version
    names: dict[str, str] = prod.first.outputs["containers"]
    for service in LONG_RUNNING:
        state = prod.host.inspect(names[service])["State"]
        assert isinstance(state, dict) and state["Running"], (service, state)
        assert state.get("Health", {}).get("Status") == "healthy", (service, state.get("Health"))
    assert prod.host.inspect(names["migrate"])["State"]["ExitCode"] == 0  # type: ignore[index]
    api = prod.host.inspect(names["api"])
    assert api["Config"]["User"] == "10001:10001" and api["HostConfig"]["ReadonlyRootfs"] is True  # type: ignore[index]
    ingress = prod.host.inspect(names["ingress"])["HostConfig"]["PortBindings"]  # type: ignore[index]
    assert {b["HostIp"] for bindings in ingress.values() for b in bindings} == {prod.host.address}, ingress
    status, body = prod.http("GET", "api", "/health")
    assert status == 200 and json.loads(body)["status"] == "ok", body
    status, _ = prod.http("GET", "app", "/")
    assert status == 200


def test_a_second_up_over_ssh_touches_nothing(prod: RemoteProd) -> None:
    again = prod.up()
    assert set(again.ops().values()) == {"same"}, again.preview()


def test_v1_to_v2_over_ssh_under_load_fails_no_request(prod: RemoteProd) -> None:
    v1 = api_version(prod)
    v2 = bump_version(prod)
    release = under_load(LoadLoop(prod, max_seconds=600), prod.up)
    result, load = release.result, release.load
    assert result.built() and result.touched("replace") >= {"api", "app", "scheduler"}, result.preview()
    assert load.failed == [], f"{len(load.failed)} failed {load.failures_by_kind()}: {load.failed[:5]}"
    assert set(load.versions()) <= {v1, v2} and load.versions()[-1] == v2, load.versions()
    assert load.switch_uncovered(v1, v2) == []
    report(
        f"remote prod v1 -> v2 over ssh:// under load: {len(load.outcomes)} requests, {len(load.failed)} failed, "
        f"longest without a successful answer {load.longest_without_service():.1f} s;"
        f" the `up` took {release.took:.1f} s"
    )


# --- operated through the same ssh:// ---------------------------------------------------------------


def releases(prod: RemoteProd) -> list[str]:
    """`python -m infra.releases list prod` (what scripts/rollback prints), read through SSH: the
    release tags on the host, newest first, the one running marked with a leading "*"."""
    listed = module(prod.project, "infra.releases", "list", "prod")
    assert listed.returncode == 0, listed.stderr
    return [
        "*" + line.split()[1] if line.startswith("*") else line.split()[0] for line in listed.stdout.splitlines()[1:]
    ]


def running(prod: RemoteProd) -> str:
    (tag,) = [tag.removeprefix("*") for tag in releases(prod) if tag.startswith("*")]
    return tag


def test_ops_reads_status_logs_and_runs_commands_through_ssh(prod: RemoteProd) -> None:
    status = script(prod.project, "ops", "prod", "status")
    assert status.returncode == 0, status.stdout + status.stderr
    rows = table(status.stdout)
    assert set(LONG_RUNNING) <= set(rows), rows
    assert {rows[s]["WHERE"] for s in LONG_RUNNING} == {prod.host.docker_host}, "each read over SSH on the host"
    assert all(rows[s]["HEALTH"] == "healthy" for s in LONG_RUNNING), status.stdout
    logs = script(prod.project, "ops", "prod", "logs", "api", "--since", "1h")
    assert logs.returncode == 0 and "Application startup complete" in logs.stdout, logs.stdout[-2000:] + logs.stderr
    ran = script(prod.project, "ops", "prod", "exec", "api", "--", "sh", "-c", 'id -u; echo "$ENVIRONMENT"')
    assert ran.returncode == 0 and ran.stdout.split() == ["10001", "prod"], ran.stdout + ran.stderr


def test_a_rollback_through_ssh_puts_the_previous_release_back_under_load(prod: RemoteProd) -> None:
    serving, serving_tag = api_version(prod), running(prod)
    rollback = under_load(
        LoadLoop(prod, max_seconds=600), lambda: script(prod.project, "rollback", "prod", "--yes", "--skip-preview")
    )
    rolled, load = rollback.result, rollback.load
    assert rolled.returncode == 0, rolled.stdout[-3000:] + rolled.stderr[-3000:]
    previous = api_version(prod)
    assert previous != serving and load.versions()[-1] == previous, load.versions()
    assert load.failed == [], f"{len(load.failed)} failed {load.failures_by_kind()}: {load.failed[:5]}"
    assert f"rollback: prod to {running(prod)}" in rolled.stdout and running(prod) != serving_tag, rolled.stdout
    report(
        f"remote prod rollback over ssh:// under load: {len(load.outcomes)} requests, 0 failed;"
        f" took {rollback.took:.1f} s"
    )


def test_the_next_up_rolls_forward_and_prune_removes_the_old_release_on_the_host(prod: RemoteProd) -> None:
    rolled_back, old_tag = api_version(prod), running(prod)
    forward = prod.project.up()
    assert forward.touched("replace") >= {"api", "app", "scheduler"}, forward.preview()
    assert api_version(prod) != rolled_back and running(prod) != old_tag, "the next plain `up` runs the source again"
    newest = running(prod)
    prod.up(keepReleases="1")
    pruned = module(prod.project, "infra.releases", "prune", "prod")
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.splitlines() == [f"removed {old_tag}"], pruned.stdout
    assert prod.host.ssh("docker", "image", "inspect", old_tag, check=False).returncode != 0, "still on the host"
    assert releases(prod) == [f"*{newest}"]


def test_a_backup_and_a_restore_through_ssh_bring_back_what_the_dump_holds(prod: RemoteProd) -> None:
    status, _ = prod.http("POST", "api", "/tasks", {"title": "in the dump"})
    assert status == 201
    dumped = script(prod.project, "ops", "prod", "exec", "backup", "--", "sh", "-c", BACKUP_ONCE)
    assert dumped.returncode == 0, dumped.stdout + dumped.stderr
    status, _ = prod.http("POST", "api", "/tasks", {"title": "after the dump"})
    assert status == 201
    restored = script(prod.project, "restore", "prod")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "the writers are back and healthy" in restored.stdout, restored.stdout
    status, body = prod.http("GET", "api", "/tasks")
    titles = [task["title"] for task in json.loads(body)]
    assert status == 200 and "in the dump" in titles and "after the dump" not in titles, titles


# --- reviewed from elsewhere ------------------------------------------------------------------------


def test_a_second_checkout_with_only_the_backend_passphrase_and_key_previews_exactly_a_pending_change(
    prod: RemoteProd, tmp_path: Path
) -> None:
    """What .github/workflows/preview.yml has: the program and the stack file from the repository, the
    backend and the passphrase from the environment, the key (from a secret) in an agent of its own;
    no state, no home and no agent of the machine that deployed."""
    checkout = tmp_path / "review"
    checkout.mkdir()
    (checkout / ".venv").symlink_to(VENV)  # what the workflow's scripts/setup --no-docker makes
    for entry in PROGRAM:
        copy = shutil.copytree if (prod.project.dir / entry).is_dir() else shutil.copy2
        copy(prod.project.dir / entry, checkout / entry)
    shutil.copy2(prod.project.dir / "Pulumi.prod.yaml", checkout / "Pulumi.prod.yaml")
    (tmp_path / "home").mkdir()
    with ssh_agent(tmp_path / "review.sock", prod.host.key.read_text()) as agent:
        env = {
            "PATH": f"{VENV / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path / "home"), "SSH_AUTH_SOCK": agent,
            "PULUMI_HOME": prod.project.env["PULUMI_HOME"],  # the CLI's plugins, as the workflow installs them
            "PULUMI_BACKEND_URL": prod.project.env["PULUMI_BACKEND_URL"],
            "PULUMI_CONFIG_PASSPHRASE": prod.project.env["PULUMI_CONFIG_PASSPHRASE"],
            "PULUMI_SKIP_UPDATE_CHECK": "true",
        }  # fmt: skip

        def pulumi(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["pulumi", *args, "--stack", "prod", "--non-interactive"], cwd=checkout, env=env,
                                  capture_output=True, text=True, timeout=600, check=False)  # fmt: skip

        assert pulumi("config", "set", "heartbeatSeconds", "45").returncode == 0  # the pull request's change
        shown = pulumi("preview", "--diff")
        planned = pulumi("preview", "--json")
    assert shown.returncode == 0, shown.stdout[-3000:] + shown.stderr[-3000:]
    assert "SCHEDULER_HEARTBEAT_SECONDS=45" in shown.stdout, shown.stdout[-3000:]
    assert planned.returncode == 0, planned.stderr[-3000:]
    changing = {
        (step["urn"].rsplit("::", 1)[1], step["op"])
        for step in json.loads(planned.stdout)["steps"]
        if step["op"] != "same"
    }
    assert {name for name, _ in changing} == {"scheduler"}, changing
    assert {op for _, op in changing} <= {"replace", "create-replacement", "delete-replaced"}, changing
    again = prod.project.preview()
    assert set(again.ops().values()) == {"same"}, "the review changed nothing: the deployed stack has nothing pending"


# --- faults -------------------------------------------------------------------------------------------


@pytest.fixture
def other_agent(tmp_path: Path) -> Iterator[str]:
    """An agent holding a key the host has never seen."""
    key = tmp_path / "other_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    with ssh_agent(tmp_path / "other.sock", key.read_text()) as agent:
        yield agent


@pytest.mark.parametrize("action", ["preview", "up"])
@pytest.mark.parametrize("fault", ["wrong key", "unknown host key", "no answer"])
def test_an_ssh_fault_stops_preview_and_up_with_one_line_before_anything_changes(
    prod: RemoteProd, fault: str, action: str, other_agent: str, tmp_path: Path
) -> None:
    ids = {r["urn"]: r.get("id") for r in prod.project.resources()}
    host, options = prod.host.docker_host, list(prod.host.docker_ssh_opts)
    if fault == "wrong key":
        options += ["-o", f"IdentityAgent={other_agent}"]  # instead of the agent that holds the key
    elif fault == "unknown host key":
        (tmp_path / "empty_known_hosts").touch()
        options[1] = f"UserKnownHostsFile={tmp_path / 'empty_known_hosts'}"
    else:
        host = f"ssh://deploy@{prod.host.address.rsplit('.', 1)[0]}.99"  # on the bridge, nobody there
    expected = {
        "wrong key": "the host refused the key",
        "unknown host key": "the host's key is not the one pinned",
        "no answer": "the host does not answer on SSH",
    }[fault]
    saved = {
        full("dockerHost"): prod.config[full("dockerHost")],
        full("dockerSshOpts"): prod.config[full("dockerSshOpts")],
    }
    prod.project.set_config({full("dockerHost"): host, full("dockerSshOpts"): json.dumps(options)})
    try:
        with pytest.raises(RunFailed) as failed:
            prod.project.preview() if action == "preview" else prod.project.up()
    finally:
        prod.project.set_config(saved)
    said = [line for line in failed.value.result.error.splitlines() if "cannot be reached" in line]
    assert len(said) >= 1 and "Traceback" not in failed.value.result.error, failed.value.result.error[-3000:]
    line = said[0][said[0].index("stack prod: ") :]
    assert line.startswith(f"stack prod: ichrisbirch:dockerHost {host} cannot be reached: {expected}"), line
    assert line.endswith("nothing was changed"), line
    assert failed.value.result.steps == [], "stopped before any step"
    assert {r["urn"]: r.get("id") for r in prod.project.resources()} == ids, "nothing created, replaced or deleted"
    report(f"remote fault ({fault}, {action}): {line}")


def test_ssh_cut_in_the_middle_of_an_up_leaves_a_state_the_next_up_completes(prod: RemoteProd) -> None:
    status, body = prod.http("POST", "api", "/tasks", {"title": "before the cut"})
    assert status == 201, body
    names_before = set(on_the_host(prod))
    new = bump_version(prod)
    failed: list[BaseException] = []

    def up() -> None:
        try:
            prod.project.up()
        except BaseException as error:  # noqa: BLE001 -- reported below, whatever it was
            failed.append(error)

    running = threading.Thread(target=up)
    running.start()
    # The cut: once the new release's first container exists on the host (its image built there).
    deadline = time.monotonic() + 600
    while running.is_alive() and not set(on_the_host(prod)) - names_before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert running.is_alive(), f"the `up` ended before the cut: {failed}"
    prod.host.sshd("stop")
    running.join(timeout=300)
    prod.host.sshd("start")
    assert failed and isinstance(failed[0], RunFailed), "the cut failed the `up`"
    completed = prod.project.up()
    assert api_version(prod) == new, completed.preview()
    known = {str(r.get("id")) for r in prod.project.resources() if r["type"] == CONTAINER}
    assert set(on_the_host(prod).values()) <= known, "a container on the host that the state does not know"
    assert set(prod.project.preview().ops().values()) == {"same"}
    status, body = prod.http("GET", "api", "/tasks")
    assert status == 200 and "before the cut" in [t["title"] for t in json.loads(body)], body
    assert isinstance(failed[0], RunFailed)
    cut = failed[0].result
    said = next((line.strip() for line in cut.error.splitlines() if "error:" in line), "?")[:160]
    changed = sorted(f"{name} {op}" for name, op in completed.ops().items() if op != "same")
    report(f"remote SSH cut mid-`up` after {len(cut.steps)} steps ({said}); the next `up`: {', '.join(changed)}")


def on_the_host(prod: RemoteProd) -> dict[str, str]:
    """The stack's containers on the host, read through the harness's own SSH: name -> full id."""
    listed = prod.host.ssh("docker", "ps", "-a", "--no-trunc", "--filter", "label=ichrisbirch.stack=prod",
                           "--format", "{{.Names}} {{.ID}}")  # fmt: skip
    return dict(line.split() for line in listed.stdout.splitlines())


# --- dev on the same engine -----------------------------------------------------------------------------


def test_dev_on_the_hosts_docker_26_deploys_serves_and_then_changes_nothing(
    prod: RemoteProd, standins: Standins, tmp_path: Path
) -> None:
    app_dir = copy_app(tmp_path / "app")
    settings = suite_settings(standins, app_dir, dockerHost=prod.host.docker_host, bindAddress=prod.host.address,
                             dockerSshOpts=json.dumps(list(prod.host.docker_ssh_opts)))  # fmt: skip
    dev = ProjectStack(
        tmp_path, "dev", PROJECT_DIR / "Pulumi.dev.yaml", {"SSH_AUTH_SOCK": prod.project.env["SSH_AUTH_SOCK"]}
    )
    dev.set_config({full(k): v for k, v in settings.items()}, {full(k) for k in TEST_SECRETS})
    began = time.monotonic()
    first = dev.up()
    took = time.monotonic() - began
    with urllib.request.urlopen(f"{first.outputs['api_url']}/health", timeout=10) as answer:
        assert answer.status == 200 and json.loads(answer.read())["status"] == "ok"
    with urllib.request.urlopen(f"{first.outputs['app_url']}/", timeout=10) as answer:
        assert answer.status == 200
    again = dev.up()
    assert set(again.ops().values()) == {"same"}, again.preview()
    report(f"remote dev over ssh:// on Docker 26: first `up` {took:.1f} s, a second `up` all same")


def test_teardown_leaves_nothing(prod: RemoteProd) -> None:
    # Last in the module: down.sh here, then once more by the fixture (it is idempotent).
    pids = subprocess.run(["ip", "netns", "pids", "icb-remote"], capture_output=True, text=True, check=True).stdout
    assert pids.split(), "the host's dockerd, sshd and containers run in its namespace"
    started = {pid: start_time(pid) for pid in pids.split()}
    down = remote_script("down.sh")
    assert down.returncode == 0, down.stdout + down.stderr
    alive = [pid for pid, at in started.items() if at is not None and start_time(pid) == at]
    assert not alive, f"processes of the host live on: {alive}"
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert "icb-remote" not in namespaces, namespaces
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert "icbremote0" not in links and " icbr-remote@" not in links, links  # tests/remote/common.sh's names
    rules = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True, check=True).stdout
    assert "icbremote0" not in rules, rules
    nat = subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True, check=True).stdout
    assert prod.host.address.rsplit(".", 1)[0] + ".0/24" not in nat, nat
    assert "/tmp/icb-remote" not in Path("/proc/mounts").read_text()
    assert not prod.host.key.parent.exists(), "its folder (the key, the known_hosts, the root filesystem)"


def start_time(pid: str) -> str | None:
    """When process `pid` started (so that a pid the kernel gave to a new process is not taken for
    the old one), or None once it has ended. A zombie has ended: it holds nothing but its entry,
    until whatever adopted it reaps it, which on some machines nothing does."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None if fields[0] == "Z" else fields[19]  # state, ..., starttime (field 22 of stat)
