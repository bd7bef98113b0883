"""One handler per resource type the program uses: adding a type is a handler file and a line here."""

from __future__ import annotations

from proof.provider.handlers.base import Handler
from proof.provider.handlers.container import ContainerHandler
from proof.provider.handlers.docker_provider import ProviderHandler
from proof.provider.handlers.image import ImageHandler
from proof.provider.handlers.network import NetworkHandler
from proof.provider.handlers.remote_image import RemoteImageHandler
from proof.provider.handlers.service import ServiceHandler
from proof.provider.handlers.swarm_objects import SwarmObjectHandler
from proof.provider.handlers.tls import TlsHandler
from proof.provider.handlers.volume import VolumeHandler

PACKAGE_HANDLERS: dict[str, tuple[type[Handler], ...]] = {
    "docker": (
        ProviderHandler, NetworkHandler, VolumeHandler, ImageHandler, RemoteImageHandler, ContainerHandler,
        SwarmObjectHandler, ServiceHandler,
    ),
    "tls": (TlsHandler,),
}  # fmt: skip


def handlers_of(package: str) -> dict[str, Handler]:
    """Type token -> its handler, for the provider package (`docker` or `tls`) a plugin serves."""
    return {type_token: cls() for cls in PACKAGE_HANDLERS[package] for type_token in cls.types}
