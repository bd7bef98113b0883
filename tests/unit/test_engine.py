"""How the operator's commands and the program reach a stack's engine (infra/engine.py): a socket with
`docker -H`, an ssh:// host through SSH with the stack's dockerSshOpts; and the one line the program
stops with when an ssh:// host cannot be reached."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from pulumi import RunError

from infra import engine as engine_module
from infra.engine import Engine, EngineUnreachable, check_reachable, ssh_options, unreachable_reason
from infra.program import main
from infra.stack_state import CONTAINER, PROVIDER, StackState
from proof.mocks import ProgramMocks, committed_config, run_program
from tests.conftest import RunStack
from tests.unit.registrations import APP_SERVICES, containers

KEY = ("-i", "/keys/deploy", "-o", "UserKnownHostsFile=/keys/known_hosts", "-o", "StrictHostKeyChecking=yes")


def test_a_socket_is_driven_with_docker_h() -> None:
    assert Engine("unix:///run/docker.sock").command("ps", "-a") == [
        "docker",
        "-H",
        "unix:///run/docker.sock",
        "ps",
        "-a",
    ]


def test_an_ssh_host_runs_the_hosts_docker_with_the_stacks_options_each_word_arriving_whole() -> None:
    remote = Engine("ssh://deploy@docker.example.com:2222", KEY)
    argv = remote.command("exec", "icb-prod-backup", "sh", "-c", 'exec sh -c "$BACKUP_SCRIPT" backup once')
    destination = argv.index("deploy@docker.example.com")
    assert argv[:7] == ["ssh", *KEY] and tuple(argv[argv.index("-p") : argv.index("-p") + 2]) == ("-p", "2222")
    assert argv[destination - 2 : destination] == ["-T", "--"], "no terminal unless asked; options end before it"
    # The remote shell splits the words again: what it runs is exactly the docker command given.
    assert shlex.split(" ".join(argv[destination + 1 :])) == [
        "docker", "exec", "icb-prod-backup", "sh", "-c", 'exec sh -c "$BACKUP_SCRIPT" backup once',
    ]  # fmt: skip
    assert "ConnectTimeout=30" in argv, "a host that does not answer is given up on, as the Docker CLI does"
    assert "-t" in Engine("ssh://deploy@h", KEY).command("exec", "-it", "api", "sh", tty=True)


def test_ssh_options_are_read_as_a_stack_file_or_a_providers_state_holds_them() -> None:
    assert ssh_options(list(KEY)) == KEY
    assert ssh_options(json.dumps(list(KEY))) == KEY
    assert ssh_options(None) == ()
    with pytest.raises(ValueError, match=r"dockerSshOpts must be a list of SSH options"):
        ssh_options("-i /keys/my deploy key")  # split on spaces, it would name another file


def test_the_state_gives_each_workload_its_providers_host_and_ssh_options() -> None:
    provider = {
        "urn": "urn:pulumi:prod::ichrisbirch::pulumi:providers:docker::docker", "id": "p1", "type": PROVIDER,
        "inputs": {"host": "ssh://deploy@10.0.0.2", "sshOpts": json.dumps(list(KEY))},
    }  # fmt: skip
    api = {
        "urn": f"urn:pulumi:prod::ichrisbirch::icb${CONTAINER}::api", "type": CONTAINER,
        "outputs": {"name": "icb-prod-api-1a2b"}, "provider": f"{provider['urn']}::p1",
    }  # fmt: skip
    (workload,) = StackState("prod", [provider, api]).workloads()
    assert workload.engine == Engine("ssh://deploy@10.0.0.2", KEY) and workload.name == "icb-prod-api-1a2b"


def test_the_configured_engine_carries_the_stack_files_options_only_to_its_own_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = {"ichrisbirch:dockerHost": "ssh://deploy@10.0.0.2", "ichrisbirch:dockerSshOpts": list(KEY)}
    monkeypatch.setattr(engine_module, "committed_stack_config", lambda stack: config)
    assert Engine.configured("prod") == Engine("ssh://deploy@10.0.0.2", KEY)
    assert Engine.configured("prod", "ssh://other@10.0.0.3") == Engine("ssh://other@10.0.0.3")
    assert Engine.configured("prod", "unix:///x.sock") == Engine("unix:///x.sock")


@pytest.mark.parametrize(
    ("said", "check"),
    [
        ("deploy@10.0.0.2: Permission denied (publickey).", "the host refused the key"),
        (
            "No ED25519 host key is known for 10.0.0.2 and you have requested strict checking.\r\n"
            "Host key verification failed.",
            "the host's key is not the one pinned",
        ),  # fmt: skip
        ("ssh: connect to host 10.0.0.9 port 22: No route to host", "the host does not answer on SSH"),
        ("ssh: connect to host 10.0.0.9 port 22: Connection timed out", "the host does not answer on SSH"),
        ("ssh: connect to host 10.0.0.2 port 22: Connection refused", "the host does not answer on SSH"),
        ("permission denied while trying to connect to the Docker daemon socket", "the host's Docker does not answer"),
        ("something else entirely", "check that `ssh` with dockerSshOpts reaches the host"),
    ],
)
def test_what_ssh_said_becomes_what_to_check(said: str, check: str) -> None:
    assert check in unreachable_reason(said)


def test_an_unreachable_host_stops_the_program_with_one_line_naming_the_key_and_the_stack(tmp_path: Path) -> None:
    # A real ssh, to an address that is never routed (TEST-NET-1, RFC 5737), gives up within its timeout.
    engine = Engine("ssh://deploy@192.0.2.1", ("-o", "ConnectTimeout=1", "-o", f"UserKnownHostsFile={tmp_path}/kh"))
    with pytest.raises(EngineUnreachable) as stopped:
        check_reachable(engine, "prod")
    said = str(stopped.value)
    assert said.startswith("stack prod: ichrisbirch:dockerHost ssh://deploy@192.0.2.1 cannot be reached: ")
    assert said.endswith("nothing was changed") and "\n" not in said
    assert isinstance(stopped.value, RunError), "Pulumi prints a RunError's message alone, without a traceback"


def test_a_local_engine_is_not_dialled() -> None:
    check_reachable(Engine("unix:///nowhere.sock"), "dev")  # no SSH, nothing to check


def test_the_program_checks_each_ssh_engine_before_it_declares_anything() -> None:
    reached: list[tuple[Engine, str, str]] = []
    overrides = {"orchestrator": "swarm", "dockerHost": "ssh://deploy@manager", "dataNodeHost": "ssh://deploy@data",
                 "dockerSshOpts": json.dumps(list(KEY)), "imageRegistry": "registry.local:5000/team"}  # fmt: skip
    config, secret_keys = committed_config("prod", overrides)
    run = run_program("prod", config, secret_keys, ProgramMocks(), lambda: main(reach=lambda *a: reached.append(a)))
    assert reached == [
        (Engine("ssh://deploy@manager", KEY), "prod", "ichrisbirch:dockerHost"),
        (Engine("ssh://deploy@data", KEY), "prod", "ichrisbirch:dataNodeHost"),
    ]
    assert run.resources, "reached: the program went on"

    def unreachable(engine: Engine, stack: str, key: str) -> None:
        raise EngineUnreachable(f"stack {stack}: {key} {engine.host} cannot be reached")

    with pytest.raises(EngineUnreachable):
        run_program("prod", config, secret_keys, ProgramMocks(), lambda: main(reach=unreachable))


def test_dev_on_an_engine_elsewhere_runs_its_images_code_without_reloading(run_stack: RunStack) -> None:
    run = containers(run_stack("dev", dockerHost="ssh://deploy@10.0.0.2", bindAddress="10.0.0.2"))
    for name in APP_SERVICES:
        assert not run[name].inputs.get("volumes"), f"{name}: the checkout is not on that host"
    assert "--reload" not in run["api"].inputs["command"] and "--debug" not in run["app"].inputs["command"]
