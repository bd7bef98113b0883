"""RemoteImage (kreuzwerker resource_docker_image*.go): an image the engine has or pulls."""

from __future__ import annotations

import contextlib
from typing import Any

import docker

from proof import provider
from proof.provider import REMOTE_IMAGE
from proof.provider.handlers.base import Docker, Handler, ProviderError, Resource


class RemoteImageHandler(Handler):
    types = (REMOTE_IMAGE,)
    known_inputs = frozenset({"name", "keepLocally", "forceRemove"})

    def create(self, resource: Resource, inputs: dict[str, Any], engine: Docker) -> tuple[str, dict[str, Any]]:
        client = engine.client()
        try:
            info = client.inspect_image(inputs["name"])
        except docker.errors.ImageNotFound:
            try:  # as the provider does: pull what the engine does not have
                client.pull(inputs["name"])
                info = client.inspect_image(inputs["name"])
            except docker.errors.APIError as error:
                raise ProviderError(
                    f"remote image {resource.name}: {inputs['name']} could not be pulled: {error}"
                ) from None
        digests = info.get("RepoDigests") or []
        state = {**inputs, "imageId": info["Id"], "repoDigest": digests[0] if digests else info["Id"]}
        return f"{info['Id']}{inputs['name']}", state  # its id is <image id><name>

    def read_now(self, resource: Resource, engine: Docker) -> dict[str, Any]:
        engine.client().inspect_image(resource.state["imageId"])  # found by its image id
        return resource.state

    def update(
        self, old: Resource, inputs: dict[str, Any], diff: provider.Diff, engine: Docker
    ) -> tuple[str, dict[str, Any], str]:
        image_id, state = self.create(old, inputs, engine)
        return image_id, state, ""

    def delete(self, resource: Resource, inputs: dict[str, Any], engine: Docker) -> None:
        if not inputs.get("keepLocally"):
            with contextlib.suppress(docker.errors.NotFound):
                engine.client().remove_image(inputs["name"], force=bool(inputs.get("forceRemove")))
