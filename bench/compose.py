"""The baseline for a prod update: the same services as a Compose file, updated with `docker compose up -d`.

The file is rendered from the program's own service specs (`infra.services.services`) for the prod
stack, so both sides run the same images, commands, environment, health checks, ingress config and
hardening; only how an update replaces containers differs (Compose stops the old container, then
starts the new one under the same name).
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

from infra.config import PROJECT_DIR, load_settings
from infra.ingress import HTTP_PORT, HTTPS_PORT
from infra.services import SecretName, ServiceSpec, secret_file, secrets_as_files, services
from infra.shared import PROGRAM_VALUES
from proof.engine.handlers.tls import tls_resource
from proof.harness.clients import KeepAlive, free_port, https, keepalive_https
from proof.harness.stacks import committed_config
from proof.harness.standins import Standins, build_image, copy_app
from proof.harness.swarm import host_name

COMPOSE = str(Path(__file__).resolve().parent.parent / ".venv" / "bin" / "docker-compose")
PROJECT = "icb-bench-compose"


def internal_tls(hosts: list[str]) -> tuple[str, str]:
    """(CA certificate, server certificate + key) made as the program's pulumi-tls resources make them."""
    _, ca_key = tls_resource("tls:index/privateKey:PrivateKey", {"algorithm": "ECDSA", "ecdsaCurve": "P256"})
    _, ca = tls_resource(
        "tls:index/selfSignedCert:SelfSignedCert",
        {
            "privateKeyPem": ca_key["privateKeyPem"],
            "subject": {"commonName": "bench CA"},
            "isCaCertificate": True,
            "validityPeriodHours": 24,
            "allowedUses": ["cert_signing"],
        },
    )
    _, key = tls_resource("tls:index/privateKey:PrivateKey", {"algorithm": "ECDSA", "ecdsaCurve": "P256"})
    _, csr = tls_resource(
        "tls:index/certRequest:CertRequest",
        {"privateKeyPem": key["privateKeyPem"], "subject": {"commonName": hosts[0]}, "dnsNames": hosts},
    )
    _, server = tls_resource(
        "tls:index/locallySignedCert:LocallySignedCert",
        {
            "certRequestPem": csr["certRequestPem"],
            "caPrivateKeyPem": ca_key["privateKeyPem"],
            "caCertPem": ca["certPem"],
            "validityPeriodHours": 24,
            "allowedUses": ["digital_signature", "server_auth"],
        },
    )
    return ca["certPem"], server["certPem"] + key["privateKeyPem"]


def _literal(value: str) -> str:
    """Compose substitutes $VAR from the host's environment: $$ keeps a $ for the container's shell."""
    return value.replace("$", "$$")


def _service(
    spec: ServiceSpec,
    image: str,
    secrets: Mapping[SecretName, str],
    ports: dict[str, int],
    files: dict[str, tuple[str, str]],
) -> dict[str, Any]:
    """One Compose service of `spec`. `files`: where each secret is a file (prod), its file in the
    project folder and the path readers find it at (the program's own), mounted read-only."""
    if files:
        environment = {**spec.env, **{f"{var}_FILE": files[name][1] for var, name in spec.secret_env.items()}}
    else:
        environment = {**spec.env, **{var: secrets[name] for var, name in spec.secret_env.items()}}
    service: dict[str, Any] = {
        "image": image,
        "command": [_literal(part) for part in spec.command],
        "environment": {key: _literal(value) for key, value in environment.items()},
        "networks": {"default": {"aliases": [spec.name, *spec.aliases]}},
        "stop_grace_period": f"{spec.stop_grace_seconds}s",
        "mem_limit": f"{spec.limits.memory_mb}m",
        "memswap_limit": f"{spec.limits.memory_mb}m",
        "cpus": spec.limits.cpus,
        "restart": "no" if spec.one_shot else spec.restart,
        "read_only": spec.hardening.read_only_root,
    }
    if spec.hardening.user:
        service["user"] = spec.hardening.user
    if spec.hardening.drop_all_capabilities:
        service["cap_drop"] = ["ALL"]
    if spec.hardening.no_new_privileges:
        service["security_opt"] = ["no-new-privileges:true"]
    if spec.tmpfs:
        service["tmpfs"] = [f"{path}:{options}" for path, options in spec.tmpfs.items()]
    volumes = [f"{m.volume}:{m.target}" for m in spec.mounts if m.volume]
    volumes += [f"{files[name][0]}:{files[name][1]}:ro" for name in sorted(set(spec.secret_env.values()) & set(files))]
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
    ca, bundle = internal_tls(settings.hosts.all())
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
    files: dict[str, tuple[str, str]] = {}
    if secrets_as_files(settings):  # as the program gives them: a read-only file each, named by <VAR>_FILE
        (directory / "secrets").mkdir()
        for name, value in secrets.items():
            local = directory / "secrets" / name
            local.write_text(value)
            local.chmod(0o444)  # the services' users (10001, 999) read it; nothing writes it
            files[name] = (str(local), secret_file(settings, name))
    document = {
        "services": {s.name: _service(s, images[s.image], secrets, ports, files) for s in specs},
        "volumes": {m.volume: {} for s in specs for m in s.mounts if m.volume},
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
