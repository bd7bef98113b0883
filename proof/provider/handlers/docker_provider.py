"""The provider's own configuration (`docker.Provider`): the engine its resources are on (its `host`)."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import version as package_version
from typing import Any

from proof.provider.handlers.base import LOCAL_ENGINE, Handler
from proof.provider.schema import PROVIDER, NotModelled


class ProviderHandler(Handler):
    types = (PROVIDER,)
    known_inputs = frozenset({"host", "sshOpts", "version"})

    def configure(self, config: Mapping[str, Any]) -> str:
        """The engine this provider's resources reach; what the stand-in cannot reach is refused by name."""
        modelled = package_version("pulumi-docker")
        given = {k: v for k, v in config.items() if v not in (None, "", [])}
        unknown = sorted(set(given) - self.known_inputs)
        if unknown:
            raise NotModelled(f"provider configuration {', '.join(unknown)}")
        if str(given.get("version", modelled)).split(".")[0] != modelled.split(".")[0]:
            raise NotModelled(f"provider version {given['version']} (the model is of pulumi-docker {modelled})")
        host = str(given.get("host") or LOCAL_ENGINE)
        if not host.startswith("unix://"):
            raise NotModelled(f"a provider host {host} (this stand-in reaches only a local engine)")
        if given.get("sshOpts"):
            raise NotModelled("sshOpts on a unix:// host")
        return host
