"""A deployed stack as Pulumi recorded it (`pulumi stack export`): its containers and Swarm services,
under the names they have, on the engines their providers talk to. What the operator's commands
(infra/ops.py, infra/diagnose.py) read, never guessed names.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Any

from infra.engine import LOCAL_ENGINE, Engine, ssh_options
from infra.identity import PROJECT_DIR

CONTAINER = "docker:index/container:Container"
SERVICE = "docker:index/service:Service"
IMAGE = "docker:index/image:Image"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
PROVIDER = "pulumi:providers:docker"
ONE_SHOTS = frozenset({"migrate", "tests"})  # run once per release: exited 0 is their healthy


class OpsError(Exception):
    """One line for the operator: what is wrong, and what would be right."""


def stacks() -> list[str]:
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in PROJECT_DIR.glob("Pulumi.*.yaml"))


def pulumi(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    ran = subprocess.run(["pulumi", *args], cwd=PROJECT_DIR, capture_output=True, text=True, check=False)
    if check and ran.returncode != 0:
        reason = next((line for line in ran.stderr.splitlines() if line.strip()), f"exit {ran.returncode}")
        raise OpsError(f"`pulumi {' '.join(args[:3])}` failed: {reason.strip()}")
    return ran


@dataclass(frozen=True)
class Workload:
    """One service of the stack as it runs now: a container on an engine, or a Swarm service."""

    service: str  # its name in the program (the resource's logical name)
    kind: str  # "container" or "swarm"
    name: str  # the container's or the Swarm service's name on the engine
    engine: Engine  # the engine that holds it (its provider's host and SSH options)

    @property
    def one_shot(self) -> bool:
        return self.service in ONE_SHOTS


@dataclass
class StackState:
    """The stack's resources as the last update left them."""

    stack: str
    resources: list[dict[str, Any]]

    @classmethod
    def load(cls, stack: str) -> StackState:
        if stack not in stacks():
            raise OpsError(f"no stack {stack!r} in this project: one of {', '.join(stacks())}")
        exported = pulumi("stack", "export", "--stack", stack, check=False)
        if exported.returncode != 0:
            if "no stack named" in exported.stderr or "not found" in exported.stderr:
                raise OpsError(f"the {stack} stack is not deployed (scripts/deploy {stack})")
            raise OpsError(f"`pulumi stack export --stack {stack}` failed: {exported.stderr.strip()}")
        resources = json.loads(exported.stdout).get("deployment", {}).get("resources") or []
        state = cls(stack, [r for r in resources if not r.get("delete")])
        if not state.workloads():
            raise OpsError(f"the {stack} stack is not deployed: its state holds no container or service")
        return state

    def engines(self) -> dict[str, Engine]:
        """Provider reference (urn::id) -> the Docker engine it talks to, as it reaches it."""
        engines = {}
        for r in self.resources:
            if r["type"] == PROVIDER:
                given = {**(r.get("inputs") or {}), **(r.get("outputs") or {})}
                host = str(given.get("host") or LOCAL_ENGINE)
                options = ssh_options(given.get("sshOpts")) if host.startswith("ssh://") else ()
                engines[f"{r['urn']}::{r['id']}"] = Engine(host, options)
        return engines

    def workloads(self) -> list[Workload]:
        engines = self.engines()
        found = []
        for r in self.resources:
            if r["type"] not in (CONTAINER, SERVICE):
                continue
            if (r.get("inputs") or {}).get("start") is False:
                continue  # a holder of a file (a secret, a configuration): created, never started
            name = (r.get("outputs") or {}).get("name") or (r.get("inputs") or {}).get("name")
            kind = "container" if r["type"] == CONTAINER else "swarm"
            engine = engines.get(r.get("provider", ""), Engine(LOCAL_ENGINE))
            found.append(Workload(r["urn"].rsplit("::", 1)[1], kind, str(name), engine))
        return sorted(found, key=lambda w: w.service)

    def of(self, service: str) -> list[Workload]:
        matching = [w for w in self.workloads() if w.service == service]
        if not matching:
            known = sorted({w.service for w in self.workloads()})
            raise OpsError(f"the {self.stack} stack has no service {service!r}: one of {', '.join(known)}")
        return matching

    def release(self) -> str:
        return release_of(self.resources)


def release_of(resources: list[dict[str, Any]]) -> str:
    """The application image a state runs: the tag of the image it built, or the prebuilt reference."""
    for r in resources:
        outputs = r.get("outputs") or {}
        if r["urn"].endswith("::app-image"):
            if r["type"] == IMAGE:
                return str(outputs.get("imageName") or "-")
            if r["type"] == REMOTE_IMAGE:
                return str(outputs.get("name") or "-")
    return "-"
