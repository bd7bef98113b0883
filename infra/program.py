"""The Pulumi program: read and validate the stack's config, declare the deployment, export outputs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import pulumi
from pulumi.runtime import config as runtime_config

from infra.config import load_settings
from infra.containers import Deployment
from infra.engine import Engine, check_reachable
from infra.identity import PROJECT, PROJECT_DIR, Identity
from infra.releases import refuse_a_foreign_release, requested_release
from infra.services import services
from infra.settings import StackSettings
from infra.spec import ServiceSpec
from infra.swarm import SwarmDeployment

# What a stack runs, given its settings and the project's directory: `services` unless a caller
# (a test's variant of the program) gives another.
SpecsFor = Callable[[StackSettings, Path], list[ServiceSpec]]
# How the program makes sure an engine answers before planning (`check_reachable`; nothing under mocks).
Reach = Callable[[Engine, str, str], None]


def raw_config() -> tuple[dict[str, str], set[str]]:
    """Every config value Pulumi passed to this program, and which of them are secrets."""
    values: dict[str, str] = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret_keys = set(runtime_config.get_config_secret_keys_env())
    secret_keys |= {key for key in values if runtime_config.is_config_secret(key)}
    return values, secret_keys


def _url_host(settings: StackSettings) -> str:
    """Where a person reaches published ports: the bind address, or the engine's host when bound to all."""
    if settings.bind_address not in ("0.0.0.0", "::"):
        return settings.bind_address if ":" not in settings.bind_address else f"[{settings.bind_address}]"
    return urlparse(settings.docker_host).hostname or "127.0.0.1"


def _export_ingress(settings: StackSettings, ca_certificate: pulumi.Output[str]) -> None:
    """The URLs behind the ingress, and the CA their certificate is signed by: clients of the
    internal CA trust it (`pulumi stack output ingress_ca_certificate > ca.pem`)."""
    port = "" if settings.https_port == 443 else f":{settings.https_port}"
    pulumi.export("api_url", f"https://{settings.hosts.api}{port}")
    pulumi.export("app_url", f"https://{settings.hosts.app}{port}")
    pulumi.export("ingress_ca_certificate", ca_certificate)


def engines(settings: StackSettings) -> dict[str, Engine]:
    """The engines the stack's providers dial, by the config key that names each."""
    named = {f"{PROJECT}:dockerHost": settings.docker_host, f"{PROJECT}:dataNodeHost": settings.data_node_host}
    return {
        key: Engine(host, tuple(settings.docker_ssh_opts) if host.startswith("ssh://") else ())
        for key, host in named.items()
        if host
    }


def main(specs_for: SpecsFor = services, reach: Reach = check_reachable) -> None:
    values, secret_keys = raw_config()
    stack = pulumi.get_stack()
    settings = load_settings(stack, values, secret_keys)
    for key, engine in engines(settings).items():
        reach(engine, stack, key)
    release = requested_release()
    if release:  # a rollback: that release, instead of the image the stack is configured with
        refuse_a_foreign_release(settings, stack, release)
    specs = specs_for(settings, PROJECT_DIR)
    if settings.orchestrator == "swarm":
        main_on_swarm(settings, Identity(stack), specs)
        return
    deployment = Deployment(settings.environment, settings, Identity(stack), PROJECT_DIR, specs)

    if deployment.tls is not None:
        _export_ingress(settings, deployment.tls.ca_certificate)
    else:
        host = _url_host(settings)
        pulumi.export("api_url", f"http://{host}:{settings.api_port}")
        pulumi.export("app_url", f"http://{host}:{settings.app_port}")
    pulumi.export("network", deployment.network.name)
    pulumi.export("image_digest", deployment.image.digest)
    pulumi.export("containers", {name: c.name for name, c in deployment.containers.items()})
    if "tests" in deployment.containers:
        pulumi.export("tests_exit_code", deployment.containers["tests"].exit_code)


def main_on_swarm(settings: StackSettings, identity: Identity, specs: list[ServiceSpec]) -> None:
    swarm = SwarmDeployment(settings.environment, settings, identity, PROJECT_DIR, specs)
    _export_ingress(settings, swarm.tls.ca_certificate)
    pulumi.export("network", swarm.network.name)
    pulumi.export("image_digest", swarm.image.digest)
    pulumi.export("services", {name: svc.name for name, svc in swarm.services.items()})
