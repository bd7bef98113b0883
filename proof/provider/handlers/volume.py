"""Volume (kreuzwerker resource_docker_volume.go)."""

from __future__ import annotations

from typing import Any

from proof.provider import VOLUME
from proof.provider.handlers.base import Docker, Handler, Resource, label_blocks, labels, retry


class VolumeHandler(Handler):
    types = (VOLUME,)
    known_inputs = frozenset({"name", "labels"})

    def create(self, resource: Resource, inputs: dict[str, Any], engine: Docker) -> tuple[str, dict[str, Any]]:
        # As the daemon does: creating a volume whose name exists returns the existing one (adopted;
        # Read then records its labels, and a mismatch replaces it on the next run).
        engine.client().create_volume(inputs["name"], labels=labels(inputs.get("labels", [])))
        state = self._read(inputs["name"], engine)
        return state["name"], state

    def read_now(self, resource: Resource, engine: Docker) -> dict[str, Any]:
        return {**resource.state, **self._read(resource.id, engine)}

    @staticmethod
    def _read(name: str, engine: Docker) -> dict[str, Any]:
        info = engine.client().inspect_volume(name)
        return {
            "name": info["Name"],
            "labels": label_blocks(info.get("Labels")),
            "driver": info["Driver"],
            "driverOpts": info.get("Options") or {},
            "mountpoint": info["Mountpoint"],
        }

    def delete(self, resource: Resource, inputs: dict[str, Any], engine: Docker) -> None:
        client = engine.client()
        retry(lambda: client.remove_volume(resource.id, force=True), "in use", ignore_missing=True)
