"""The provider resource (`docker.Provider`): the engine its resources are on (its `host`)."""

from __future__ import annotations

from importlib.metadata import version as package_version
from typing import Any

from proof.engine.handlers.base import LOCAL_ENGINE, Docker, Handler
from proof.engine.state import Resource
from proof.provider import PROVIDER, NotModelled


class ProviderHandler(Handler):
    types = (PROVIDER,)
    known_inputs = frozenset({"host", "sshOpts", "version"})

    def create(self, resource: Resource, inputs: dict[str, Any], engine: Docker) -> tuple[str, dict[str, Any]]:
        modelled = package_version("pulumi-docker")
        if inputs.get("version", modelled).split(".")[0] != "5":
            raise NotModelled(f"provider version {inputs['version']} (the model is of pulumi-docker 5.x)")
        host = inputs.get("host", LOCAL_ENGINE)
        if not host.startswith("unix://"):
            raise NotModelled(f"a provider host {host} (this stand-in reaches only a local engine)")
        if inputs.get("sshOpts"):
            raise NotModelled("sshOpts on a unix:// host")
        # The engine the resources of this provider reach: the engine stand-in reads `host` from state.
        return "docker-provider", dict(inputs)
