"""Service (kreuzwerker resource_docker_service*.go, provider-semantics.md §6): created with the
Docker client's registry query and the provider's converge wait (removed when it does not
converge), updated with the full spec and its wait on the update's status (a paused or rolled-back
update fails the run with the desired spec recorded), read back as the provider flattens it,
deleted with its tasks' grace period."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import docker
import requests

from infra.canonical import parse_go_duration
from proof import provider
from proof.provider import SERVICE, reveal
from proof.provider.handlers.base import Docker, Handler, ProviderError, Resource
from proof.provider.handlers.service_spec import from_engine, to_engine

# What this stand-in applies to a Swarm service (pulumi-docker's names).
SERVICE_APPLIED = frozenset(
    {"name", "labels", "taskSpec", "mode", "updateConfig", "rollbackConfig", "endpointSpec", "convergeConfig"}
)


class ServiceHandler(Handler):
    types = (SERVICE,)
    known_inputs = SERVICE_APPLIED

    def create(self, resource: Resource, inputs: dict[str, Any], engine: Docker) -> tuple[str, dict[str, Any]]:
        client = engine.client()
        spec = query_registry(client, to_engine(inputs))
        response = client._post_json(client._url("/services/create"), data=spec)  # noqa: SLF001 (raw API, as the provider sends it)
        service_id = str(client._result(response, True)["ID"])  # noqa: SLF001
        if "convergeConfig" in inputs:
            try:
                converge(client, service_id, inputs)
            except ProviderError:
                # As the provider does: a service that did not converge is removed, nothing recorded.
                with contextlib.suppress(docker.errors.NotFound):
                    client.remove_service(service_id)
                raise
        return service_id, self._read(service_id, resource.inputs, engine)

    def read_now(self, resource: Resource, engine: Docker) -> dict[str, Any]:
        return self._read(resource.id, resource.state, engine)

    @staticmethod
    def _read(service_id: str, prior: dict[str, Any], engine: Docker) -> dict[str, Any]:
        # convergeConfig is not read: it stays as given (secret-marked values too).
        kept = {k: v for k, v in prior.items() if k == "convergeConfig"}
        return {**kept, **from_engine(engine.client().inspect_service(service_id))}

    def update(
        self, old: Resource, inputs: dict[str, Any], diff: provider.Diff, engine: Docker
    ) -> tuple[str, dict[str, Any], str]:
        plain = reveal(inputs)
        # The desired spec is recorded even when the update then fails to converge (§1: the next
        # run is a no-op); the error reaches the run after that.
        old.inputs, old.state = inputs, {**old.state, **plain}
        update_service(engine.client(), old.id, plain)
        return old.id, self._read(old.id, old.state, engine), ""

    def delete(self, resource: Resource, inputs: dict[str, Any], engine: Docker) -> None:
        """deleteService: with a stopGracePeriod, the containers of the service's live tasks are
        listed first (by the service's name); ServiceRemove (an error if it is gone); then each of
        those containers is waited for, up to the grace period, and force-removed with its volumes,
        on the provider's own engine (a container on another node is not there: skipped)."""
        client = engine.client()
        grace = inputs["taskSpec"]["containerSpec"].get("stopGracePeriod")
        containers = []
        if grace:
            for task in client.tasks(filters={"service": inputs["name"]}):
                container = task["Status"].get("ContainerStatus", {}).get("ContainerID", "")
                if container.strip() and task["Status"]["State"] != "shutdown":
                    containers.append(container)
        client.remove_service(resource.id)
        for container in containers:
            with contextlib.suppress(docker.errors.NotFound, requests.exceptions.RequestException):
                client.wait(container, timeout=seconds(grace), condition="removed")
            try:
                client.remove_container(container, force=True, v=True)
            except docker.errors.APIError as error:
                if "No such container" not in str(error) and "already in progress" not in str(error):
                    raise


def query_registry(client: docker.APIClient, spec: dict[str, Any]) -> dict[str, Any]:
    """The Docker client's ServiceCreate with QueryRegistry (the provider's create sets it; its update
    does not): the image is pinned by digest and the platforms its manifest lists overwrite the
    spec's placement platforms (docker/cli resolveContainerSpecImage). An image the registry does not
    know is sent as it is."""
    container = spec["TaskTemplate"]["ContainerSpec"]
    try:
        found = client.inspect_distribution(container["Image"])
    except docker.errors.APIError:
        return spec
    digest = found["Descriptor"]["digest"]
    container["Image"] = f"{container['Image'].split('@')[0]}@{digest}"
    platforms = [
        {"Architecture": p.get("architecture", ""), "OS": p.get("os", "")} for p in found.get("Platforms") or []
    ]
    if platforms:
        spec["TaskTemplate"].setdefault("Placement", {})["Platforms"] = platforms
    return spec


def update_service(client: docker.APIClient, service_id: str, inputs: dict[str, Any]) -> None:
    """ServiceUpdate with the full spec; with convergeConfig, the provider's wait on UpdateStatus."""
    version = client.inspect_service(service_id)["Version"]["Index"]
    response = client._post_json(  # noqa: SLF001 (raw API, as the provider sends it)
        client._url("/services/{0}/update", service_id),  # noqa: SLF001
        params={"version": version},
        data=to_engine(inputs),
    )
    client._result(response, True)  # noqa: SLF001
    if "convergeConfig" not in inputs:
        return
    converge_config = inputs["convergeConfig"]
    time.sleep(seconds(converge_config.get("delay", "7s")))
    deadline = time.monotonic() + seconds(converge_config.get("timeout", "3m"))
    while True:
        status = client.inspect_service(service_id).get("UpdateStatus")
        state = status["State"] if status else None
        message = (status or {}).get("Message", "")
        if state is None:  # no update status: converged once the replicas run
            if len(running_tasks(client, service_id)[0]) == inputs["mode"]["replicated"]["replicas"]:
                return
        elif state == "completed":
            return
        elif state == "paused":
            raise ProviderError(f"service {inputs['name']}: service update paused: {message}")
        elif state in ("rollback_completed", "rollback_paused"):
            raise ProviderError(f"service {inputs['name']}: update failed and was rolled back ({state}): {message}")
        if time.monotonic() > deadline:
            raise ProviderError(f"service {inputs['name']} did not converge: update {state}: {message}")
        time.sleep(5)


def converge(client: docker.APIClient, service_id: str, inputs: dict[str, Any]) -> None:
    """The provider's wait: `delay`, then poll (every 5 s) until the running tasks on nodes that are
    not down equal the replicas, up to `timeout`."""
    converge_config = inputs["convergeConfig"]
    replicas = inputs["mode"]["replicated"]["replicas"]
    time.sleep(seconds(converge_config.get("delay", "7s")))
    deadline = time.monotonic() + seconds(converge_config.get("timeout", "3m"))
    while True:
        running, tasks = running_tasks(client, service_id)
        if len(running) == replicas:
            return
        if time.monotonic() > deadline:
            states = sorted(
                f"{t['Status']['State']}: {t['Status'].get('Err') or t['Status'].get('Message')}" for t in tasks
            )
            raise ProviderError(
                f"service {inputs['name']} did not converge: {len(running)} of {replicas} tasks running"
                f" ({'; '.join(states)})"
            )
        time.sleep(5)


def running_tasks(client: docker.APIClient, service_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(running tasks on nodes that are not down, all tasks meant to run): what the provider's
    converge and update waits count."""
    down = {n["ID"] for n in client.nodes() if n["Status"]["State"] == "down"}
    tasks = client.tasks(filters={"service": service_id, "desired-state": "running"})
    return [t for t in tasks if t["Status"]["State"] == "running" and t.get("NodeID") not in down], tasks


def seconds(duration: str) -> float:
    """A Go duration ("1m30s", "500ms") in seconds."""
    return parse_go_duration(duration) / 10**9
