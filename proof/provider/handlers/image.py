"""pulumi-docker's native Image (provider.go, image.go): built with BuildKit on the provider's engine,
pushed unless skipPush; diffed against its last inputs, its build context by digest."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from proof import provider
from proof.provider import IMAGE, NotModelled
from proof.provider.handlers.base import Docker, Handler, ProviderError, Resource, refuse_unknown

BUILDKIT_DOCKER = "/usr/bin/docker"  # world.md: the only client here that builds with BuildKit
BUILD_INPUTS = frozenset({"context", "dockerfile", "target", "args", "builderVersion", "platform", "contextDigest"})


class ImageHandler(Handler):
    types = (IMAGE,)
    diffs_inputs = True
    known_inputs = frozenset({"imageName", "build", "skipPush", "buildOnPreview", "registry"})

    def check(self, type_token: str, inputs: dict[str, Any], engine: Docker) -> dict[str, Any]:
        return provider.check_image(inputs, engine.workdir)

    def create(self, resource: Resource, inputs: dict[str, Any], engine: Docker) -> tuple[str, dict[str, Any]]:
        refuse_unknown("image input", inputs, self.known_inputs or frozenset())
        if inputs.get("registry"):
            raise NotModelled("registry credentials (the test registry needs no login)")
        build = inputs["build"]
        refuse_unknown("image build input", build, BUILD_INPUTS)
        if build.get("builderVersion", "BuilderBuildKit") != "BuilderBuildKit":
            raise NotModelled(f"builderVersion {build.get('builderVersion')}")
        context = provider.resolve_path(engine.workdir, build["context"])
        dockerfile = provider.resolve_path(engine.workdir, build["dockerfile"])
        # On the engine the provider talks to (a swarm's manager builds, and pushes, its own image).
        command = [BUILDKIT_DOCKER, "-H", engine.base_url, "build", "-f", str(dockerfile), "-t", inputs["imageName"]]
        command += ["--platform", build["platform"]] if build.get("platform") else []
        command += ["--target", build["target"]] if build.get("target") else []
        for key, value in sorted((build.get("args") or {}).items()):
            command += ["--build-arg", f"{key}={value}"]
        result = subprocess.run(
            [*command, str(context)],
            capture_output=True,
            text=True,
            timeout=1200,
            env={"DOCKER_BUILDKIT": "1", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
        )
        if result.returncode != 0:
            raise ProviderError(f"image {resource.name}: build failed:\n{result.stderr[-3000:]}")
        image_id = engine.client().inspect_image(inputs["imageName"])["Id"]
        repo_digest = image_id  # with skipPush: the local image id
        if not inputs.get("skipPush"):
            repo_digest = self._push(resource.name, inputs["imageName"], engine)
        state = {
            **inputs,
            "repoDigest": repo_digest,
            "baseImageName": inputs["imageName"],
            "registryServer": "",
            "context": str(context),
            "dockerfile": str(dockerfile.relative_to(context))
            if dockerfile.is_relative_to(context)
            else str(dockerfile),
            "platform": build.get("platform", ""),
        }
        return inputs["imageName"], state  # the Image's id is its name and never changes

    @staticmethod
    def _push(name: str, image_name: str, engine: Docker) -> str:
        pushed = subprocess.run(
            [BUILDKIT_DOCKER, "-H", engine.base_url, "push", image_name], capture_output=True, text=True, timeout=600
        )
        found = re.search(r"digest: (sha256:[0-9a-f]{64})", pushed.stdout)
        if pushed.returncode != 0 or not found:
            raise ProviderError(f"image {name}: push failed:\n{pushed.stdout[-2000:]}{pushed.stderr[-2000:]}")
        return f"{image_name.rsplit(':', 1)[0]}@{found.group(1)}"

    def update(
        self, old: Resource, inputs: dict[str, Any], diff: provider.Diff, engine: Docker
    ) -> tuple[str, dict[str, Any], str]:
        image_id, state = self.create(old, inputs, engine)  # an update builds again under the same name
        return image_id, state, "rebuilt"

    # Read returns the state as it is; Delete removes nothing (the native provider's Delete is a no-op).
