"""The three-node test swarm (tests/swarm/up.sh, down.sh) on this one machine, proven before the
program is deployed on it: three Docker engines in network namespaces of their own joined into one
swarm, a registry every node pulls from, an overlay network whose tasks answer across nodes, and a
teardown that leaves nothing behind."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from proof.harness.cli import DOCKER, TEST_LABEL, until
from proof.harness.standins import Standins
from proof.harness.swarm import NODES, on, swarm_script

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def swarm(engine: None) -> Iterator[dict[str, str]]:
    started = time.monotonic()
    up = swarm_script("up.sh")
    assert up.returncode == 0, up.stdout + up.stderr
    print(f"swarm up in {time.monotonic() - started:.1f} s")
    env = dict(line.split("=", 1) for line in up.stdout.splitlines() if line.startswith("ICB_SWARM_"))
    try:
        yield env
    finally:
        down = swarm_script("down.sh")
        assert down.returncode == 0, down.stdout + down.stderr


def test_three_ready_nodes_with_their_own_names_and_the_data_label(swarm: dict[str, str]) -> None:
    manager = swarm["ICB_SWARM_MANAGER"]
    nodes = [json.loads(line) for line in on(manager, "node", "ls", "--format", "{{json .}}").stdout.splitlines()]
    assert sorted(n["Hostname"] for n in nodes) == sorted(NODES)
    assert {n["Status"] for n in nodes} == {"Ready"} and [n["ManagerStatus"] for n in nodes].count("Leader") == 1
    labels = json.loads(on(manager, "node", "inspect", "icb-worker1", "-f", "{{json .Spec.Labels}}").stdout)
    assert labels == {"ichrisbirch.data": "true"}
    addresses = {on(manager, "node", "inspect", n, "-f", "{{.Status.Addr}}").stdout.strip() for n in NODES}
    assert addresses == set(swarm["ICB_SWARM_ADDRESSES"].split(","))


def test_an_image_pushed_to_the_registry_runs_on_every_node_and_tasks_answer_across_the_overlay(
    swarm: dict[str, str], standins: Standins
) -> None:
    manager, registry = swarm["ICB_SWARM_MANAGER"], swarm["ICB_SWARM_REGISTRY"]
    image = f"{registry}/icb-standin/python:harness"
    # The manager's engine gets the stand-in from this machine's, and pushes it for the others.
    save = subprocess.Popen([DOCKER, "save", standins.python], stdout=subprocess.PIPE)
    on(manager, "load", stdin=save.stdout)
    save.wait()
    on(manager, "tag", standins.python, image)
    pushed = on(manager, "push", image).stdout
    digest = next(line.split()[2] for line in pushed.splitlines() if "digest: sha256:" in line)
    on(manager, "network", "create", "--driver", "overlay", "--attachable", "icb-harness")
    try:
        on(
            manager, "service", "create", "--name", "icb-harness-web", "--network", "icb-harness",
            "--endpoint-mode", "dnsrr", "--replicas", "3", "--replicas-max-per-node", "1",
            "--label", TEST_LABEL, f"{registry}/icb-standin/python@{digest}",
            "sh", "-c", "hostname > /tmp/name && cd /tmp && exec python3 -m http.server 8000",
        )  # fmt: skip
        until(
            lambda: True if on(manager, "service", "ls", "--filter", "name=icb-harness-web", "--format",
                               "{{.Replicas}}").stdout.startswith("3/3") else None,
            timeout=90,
            what="three running tasks",
        )  # fmt: skip
        placed = on(manager, "service", "ps", "icb-harness-web", "--format", "{{.Node}}").stdout.split()
        assert sorted(placed) == sorted(NODES), "one task on each node, each pulled from the registry"
        # From a container on the manager, every task answers at its own address over the overlay.
        probe = (
            "import socket, urllib.request\n"
            "addresses = sorted({a[4][0] for a in socket.getaddrinfo('tasks.icb-harness-web', 8000)})\n"
            "print(len(addresses), sorted(urllib.request.urlopen(f'http://{a}:8000/name', timeout=5).read().decode()"
            ".strip() for a in addresses))\n"
        )
        answer = on(
            manager, "run", "--rm", "--label", TEST_LABEL, "--network", "icb-harness", standins.python,
            "python3", "-c", probe,
        ).stdout.strip()  # fmt: skip
        assert answer.startswith("3 "), answer
    finally:
        on(manager, "service", "rm", "icb-harness-web", check=False)
        until(
            lambda: True if on(manager, "network", "rm", "icb-harness", check=False).returncode == 0 else None,
            timeout=60,
            what="the overlay network to be removable",
        )


def test_teardown_leaves_nothing(swarm: dict[str, str]) -> None:
    # Last in the module: down.sh here, then once more by the fixture (it is idempotent).
    down = swarm_script("down.sh")
    assert down.returncode == 0, down.stdout + down.stderr
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert "icb-swarm-" not in namespaces, namespaces
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    veths = [f"icbv-{node.removeprefix('icb-')}" for node in NODES]  # tests/swarm/common.sh's names
    assert "icbswarm0" not in links and not [v for v in veths if f" {v}@" in links], links
    rules = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True, check=True).stdout
    assert "icbswarm0" not in rules, rules
    nat = subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True, check=True).stdout
    subnet = swarm["ICB_SWARM_ADDRESSES"].split(",")[0].rsplit(".", 1)[0] + ".0/24"
    assert subnet not in nat, nat
    processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert "/tmp/icb-swarm" not in processes, [p for p in processes.splitlines() if "/tmp/icb-swarm" in p]
    assert "/tmp/icb-swarm" not in Path("/proc/mounts").read_text()
    assert not Path("/tmp/icb-swarm").exists()
