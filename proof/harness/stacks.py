"""A stack deployed through the program by the engine stand-in, from its committed stack file with
test secrets and local stand-in images, and what tests and benchmarks do to it between runs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import infra.program
from infra.config import Identity, StackSettings
from infra.ingress import HostNames
from infra.profiles import PROFILES
from infra.services import ServiceSpec, services
from proof.engine import DockerEngine, UpResult
from proof.harness.cli import DOCKER
from proof.harness.clients import KeepAlive, free_port, http, keepalive_https, port_is_free
from proof.harness.figures import report
from proof.harness.standins import Standins, copy_app
from proof.mocks import Run, stack_config

# Test values for the secrets: never real, and distinctive so a leak is easy to grep for.
TEST_SECRETS = {
    "postgresPassword": "pg-test-5c2f0e1d",
    "redisPassword": "redis-test-9a7b3c4e",
    "flaskSecretKey": "flask-test-1f8e6d2a",
    # Used only where a test sets backupOffsiteEndpoint (the bucket of tests/integration's offsite_bucket).
    "backupOffsiteAccessKeyId": "offsite-id-test-3d9a",
    "backupOffsiteSecretAccessKey": "offsite-key-test-7e41b08c",
}


def committed_config(
    stack: str, overrides: Mapping[str, str] | None = None, secrets: Mapping[str, str] | None = None
) -> tuple[dict[str, str], set[str]]:
    """The committed stack file's config with test secrets, plus `overrides` (short key -> value)."""
    config, secret_keys = stack_config(stack, TEST_SECRETS if secrets is None else secrets)
    for key, value in (overrides or {}).items():
        config[f"ichrisbirch:{key}"] = value
    return config, secret_keys


@dataclass
class Deployed:
    """A stack deployed by the test engine: run `up()` again to go on from the state it left."""

    stack: str
    engine: DockerEngine
    config: dict[str, str]
    secret_keys: set[str]
    ports: dict[str, int]
    app_dir: Path  # this deployment's own copy of app/ (its appDirectory): edit it to change the source
    last: UpResult

    @property
    def run(self) -> Run:
        assert self.last.run is not None
        return self.last.run

    def up(
        self, *, replace: tuple[str, ...] = (), program: Callable[[], None] | None = None, **overrides: str
    ) -> UpResult:
        """`pulumi up` again with config `overrides` (short key -> value), from the last run's state."""
        config = {**self.config, **{f"ichrisbirch:{key}": value for key, value in overrides.items()}}
        self.last = self.engine.up(self.stack, config, self.secret_keys, replace=replace, program=program)
        self.config = config
        return self.last

    @property
    def ingress(self) -> bool:
        return PROFILES[self.config["ichrisbirch:environment"]].ingress

    def url(self, service: str, path: str = "") -> str:
        """Where a request for `service` goes: through the ingress (HTTPS) where the stack has one."""
        if self.ingress and service in ("api", "app"):
            return f"https://127.0.0.1:{self.ports['ingress_https']}{path}"
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def host(self, service: str) -> str | None:
        """The Host header the ingress routes on (the app at <domain>, the api at api.<domain>)."""
        if not self.ingress:
            return None
        return HostNames.of(self.config.get("ichrisbirch:domain", "localhost")).of_service(service)

    def http(
        self,
        method: str,
        service: str,
        path: str = "",
        body: dict[str, object] | None = None,
        timeout: float = 5,
        **kwargs: Any,
    ) -> tuple[int, str]:
        ca = self.run.outputs.get("ingress_ca_certificate") if self.ingress else None
        url = self.url(service, path)
        return http(method, url, body=body, host=self.host(service), ca=ca, timeout=timeout, **kwargs)

    def keepalive(self) -> KeepAlive:
        """A client that keeps its connections open, to the ingress (HTTPS) or the published ports."""
        if not self.ingress:
            return KeepAlive(lambda service, timeout: HTTPConnection("127.0.0.1", self.ports[service], timeout=timeout))
        ca = self.run.outputs["ingress_ca_certificate"]
        return keepalive_https("127.0.0.1", self.ports["ingress_https"], ca, lambda service: str(self.host(service)))

    def container(self, service: str) -> str:
        """The container's name now: from state (a create-first container's name changes with it)."""
        for resource in self.engine.resources.values():
            if resource.type == "docker:index/container:Container" and resource.name == service:
                return str(resource.state["name"])
        return Identity(self.stack).container(service)


