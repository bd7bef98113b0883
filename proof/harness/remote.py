"""The test run's remote host (tests/remote/up.sh: Debian 13, Docker 26, reached over SSH) and prod
deployed on it by the real CLI through `ssh://`, from this machine, as a team deploys to its server:
the key in an SSH agent (as on an operator's machine and in the preview workflow), the host key
pinned in a known_hosts that the stack's dockerSshOpts names."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from infra.engine import Engine
from infra.identity import PROJECT_DIR
from proof.harness.cli import DOCKER
from proof.harness.ingress_prod import IngressProd
from proof.harness.pulumi import ProjectStack
from proof.harness.stacks import full, test_settings
from proof.harness.standins import Standins, copy_app
from proof.mocks import TEST_SECRETS

REMOTE = PROJECT_DIR / "tests" / "remote"  # up.sh, down.sh, sshd.sh


def remote_script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(REMOTE / name), *args], capture_output=True, text=True, timeout=900, check=False)


@contextmanager
def ssh_agent(socket: Path, key: str | None = None) -> Iterator[str]:
    """An SSH agent of its own, listening on `socket`, holding `key` (a private key's text) if
    given: what an operator's machine or the preview workflow holds. Yields the socket's path."""
    started = subprocess.run(["ssh-agent", "-a", str(socket), "-s"], capture_output=True, text=True, check=True)
    pid = started.stdout.split("SSH_AGENT_PID=", 1)[1].split(";", 1)[0]
    try:
        if key is not None:
            added = subprocess.run(
                ["ssh-add", "-q", "-"], input=key, env={**os.environ, "SSH_AUTH_SOCK": str(socket)},
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            assert added.returncode == 0, added.stderr
        yield str(socket)
    finally:
        subprocess.run(["kill", pid], capture_output=True, check=False)
        socket.unlink(missing_ok=True)


@dataclass(frozen=True)
class RemoteHost:
    """How this machine reaches the host: its address, `ssh://` Docker host, the key made for the
    run and the known_hosts that pins the host's key."""

    address: str
    docker_host: str
    key: Path
    known_hosts: Path

    @classmethod
    def up(cls) -> RemoteHost:
        started = remote_script("up.sh")
        assert started.returncode == 0, f"tests/remote/up.sh failed:\n{started.stdout}\n{started.stderr[-3000:]}"
        env = dict(line.split("=", 1) for line in started.stdout.splitlines() if line.startswith("ICB_REMOTE_"))
        key, known_hosts = Path(env["ICB_REMOTE_KEY"]), Path(env["ICB_REMOTE_KNOWN_HOSTS"])
        return cls(env["ICB_REMOTE_ADDRESS"], env["ICB_REMOTE_HOST"], key, known_hosts)

    @property
    def docker_ssh_opts(self) -> tuple[str, ...]:
        """The stack's dockerSshOpts: the host key pinned; the key comes from the agent."""
        return ("-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes")

    @property
    def ssh_options(self) -> tuple[str, ...]:
        """The harness's own SSH (inspecting the host): the key by file, never a prompt."""
        return ("-i", str(self.key), *self.docker_ssh_opts, "-o", "BatchMode=yes")

    def sshd(self, action: str) -> None:
        """tests/remote/sshd.sh stop|start: SSH to the host cut (every connection with it), or back."""
        done = remote_script("sshd.sh", action)
        assert done.returncode == 0, f"tests/remote/sshd.sh {action}: {done.stdout}{done.stderr}"

    @property
    def engine(self) -> Engine:
        """The host's engine as the harness reaches it (its key by file)."""
        return Engine(self.docker_host, self.ssh_options)

    def ssh(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`command` on the host, through SSH as the deploy user."""
        return subprocess.run(self.engine.on_host(*command), capture_output=True, text=True, check=check, timeout=600)

    def load(self, image: str) -> None:
        """`image` from this machine's engine onto the host's, as a registry would serve it."""
        save = subprocess.Popen([DOCKER, "save", image], stdout=subprocess.PIPE)
        loaded = subprocess.run(
            self.engine.command("load"), stdin=save.stdout, capture_output=True, text=True, timeout=600, check=False
        )
        assert save.wait() == 0 and loaded.returncode == 0, loaded.stderr

    def inspect(self, name: str) -> dict[str, object]:
        inspected: list[dict[str, object]] = json.loads(self.ssh("docker", "inspect", name).stdout)
        return inspected[0]


@dataclass
class RemoteProd(IngressProd):
    """prod on the remote host, reached through its ingress on the host's address."""

    host: RemoteHost


@contextmanager
def remote_prod(standins: Standins, workspace: Path, **overrides: str) -> Iterator[RemoteProd]:
    """A fresh remote host with prod deployed on it through `ssh://`; the host is removed afterwards,
    whatever happened."""
    with ExitStack() as stack:
        stack.callback(remote_script, "down.sh")
        host = RemoteHost.up()
        for image in (standins.python, standins.postgres, standins.redis, standins.haproxy):
            host.load(image)
        app_dir = copy_app(workspace / "app")
        settings = test_settings(
            standins,
            app_dir,
            dockerHost=host.docker_host,
            dockerSshOpts=json.dumps(list(host.docker_ssh_opts)),
            bindAddress=host.address,
            **overrides,
        )
        agent = stack.enter_context(ssh_agent(workspace / "agent.sock", host.key.read_text()))
        project = ProjectStack(workspace, "prod", PROJECT_DIR / "Pulumi.prod.yaml", {"SSH_AUTH_SOCK": agent})
        config = {full(k): v for k, v in settings.items()}
        secret_keys = {full(k) for k in TEST_SECRETS}
        project.set_config(config, secret_keys)
        started = time.monotonic()
        first = project.up()
        took = time.monotonic() - started
        yield RemoteProd(project, first, config, secret_keys, app_dir, took, host.address, host)
