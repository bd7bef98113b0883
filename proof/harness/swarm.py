"""The three-node test swarm (tests/swarm/up.sh) and prod deployed on it by the real CLI: shared by
the swarm tests and the benchmark."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from infra.identity import PROJECT_DIR
from proof.harness.cli import DOCKER, docker
from proof.harness.clients import https_to
from proof.harness.ingress_prod import IngressProd
from proof.harness.pulumi import ProjectStack
from proof.harness.stacks import full, test_settings
from proof.harness.standins import Standins, copy_app
from proof.mocks import TEST_SECRETS

SWARM = PROJECT_DIR / "tests" / "swarm"  # the harness scripts: up.sh, down.sh, stop-node.sh
NODES = ("icb-manager", "icb-worker1", "icb-worker2")


def swarm_script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run tests/swarm/<name> (up.sh, down.sh, stop-node.sh)."""
    return subprocess.run(["bash", str(SWARM / name), *args], capture_output=True, text=True, timeout=300, check=False)


def on(host: str, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return docker("-H", host, *args, **kwargs)  # type: ignore[arg-type]


def node_socket(node: str) -> str:
    return f"unix:///tmp/icb-swarm/{node}/docker.sock"


def to_registry(manager: str, registry: str, image: str) -> str:
    """The stand-in `image`, loaded into the manager's engine and pushed to the swarm's registry."""
    save = subprocess.Popen([DOCKER, "save", image], stdout=subprocess.PIPE)
    on(manager, "load", stdin=save.stdout)
    save.wait()
    pushed = f"{registry}/{image}"
    on(manager, "tag", image, pushed)
    on(manager, "push", pushed)
    return pushed


def https(
    method: str, address: str, host: str, path: str, ca: str, body: dict[str, object] | None = None, timeout: float = 10
) -> tuple[int, str]:
    """One request to the ingress's host-mode port 443 on `address`, verifying `host`'s certificate."""
    return https_to(address, 443, method, path, host, ca, body, timeout)


@dataclass
class SwarmProd(IngressProd):
    """The deployed swarm stack, reached through the ingress on the manager's address."""

    manager: str
    addresses: list[str]


@contextmanager
def swarm_prod(standins: Standins, workspace: Path, **overrides: str) -> Iterator[SwarmProd]:
    """A fresh test swarm with prod deployed on it (config `overrides` beside the swarm's own);
    the swarm is removed afterwards, whatever happened."""
    up = swarm_script("up.sh")
    assert up.returncode == 0, up.stdout + up.stderr
    env = dict(line.split("=", 1) for line in up.stdout.splitlines() if line.startswith("ICB_SWARM_"))
    manager, registry = env["ICB_SWARM_MANAGER"], env["ICB_SWARM_REGISTRY"]
    try:
        # The base image the manager builds on, and the images every node pulls from the registry.
        to_registry(manager, registry, standins.python)
        app_dir = copy_app(workspace / "app")
        settings = test_settings(
            standins,
            app_dir,
            orchestrator="swarm",
            dockerHost=manager,
            dataNodeHost=env["ICB_SWARM_DATA_NODE"],
            imageRegistry=f"{registry}/icb",
            postgresImage=to_registry(manager, registry, standins.postgres),
            redisImage=to_registry(manager, registry, standins.redis),
            haproxyImage=to_registry(manager, registry, standins.haproxy),
            waitTimeoutSeconds="150",
            **overrides,
        )
        project = ProjectStack(workspace, "prod", PROJECT_DIR / "Pulumi.prod.yaml")
        config = {full(k): v for k, v in settings.items()}
        secret_keys = {full(k) for k in TEST_SECRETS}
        project.set_config(config, secret_keys)
        started = time.monotonic()
        first = project.up()
        took = time.monotonic() - started
        addresses = env["ICB_SWARM_ADDRESSES"].split(",")
        yield SwarmProd(project, first, config, secret_keys, app_dir, took, addresses[0], manager, addresses)
    finally:
        swarm_script("down.sh")