@contextmanager
def deploy(stack: str, standins: Standins, name: str | None = None, **settings: str) -> Iterator[Deployed]:
    """Deploy `stack` from its committed stack file on the real engine; remove all of it afterwards.

    Overrides: the image references (local stand-ins), test secrets, a copy of app/ as the
    application, and a host port only where the committed one is taken on this machine. `name`:
    a stack of another name with `stack`'s file (its containers, network and releases its own).
    """
    name = name or stack
    workspace = Path(tempfile.mkdtemp(prefix=f"icb-{name}-"))
    workspace.chmod(0o755)  # the dev stack bind-mounts the copied source into containers running as 10001
    app_dir = copy_app(workspace / "app")
    overrides = {**standins.config(), "appDirectory": str(app_dir), **settings}
    config, secret_keys = committed_config(stack, overrides)
    ports: dict[str, int] = {}
    published = (("api", "api"), ("app", "app"), ("postgres", "postgres"), ("redis", "redis"))
    for service, field_name in (*published, ("ingress", "http"), ("ingress_https", "https")):
        key = f"ichrisbirch:{field_name}Port"
        port = int(config.get(key, StackSettings.model_fields[f"{field_name}_port"].default))
        if not port_is_free(port):
            port = free_port()
            config[key] = str(port)
            report(f"{stack}: host port {config[key]} used for {service} (the committed one is taken here)")
        ports[service] = port
    engine = DockerEngine(workspace / "state.json")
    try:
        first = engine.up(name, config, secret_keys)
        report(
            f"{name}: first resource to all healthy {engine.time_to_healthy():.1f} s "
            f"(image build {first.timings.build_seconds:.1f} s of it)"
        )
        yield Deployed(name, engine, config, secret_keys, ports, app_dir, first)
    finally:
        engine.sweep()
        shutil.rmtree(workspace, ignore_errors=True)


def psql(deployed: Deployed, sql: str) -> str:
    """`sql` run in the stack's Postgres container as the application's user; its rows, unaligned."""
    result = subprocess.run(
        [DOCKER, "exec", "-u", "postgres", deployed.container("postgres"), "psql", "-U", "ichrisbirch",
         "-d", "ichrisbirch", "-v", "ON_ERROR_STOP=1", "-Atc", sql],
        capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    return result.stdout


def edit_source(deployed: Deployed, relative: str, edit: Callable[[str], str]) -> None:
    path = deployed.app_dir / relative
    path.write_text(edit(path.read_text()))


def bump_version(deployed: Deployed) -> str:
    marker = f"0.1.0+day2.{uuid.uuid4().hex[:6]}"
    edit_source(
        deployed, "ichrisbirch/__init__.py", lambda t: re.sub(r'__version__ = ".*"', f'__version__ = "{marker}"', t)
    )
    return marker


def api_version(deployed: Deployed) -> str:
    status, body = deployed.http("GET", "api", "/", timeout=10)
    assert status == 200, body
    return str(json.loads(body)["version"])


def program_with(transform: Callable[[list[ServiceSpec]], list[ServiceSpec]]) -> Callable[[], None]:
    """The program with its service specs changed (a service removed, a health check edited)."""
    return lambda: infra.program.main(lambda settings, project_dir: transform(services(settings, project_dir)))


def without(service: str) -> Callable[[list[ServiceSpec]], list[ServiceSpec]]:
    return lambda specs: [s for s in specs if s.name != service]


def changed(service: str, **fields: Any) -> Callable[[list[ServiceSpec]], list[ServiceSpec]]:
    return lambda specs: [replace(s, **fields) if s.name == service else s for s in specs]


def changed_all(**fields: Any) -> Callable[[list[ServiceSpec]], list[ServiceSpec]]:
    return lambda specs: [replace(s, **fields) for s in specs]
