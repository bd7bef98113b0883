"""Secret and ServiceConfig (kreuzwerker resource_docker_secret.go, resource_docker_config.go):
autonamed, every input forces a replacement, deleted only once no service uses them."""

from __future__ import annotations

import base64
from typing import Any

import docker

from proof import provider
from proof.provider import SECRET, SERVICE_CONFIG
from proof.provider.handlers.base import Docker, Handler, Resource, label_blocks, labels, refuse_unknown, retry


class SwarmObjectHandler(Handler):
    types = (SECRET, SERVICE_CONFIG)
    autonamed = True

    def check(self, type_token: str, inputs: dict[str, Any], engine: Docker) -> dict[str, Any]:
        refuse_unknown("input", inputs, set(provider.FIELDS[type_token]))
        return inputs

    def create(self, resource: Resource, inputs: dict[str, Any], engine: Docker) -> tuple[str, dict[str, Any]]:
        data = base64.b64decode(inputs["data"])
        given_labels = labels(inputs.get("labels", []))
        client = engine.client()
        if resource.type == SECRET:
            created = client.create_secret(inputs["name"], data, labels=given_labels)
        else:
            created = client.create_config(inputs["name"], data, labels=given_labels)
        object_id = str(created["ID"])
        state = self._read(resource.type, object_id, resource.inputs, engine)
        assert state is not None, f"{resource.name}: created, then not found"
        return object_id, state

    def read(self, resource: Resource, engine: Docker) -> dict[str, Any] | None:
        return self._read(resource.type, resource.id, resource.state, engine)

    @staticmethod
    def _read(type_token: str, object_id: str, prior: dict[str, Any], engine: Docker) -> dict[str, Any] | None:
        """A Secret's Read writes back only its name (its data cannot be read); a Config's writes its
        data (canonical standard base64) and labels too. Any inspect error means it is gone."""
        client = engine.client()
        try:
            if type_token == SECRET:
                return {**prior, "name": client.inspect_secret(object_id)["Spec"]["Name"]}
            spec = client.inspect_config(object_id)["Spec"]
        except docker.errors.APIError:
            return None
        data = base64.b64encode(base64.b64decode(spec.get("Data") or "")).decode()
        return {**prior, "name": spec["Name"], "data": data, "labels": label_blocks(spec.get("Labels"))}

    def delete(self, resource: Resource, inputs: dict[str, Any], engine: Docker) -> None:
        client = engine.client()
        if resource.type == SECRET:
            retry(lambda: client.remove_secret(resource.id), "in use", ignore_missing=False)
        else:
            retry(lambda: client.remove_config(resource.id), "in use", ignore_missing=False)
