"""One handler per resource type the program uses: adding a type is a handler file and a line here."""

from __future__ import annotations

from proof.engine.handlers.base import Handler
from proof.engine.handlers.container import ContainerHandler
from proof.engine.handlers.docker_provider import ProviderHandler
from proof.engine.handlers.image import ImageHandler
from proof.engine.handlers.network import NetworkHandler
from proof.engine.handlers.remote_image import RemoteImageHandler
from proof.engine.handlers.service import ServiceHandler
from proof.engine.handlers.swarm_objects import SwarmObjectHandler
from proof.engine.handlers.tls import TlsHandler
from proof.engine.handlers.volume import VolumeHandler

HANDLER_CLASSES: tuple[type[Handler], ...] = (
    ProviderHandler, NetworkHandler, VolumeHandler, ImageHandler, RemoteImageHandler, ContainerHandler,
    SwarmObjectHandler, ServiceHandler, TlsHandler,
)  # fmt: skip


def docker_handlers() -> dict[str, Handler]:
    """Type token -> its handler."""
    return {type_token: cls() for cls in HANDLER_CLASSES for type_token in cls.types}
