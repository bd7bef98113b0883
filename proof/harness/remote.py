"""The test run's remote host (tests/remote/up.sh: Debian 13, Docker 26, reached over SSH) and prod
deployed on it by the real CLI through `ssh://`, from this machine, as a team deploys to its server."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from infra.identity import PROJECT_DIR
from proof.harness.cli import DOCKER
from proof.harness.ingress_prod import IngressProd
from proof.harness.pulumi import ProjectStack
from proof.harness.stacks import full, test_settings
from proof.harness.standins import Standins, copy_app
from proof.mocks import TEST_SECRETS

REMOTE = PROJECT_DIR / "tests" / "remote"  # up.sh, down.sh


def remote_script(name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(REMOTE / name)], capture_output=True, text=True, timeout=900, check=False)


@dataclass(frozen=True)
class RemoteHost:
    """How this machine reaches the host: its address, `ssh://` Docker host and the SSH options
    (the key made for the run, the host key pinned)."""

    address: str
    docker_host: str
    ssh_options: tuple[str, ...]

    @classmethod
    def up(cls) -> RemoteHost:
        started = remote_script("up.sh")
        assert started.returncode == 0, f"tests/remote/up.sh failed:\n{started.stdout}\n{started.stderr[-3000:]}"
        env = dict(line.split("=", 1) for line in started.stdout.splitlines() if line.startswith("ICB_REMOTE_"))
        options = ("-i", env["ICB_REMOTE_KEY"], "-o", f"UserKnownHostsFile={env['ICB_REMOTE_KNOWN_HOSTS']}",
                   "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes")  # fmt: skip
        return cls(env["ICB_REMOTE_ADDRESS"], env["ICB_REMOTE_HOST"], options)

    def ssh(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`command` on the host, through SSH as the deploy user."""
        user_at = self.docker_host.removeprefix("ssh://")
        return subprocess.run(
            ["ssh", *self.ssh_options, user_at, *command], capture_output=True, text=True, check=check, timeout=600
        )

    def load(self, image: str) -> None:
        """`image` from this machine's engine onto the host's, as a registry would serve it."""
        save = subprocess.Popen([DOCKER, "save", image], stdout=subprocess.PIPE)
        loaded = subprocess.run(
            ["ssh", *self.ssh_options, self.docker_host.removeprefix("ssh://"), "docker", "load"],
            stdin=save.stdout, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
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
    try:
        host = RemoteHost.up()
        for image in (standins.python, standins.postgres, standins.redis, standins.haproxy):
            host.load(image)
        app_dir = copy_app(workspace / "app")
        settings = test_settings(
            standins,
            app_dir,
            dockerHost=host.docker_host,
            dockerSshOpts=json.dumps(list(host.ssh_options)),
            bindAddress=host.address,
            **overrides,
        )
        project = ProjectStack(workspace, "prod", PROJECT_DIR / "Pulumi.prod.yaml")
        config = {full(k): v for k, v in settings.items()}
        secret_keys = {full(k) for k in TEST_SECRETS}
        project.set_config(config, secret_keys)
        started = time.monotonic()
        first = project.up()
        took = time.monotonic() - started
        yield RemoteProd(project, first, config, secret_keys, app_dir, took, host.address, host)
    finally:
        remote_script("down.sh")
