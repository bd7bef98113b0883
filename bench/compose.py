"""The baseline for a prod update: the same services as a Compose file, updated with `docker compose up -d`.

The file is rendered from the program's own service specs (`infra.services.services`) for the prod
stack, and from the facts both of the program's renderers share (`infra.shared`: log options, the
secrets' directory, the values the program makes; `infra.identity.Identity`: names and labels), so
both sides run the same images, commands, environment, health checks, ingress configuration and
hardening; only how an update replaces containers differs (Compose stops the old container, then
starts the new one under the same name). It is a third renderer beside `infra/containers.py` and
`infra/swarm.py`: secrets and configuration files are files from the project folder, mounted
read-only where a Swarm secret or config would be.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.config import load_settings
from infra.identity import PROJECT_DIR, Identity
from infra.ingress import HTTP_PORT, HTTPS_PORT
from infra.services import services
from infra.shared import LOG_OPTIONS, PROGRAM_VALUES, SECRETS_DIR
from infra.spec import SecretName, ServiceSpec, secrets_as_files
from proof.harness.certificates import ca_and_server
from proof.harness.clients import KeepAlive, free_port, https, keepalive_https
from proof.harness.ingress_prod import host_name
from proof.harness.standins import Standins, build_image, copy_app
from proof.mocks import committed_config

COMPOSE = str(Path(__file__).resolve().parent.parent / ".venv" / "bin" / "docker-compose")
PROJECT = "icb-bench-compose"


def _literal(value: str) -> str:
    """Compose substitutes $VAR from the host's environment: $$ keeps a $ for the container's shell."""
    return value.replace("$", "$$")


def _service(
    spec: ServiceSpec,
    image: str,
    labels: dict[str, str],
    secrets: Mapping[SecretName, str],
    ports: dict[str, int],
    files: dict[str, str],
    secret_files: bool,
) -> dict[str, Any]:
    """One Compose service of `spec`. `files`: the project folder's file of each secret it reads
    (where secrets are files) and of each of its configuration files, by the path it reads it at."""
    if secret_files:
        environment = {**spec.env, **{f"{var}_FILE": f"{SECRETS_DIR}/{name}" for var, name in spec.secret_env.items()}}
    else:
        environment = {**spec.env, **{var: secrets[name] for var, name in spec.secret_env.items()}}
    service: dict[str, Any] = {
        "image": image,
        "command": [_literal(part) for part in spec.command],
        "environment": {key: _literal(value) for key, value in environment.items()},
        "labels": labels,
        "networks": {"default": {"aliases": [spec.name, *spec.aliases]}},
        "stop_grace_period": f"{spec.stop_grace_seconds}s",
        "mem_limit": f"{spec.limits.memory_mb}m",
        "memswap_limit": f"{spec.limits.memory_mb}m",
        "cpus": spec.limits.cpus,
        "restart": "no" if spec.one_shot else spec.restart,
        "read_only": spec.hardening.read_only_root,
        "init": spec.image == "app",
        "logging": {"driver": "json-file", "options": LOG_OPTIONS},
    }
    if spec.entrypoint:
        service["entrypoint"] = [_literal(part) for part in spec.entrypoint]
    if spec.hardening.user:
        service["user"] = spec.hardening.user
    if spec.hardening.drop_all_capabilities:
        service["cap_drop"] = ["ALL"]
    if spec.hardening.no_new_privileges:
        service["security_opt"] = ["no-new-privileges:true"]
    if spec.limits.processes:
        service["ulimits"] = {"nproc": spec.limits.processes}
    if spec.tmpfs:
        service["tmpfs"] = [f"{path}:{options}" for path, options in spec.tmpfs.items()]
    volumes = [f"{m.volume}:{m.target}" + (":ro" if m.read_only else "") for m in spec.mounts if m.volume]
    volumes += [f"{local}:{path}:ro" for path, local in sorted(files.items())]
    if volumes:
        service["volumes"] = volumes
    if spec.health:
        h = spec.health
        service["healthcheck"] = {
            "test": [_literal(part) for part in h.test],
            "interval": f"{h.interval_seconds}s",
            "timeout": f"{h.timeout_seconds}s",
            "retries": h.retries,
            "start_period": f"{h.start_period_seconds}s",
        }
    if spec.depends_on:
        service["depends_on"] = {
            dep: {"condition": "service_completed_successfully" if dep == "migrate" else "service_healthy"}
            for dep in spec.depends_on
        }
    if spec.name == "ingress":
        service["ports"] = [f"127.0.0.1:{ports['http']}:{HTTP_PORT}", f"127.0.0.1:{ports['https']}:{HTTPS_PORT}"]
    return service


@dataclass
class ComposeStack:
    """A running Compose project of the prod services, reachable like a deployed stack (for LoadLoop)."""

    directory: Path
    app_dir: Path
    ca: str
    https_port: int
    base: str

    def http(self, method: str, service: str, path: str = "", body: Any = None, timeout: float = 5) -> tuple[int, str]:
        return https(method, f"https://127.0.0.1:{self.https_port}{path}", host_name(service), self.ca, body, timeout)

    def keepalive(self) -> KeepAlive:
        return keepalive_https("127.0.0.1", self.https_port, self.ca, host_name)

    def up(self) -> None:
        """Build the app image from the current source and `docker compose up -d --wait`."""
        build_image(self.app_dir, "production", "icb-bench-compose-app:current", self.base)
        compose("up", "-d", "--wait", cwd=self.directory)


def _files(folder: Path, spec: ServiceSpec, secrets: Mapping[SecretName, str]) -> dict[str, str]:
    """The secrets `spec` reads (those given) and its configuration files, written to `folder`:
    the local file of each, by the path the service reads it at. Read-only; the services' users
    (10001, 999, 99) read them."""
    wanted = {f"{SECRETS_DIR}/{name}": secrets[name] for name in spec.secret_env.values() if name in secrets}
    wanted |= spec.config_files
    files = {}
    for path, text in sorted(wanted.items()):
        local = folder / path.lstrip("/")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(text)
        local.chmod(0o444)
        files[path] = str(local)
    return files


def compose(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [COMPOSE, "-p", PROJECT, *args], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"docker compose {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result


def compose_project(standins: Standins) -> ComposeStack:
    """The prod services as a Compose project in a new folder, on free ports; nothing started."""
    config, secret_keys = committed_config("prod", {"postgresImage": standins.postgres})
    settings = load_settings("prod", config, secret_keys)
    directory = Path(tempfile.mkdtemp(prefix="icb-bench-compose-"))
    app_dir = copy_app(directory / "app")
    ca, bundle = ca_and_server(settings.hosts.all())
    specs = services(settings, PROJECT_DIR)
    # Each secret a service reads: the settings' value, or what the program makes (TLS material).
    made: dict[SecretName, str] = {"router_tls_pem": bundle, "internal_ca_certificate": ca}
    read = sorted({name for spec in specs for name in spec.secret_env.values()})
    secrets = {name: made[name] if name in PROGRAM_VALUES else settings.secret(name) for name in read}
    ports = {"http": free_port(), "https": free_port()}
    images = {
        "app": "icb-bench-compose-app:current",
        "postgres": standins.postgres,
        "redis": standins.redis,
        "haproxy": standins.haproxy,
    }
    identity = Identity("bench")
    secret_files = secrets_as_files(settings)
    document = {
        "services": {
            spec.name: _service(
                spec,
                images[spec.image],
                identity.labels("prod", spec.name),
                secrets,
                ports,
                _files(directory / "files" / spec.name, spec, secrets if secret_files else {}),
                secret_files,
            )
            for spec in specs
        },
        "volumes": {m.volume: {"name": identity.volume(m.volume)} for s in specs for m in s.mounts if m.volume},
    }
    # The router balances over the alias: Compose's recreate keeps one container per service.
    (directory / "compose.yaml").write_text(yaml.safe_dump(json.loads(json.dumps(document)), sort_keys=False))
    return ComposeStack(directory, app_dir, ca, ports["https"], standins.python)


def check_compose_project(standins: Standins) -> None:
    """Render the project and have Compose validate it (`docker compose config`), starting nothing."""
    stack = compose_project(standins)
    try:
        compose("config", "-q", cwd=stack.directory)
    finally:
        shutil.rmtree(stack.directory, ignore_errors=True)


@contextmanager
def compose_stack(standins: Standins) -> Iterator[ComposeStack]:
    """The prod services under Compose, started; removed with their volumes afterwards."""
    stack = compose_project(standins)
    try:
        stack.up()
        yield stack
    finally:
        compose("down", "-v", "--remove-orphans", "-t", "5", cwd=stack.directory)
        shutil.rmtree(stack.directory, ignore_errors=True)
