"""Network (kreuzwerker resource_docker_network*.go)."""

from __future__ import annotations

from typing import Any

from proof.provider import NETWORK
from proof.provider.handlers.base import Docker, Handler, Resource, label_blocks, labels, retry


class NetworkHandler(Handler):
    types = (NETWORK,)
    known_inputs = frozenset({"name", "driver", "labels", "attachable", "options"})

    def create(self, resource: Resource, inputs: dict[str, Any], engine: Docker) -> tuple[str, dict[str, Any]]:
        created = engine.client().create_network(
            inputs["name"],
            driver=inputs.get("driver", "bridge"),
            labels=labels(inputs.get("labels", [])),
            attachable=inputs.get("attachable") or None,
            options=inputs.get("options") or None,
        )
        network_id = str(created["Id"])
        return network_id, self._read(network_id, engine)

    def read_now(self, resource: Resource, engine: Docker) -> dict[str, Any]:
        return {**resource.state, **self._read(resource.id, engine)}

    @staticmethod
    def _read(network_id: str, engine: Docker) -> dict[str, Any]:
        info = engine.client().inspect_network(network_id)
        ipam = info.get("IPAM") or {}
        return {
            "name": info["Name"],
            "labels": label_blocks(info.get("Labels")),
            "driver": info["Driver"],
            "options": info.get("Options") or {},
            "internal": info["Internal"],
            "attachable": info["Attachable"],
            "ingress": info["Ingress"],
            "ipv6": info["EnableIPv6"],
            "ipamDriver": ipam.get("Driver") or "default",
            "ipamOptions": ipam.get("Options") or {},
            "scope": info["Scope"],
        }

    def delete(self, resource: Resource, inputs: dict[str, Any], engine: Docker) -> None:
        client = engine.client()
        retry(lambda: client.remove_network(resource.id), "has active endpoints", ignore_missing=True)
