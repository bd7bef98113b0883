"""A stack deployed by the real Pulumi CLI, from its committed stack file with test secrets and
local stand-in images, on the suite's Docker engine; and what tests and benchmarks do to it between runs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http.client import HTTPConnection
from pathlib import Path
from typing import Any, Protocol

import infra.program
from infra.identity import PROJECT, PROJECT_DIR, Identity
from infra.ingress import HostNames
from infra.profiles import PROFILES
from infra.services import services
from infra.settings import StackSettings
from infra.spec import ServiceSpec
from proof.harness.cli import DOCKER, docker, engine_host, remove_objects
from proof.harness.clients import KeepAlive, http, keepalive_https
from proof.harness.figures import report
from proof.harness.pulumi import ProjectStack, RunResult
from proof.harness.run import claim_port
from proof.harness.standins import Standins, copy_app
from proof.mocks import TEST_SECRETS
from proof.resources import CONTAINER


def full(key: str) -> str:
    return key if ":" in key else f"{PROJECT}:{key}"


@dataclass
class Deployed:
    """A stack deployed by the real CLI: `up()` again goes on from the state the last run left."""

    stack: str
    project: ProjectStack
    config: dict[str, str]  # the stack's config as the program gets it: the committed file, then the suite's settings
    ports: dict[str, int]
    app_dir: Path  # this deployment's own copy of app/ (its appDirectory): edit it to change the source
    last: RunResult
    secret_keys: set[str] = field(default_factory=set)

    @property
    def outputs(self) -> dict[str, Any]:
        return self.last.outputs or self.project.outputs()

    def up(
        self, *, replace: tuple[str, ...] = (), program: Callable[[], None] | None = None, **overrides: str
    ) -> RunResult:
        """`pulumi up` again with config `overrides` (short key -> value), from the last run's state."""
        self.set(**overrides)
        self.last = self.project.up(replace=replace, program=program)
        return self.last

    def set(self, **overrides: str) -> None:
        values = {full(k): v for k, v in overrides.items()}
        self.project.set_config(values, self.secret_keys)
        self.config.update(values)

    def refresh(self) -> RunResult:
        return self.project.refresh()

    def preview(self, **options: Any) -> RunResult:
        return self.project.preview(**options)

    def unprotect(self, *names: str) -> None:
        """`pulumi state unprotect <urn>` of these resources: the next update may delete or replace them."""
        for name in names:
            self.project.cli("state", "unprotect", self.project.urn(name), "--yes")

    def resource(self, name: str, type_token: str = CONTAINER) -> dict[str, Any]:
        return self.project.resource(name, type_token)

    def ids(self, type_token: str = CONTAINER) -> dict[str, str]:
        """Resource name -> id of every resource of a type in state."""
        return {r["urn"].split("::")[-1]: r["id"] for r in self.project.resources()
                if r["type"] == type_token and not r.get("delete")}  # fmt: skip

    @property
    def ingress(self) -> bool:
        return PROFILES[self.config[full("environment")]].ingress

    def url(self, service: str, path: str = "") -> str:
        """Where a request for `service` goes: through the ingress (HTTPS) where the stack has one."""
        if self.ingress and service in ("api", "app"):
            return f"https://127.0.0.1:{self.ports['ingress_https']}{path}"
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def host(self, service: str) -> str | None:
        """The Host header the ingress routes on (the app at <domain>, the api at api.<domain>)."""
        if not self.ingress:
            return None
        return HostNames.of(self.config.get(full("domain"), "localhost")).of_service(service)

    def http(
        self,
        method: str,
        service: str,
        path: str = "",
        body: dict[str, object] | None = None,
        timeout: float = 5,
        **kwargs: Any,
    ) -> tuple[int, str]:
        ca = self.outputs.get("ingress_ca_certificate") if self.ingress else None
        url = self.url(service, path)
        return http(method, url, body=body, host=self.host(service), ca=ca, timeout=timeout, **kwargs)

    def keepalive(self) -> KeepAlive:
        """A client that keeps its connections open, to the ingress (HTTPS) or the published ports."""
        if not self.ingress:
            return KeepAlive(lambda service, timeout: HTTPConnection("127.0.0.1", self.ports[service], timeout=timeout))
        ca = self.outputs["ingress_ca_certificate"]
        return keepalive_https("127.0.0.1", self.ports["ingress_https"], ca, lambda service: str(self.host(service)))

    def container(self, service: str) -> str:
        """The container's name now, from state (a create-first container's name changes with it)."""
        for resource in self.project.resources():
            if (
                resource["type"] == CONTAINER
                and resource["urn"].endswith(f"::{service}")
                and not resource.get("delete")
            ):
                return str(resource["outputs"]["name"])
        return Identity(self.stack).container(service)

    def image(self) -> str:
        """The application image the stack runs, by the digest its outputs give (the image's id)."""
        digest = self.outputs.get("image_digest")
        assert digest, f"the {self.stack} stack exports no image_digest: {sorted(self.outputs)}"
        found = docker("image", "inspect", "--format", "{{.Id}}", str(digest), check=False)
        assert found.returncode == 0, f"the {self.stack} stack's image {digest} is not on the engine: {found.stderr}"
        return found.stdout.strip()


def _committed(project: ProjectStack) -> dict[str, Any]:
    import yaml

    document = yaml.safe_load((project.dir / f"Pulumi.{project.name}.yaml").read_text()) or {}
    return {k.split(":", 1)[1]: v for k, v in (document.get("config") or {}).items() if k.startswith(f"{PROJECT}:")}


