"""The engine stand-in on a real Docker engine, with the operations the suite uses around a run."""

from __future__ import annotations

import time
from pathlib import Path

import docker

from infra.config import PROJECT_DIR
from proof.engine.engine import Engine
from proof.engine.handlers import docker_handlers
from proof.engine.handlers.base import MARKER
from proof.engine.report import DeploymentError
from proof.provider import CONTAINER, PROVIDER


class DockerEngine(Engine):
    """`pulumi up` and `pulumi refresh` of the program with pulumi-docker's handlers, state in `state_file`."""

    def __init__(self, state_file: Path, workdir: Path = PROJECT_DIR) -> None:
        super().__init__(state_file, docker_handlers(), workdir)

    def client(self) -> docker.APIClient:
        """A client of the engine the stack deploys to: its main provider's (`docker`), once created."""
        main = next((r for r in self.resources.values() if r.type == PROVIDER and r.name == "docker"), None)
        return self._engine_of(main.urn if main else "").client()

    def wait_healthy(self, container: str, timeout: float) -> None:
        """Poll a container until healthy; fail early, with its logs, when it exits or restarts."""
        deadline = time.monotonic() + timeout
        client = self.client()
        restarts_before = client.inspect_container(container)["RestartCount"]
        while True:
            info = client.inspect_container(container)
            state = info["State"]
            if (state.get("Health") or {}).get("Status") == "healthy":
                return
            if state["Status"] == "exited" or info["RestartCount"] > restarts_before:
                logs = client.logs(container, tail=40).decode(errors="replace")
                raise DeploymentError(f"{container} exited with {state['ExitCode']} before it was healthy:\n{logs}")
            if time.monotonic() > deadline:
                probes = (state.get("Health") or {}).get("Log") or []
                last = probes[-1]["Output"].strip() if probes else "no probe ran"
                raise DeploymentError(f"{container} not healthy within {timeout}s (last probe: {last})")
            time.sleep(0.2)

    def ids(self, type_token: str = CONTAINER) -> dict[str, str]:
        """Logical name -> id of every resource of a type in state."""
        return {r.name: r.id for r in self.resources.values() if r.type == type_token}

    def time_to_healthy(self) -> float:
        t = self.timings
        assert t.first_created_at is not None and t.healthy
        return max(t.healthy.values()) - t.first_created_at

    def time_from_first_container_to_healthy(self) -> float:
        t = self.timings
        return max(t.healthy.values()) - min(t.started.values())

    def sweep(self) -> list[str]:
        """Remove everything this stand-in created (and only that), protected or not; forget the state."""
        client = self.client()
        removed = []
        label = f"{MARKER[0]}={MARKER[1]}"
        for container in client.containers(all=True, filters={"label": label}):
            client.remove_container(container["Id"], force=True, v=True)
            removed.append(container["Names"][0].lstrip("/"))
        for volume in client.volumes(filters={"label": label}).get("Volumes") or []:
            client.remove_volume(volume["Name"], force=True)
            removed.append(volume["Name"])
        for network in client.networks(filters={"label": label}):
            client.remove_network(network["Id"])
            removed.append(network["Name"])
        self.store.resources, self.store.pending_deletes = {}, []
        self.store.save()
        return removed
