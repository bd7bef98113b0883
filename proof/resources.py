"""The Pulumi type tokens of the resources the program declares, and Pulumi's secret markers: what
the mocks, the harness and the tests name resources and secret values by."""

from __future__ import annotations

from typing import Any

from pulumi.runtime import rpc

CONTAINER = "docker:index/container:Container"
IMAGE = "docker:index/image:Image"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
SERVICE = "docker:index/service:Service"
SECRET = "docker:index/secret:Secret"
SERVICE_CONFIG = "docker:index/serviceConfig:ServiceConfig"
PROVIDER = "pulumi:providers:docker"

SECRET_SIG = rpc._special_sig_key  # "4dabf18193072939515e22adb298388d"
SECRET_VALUE_SIG = rpc._special_secret_sig


def reveal(value: Any) -> Any:
    """A value with Pulumi's secret markers unwrapped (as the engine hands it to a provider)."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == SECRET_VALUE_SIG:
            return reveal(value["value"])
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value