def test_settings(standins: Standins, app_dir: Path, **settings: str) -> dict[str, str]:
    """What every deployment of the suite sets on top of its committed stack file (short keys): the
    suite's engine, stand-in images, its own copy of the application, test secrets."""
    return {"dockerHost": engine_host(), **standins.config(), "appDirectory": str(app_dir),
            **TEST_SECRETS, **settings}  # fmt: skip


@contextmanager
def deploy(stack: str, standins: Standins, name: str | None = None, **settings: str) -> Iterator[Deployed]:
    """Deploy `stack` from its committed stack file with the real CLI; destroy it afterwards.

    Overrides: the engine, the image references (local stand-ins), test secrets, a copy of app/ as
    the application, and a host port only where the committed one is taken on this machine. `name`:
    a stack of another name with `stack`'s file (its containers, network and releases its own).
    """
    name = name or stack
    workspace = Path(tempfile.mkdtemp(prefix=f"icb-{name}-"))
    workspace.chmod(0o755)  # the dev stack bind-mounts the copied source into containers running as 10001
    app_dir = copy_app(workspace / "app")
    project = ProjectStack(workspace, name, PROJECT_DIR / f"Pulumi.{stack}.yaml")
    values = {full(k): v for k, v in test_settings(standins, app_dir, **settings).items()}
    committed = _committed(project)
    ports: dict[str, int] = {}
    published = (("api", "api"), ("app", "app"), ("postgres", "postgres"), ("redis", "redis"))
    for service, field_name in (*published, ("ingress", "http"), ("ingress_https", "https")):
        key = f"{field_name}Port"
        wanted = int(
            values.get(full(key)) or committed.get(key) or StackSettings.model_fields[f"{field_name}_port"].default
        )
        port = claim_port(wanted)
        if port != wanted:
            values[full(key)] = str(port)
            report(f"{name}: host port {port} used for {service} ({wanted} is taken here or by another deployment)")
        ports[service] = port
    secret_keys = {full(k) for k in TEST_SECRETS}
    project.set_config(values, secret_keys)
    deployed: Deployed | None = None
    try:
        first = project.up()
        report(f"{name}: first `pulumi up` {first.seconds:.1f} s (building {first.build_seconds():.1f} s of it)")
        effective = {full(k): v if isinstance(v, str) else json.dumps(v) for k, v in committed.items()} | values
        deployed = Deployed(name, project, effective, ports, app_dir, first, secret_keys)
        yield deployed
    finally:
        try:
            tear_down(project)
        finally:
            shutil.rmtree(workspace, ignore_errors=True)


def tear_down(project: ProjectStack) -> None:
    """`pulumi destroy` of the stack (its protected data unprotected first), then the release images
    it built (the native Image's delete leaves them, as pulumi-docker's does). What the destroy left
    on the engine fails the teardown by name."""
    try:
        project.unprotect_all()
        project.destroy()
    finally:
        left = left_on_engine(project.name)
        remove_objects(left)
        remove_releases(project.name)
    assert not left, f"`pulumi destroy` of {project.name} left these on the engine: {left}"


def left_on_engine(stack: str) -> list[tuple[str, str]]:
    """(kind, name) of every container, volume and network on the engine labelled with `stack`."""
    found = []
    for kind in ("container", "volume", "network"):
        every = ["-a"] if kind == "container" else []
        name = "{{.Names}}" if kind == "container" else "{{.Name}}"
        listed = docker(kind, "ls", *every, "--filter", f"label=ichrisbirch.stack={stack}", "--format", name)
        found += [(kind, item) for item in listed.stdout.split()]
    return found


def remove_releases(stack: str) -> None:
    """The stack's release images (`ichrisbirch:<stack>-<key>`, in any registry's name)."""
    images = docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    releases = [i for i in images if re.fullmatch(rf"(.*/)?ichrisbirch:{re.escape(stack)}-[0-9a-f]+", i)]
    if releases:
        docker("rmi", "-f", *releases, check=False)


def psql(deployed: Deployed, sql: str) -> str:
    """`sql` run in the stack's Postgres container as the application's user; its rows, unaligned."""
    result = subprocess.run(
        [DOCKER, "exec", "-u", "postgres", deployed.container("postgres"), "psql", "-U", "ichrisbirch",
         "-d", "ichrisbirch", "-v", "ON_ERROR_STOP=1", "-Atc", sql],
        capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    return result.stdout


class Released(Protocol):
    """What the release helpers need of a deployment: its copy of the application, and its api."""

    @property
    def app_dir(self) -> Path: ...

    def http(
        self, method: str, service: str, path: str = "", body: dict[str, object] | None = None, timeout: float = 5
    ) -> tuple[int, str]: ...


def edit_source(deployed: Released, relative: str, edit: Callable[[str], str]) -> None:
    path = deployed.app_dir / relative
    path.write_text(edit(path.read_text()))


def bump_version(deployed: Released) -> str:
    marker = f"0.1.0+day2.{uuid.uuid4().hex[:6]}"
    edit_source(
        deployed, "ichrisbirch/__init__.py", lambda t: re.sub(r'__version__ = ".*"', f'__version__ = "{marker}"', t)
    )
    return marker


def api_version(deployed: Released) -> str:
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
