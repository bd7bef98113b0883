"""The shape of a service, as plain data: `ServiceSpec` and its parts (health check, ports, mounts,
hardening, limits), the constants the services share, and the small helpers every service's
function uses. No Pulumi calls: `infra.containers` and `infra.swarm` render specs.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from infra.ingress import Route
from infra.profiles import PROFILES, Profile
from infra.settings import SHIPPED_PACKAGE, StackSettings

ImageName = Literal["app", "postgres", "redis", "haproxy", "caddy", "rclone"]
# Values filled at deploy time and kept secret in state and plans: the settings' secrets, and what
# the program makes (infra/shared.py): the router's certificate and key, and the internal CA's
# root certificate (public, but passed the same way).
SecretName = Literal[
    "postgres_password",
    "redis_password",
    "flask_secret_key",
    "router_tls_pem",
    "internal_ca_certificate",
    "backup_offsite_access_key_id",
    "backup_offsite_secret_access_key",
]

# Ports inside the data stores' containers (the application's own are its contract: apiContainerPort...).
POSTGRES_PORT, REDIS_PORT = 5432, 6379
# Graceful stops: the servers' own timeouts, and Docker's wait before SIGKILL a few seconds longer.
SERVER_GRACEFUL_SECONDS = 20  # gunicorn --graceful-timeout, uvicorn --timeout-graceful-shutdown
SERVER_STOP_SECONDS = SERVER_GRACEFUL_SECONDS + 5
POSTGRES_STOP_SECONDS = 30
REDIS_STOP_SECONDS = 20
APP_UID = "10001:10001"
HAPROXY_UID = "99:99"  # the haproxy user of the official image  # the numeric user app/Dockerfile creates
DATA_UID = "999:999"  # the postgres and redis users of the official Debian-based images
POSTGRES_DATA = "/var/lib/postgresql/data"
# The backup service's script, and where its dumps live in its container: the one directory of the
# Postgres image its user owns, so a new volume mounted there is that user's (and the image's own
# VOLUME there gets no anonymous volume).
BACKUP_SCRIPT = (Path(__file__).parent / "backup.sh").read_text()
BACKUP_DIR = POSTGRES_DATA
BACKUP_STOP_SECONDS = 60  # a dump in progress finishes before the loop stops
# The backup-offsite service's script (rclone image), and rclone's name for the bucket's remote.
OFFSITE_SCRIPT = (Path(__file__).parent / "offsite.sh").read_text()
OFFSITE_REMOTE = "offsite"
OFFSITE_STOP_SECONDS = 120  # an upload in progress finishes before the loop stops
# Where the proxies read their rendered configurations (each a `config_files` entry of its spec).
HAPROXY_CONFIG_FILE = "/usr/local/etc/haproxy/haproxy.cfg"
CADDY_CONFIG_FILE = "/etc/caddy/Caddyfile"
DATA_NODE = "node.labels.ichrisbirch.data == true"  # where Postgres and Redis (and their volumes) live
MANAGER_NODE = "node.role == manager"  # the ingress: the address clients and DNS know
REDIS_DATA = "/data"


@dataclass(frozen=True)
class HealthCheck:
    test: tuple[str, ...]
    interval_seconds: float = 3
    timeout_seconds: float = 3
    retries: int = 5
    start_period_seconds: float = 30


@dataclass(frozen=True)
class Port:
    internal: int
    external: int
    host_ip: str


@dataclass(frozen=True)
class Mount:
    target: str
    volume: str | None = None  # a named volume of the stack, by its short name
    host_path: str | None = None  # an absolute path on the Docker host
    read_only: bool = False


@dataclass(frozen=True)
class Hardening:
    user: str | None = None
    read_only_root: bool = False
    drop_all_capabilities: bool = False
    no_new_privileges: bool = False


@dataclass(frozen=True)
class Limits:
    memory_mb: int
    cpus: float
    processes: int | None = None  # ulimit nproc: the nearest pulumi-docker has to a pids limit


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    image: ImageName
    command: tuple[str, ...]
    env: dict[str, str]
    secret_env: dict[str, SecretName]  # env var -> the settings secret that fills it
    limits: Limits
    entrypoint: tuple[str, ...] = ()  # replaces the image's; empty keeps it
    ports: tuple[Port, ...] = ()
    mounts: tuple[Mount, ...] = ()
    tmpfs: dict[str, str] = field(default_factory=dict)
    health: HealthCheck | None = None
    depends_on: tuple[str, ...] = ()
    one_shot: bool = False  # runs to completion; its exit code is recorded
    migrates: bool = False  # brings the schema to the release's head (not run again by a rollback)
    hardening: Hardening = Hardening()
    restart: str = "no"
    # Seconds between the stop signal and SIGKILL, when Docker stops it or a deployment replaces it.
    # Longer than the process's own graceful shutdown, so in-flight work finishes.
    stop_grace_seconds: int = 10
    # Replaced by creating the new container (a name of its own, the same network alias) and
    # deleting the old one once the new one is healthy; otherwise the old one goes first.
    create_first: bool = False
    route: Route | None = None  # how the router reaches it, if it does
    aliases: tuple[str, ...] = ()  # network names beside its service name
    # Files the process reads its configuration from (path -> text), mounted read-only: a Swarm
    # config on swarm, a file in a volume of its own on one engine (each renderer's choice).
    config_files: dict[str, str] = field(default_factory=dict)
    # On swarm: how many tasks (one engine runs one container of each spec), and where they may run.
    replicas: int = 1
    placement: tuple[str, ...] = ()


def pulled_image(s: StackSettings, kind: ImageName) -> str:
    """The configured reference of an image the stack pulls (all but the app's, which it builds)."""
    references = {
        "postgres": s.postgres_image,
        "redis": s.redis_image,
        "haproxy": s.haproxy_image,
        "caddy": s.caddy_image,
        "rclone": s.rclone_image,
    }
    return references[kind]


def secrets_as_files(s: StackSettings) -> bool:
    """Whether the stack's secrets reach its processes as files, each named by a <VAR>_FILE
    variable (prod, the only environment swarm runs), or as values in <VAR>. Where the file is, is
    the renderer's choice: a spec reads the path from <VAR>_FILE and never names it."""
    return PROFILES[s.environment].secrets_in_files


def from_file(s: StackSettings, var: str, path: str, *command: str) -> tuple[str, ...]:
    """`command`, reading the secret <var> from the file <var>_FILE names. Where secrets are values
    in the environment (dev, test), first written from <var> to `path` (umask 077: readable by the
    process's user only), for a program that reads only files (HAProxy's certificate, Caddy's CA)."""
    if secrets_as_files(s):
        return command
    write = f'umask 077 && printf "%s\\n" "${var}" >{path} && export {var}_FILE={path}'
    return ("sh", "-c", f"{write} && exec {shlex.join(command)}")


# --- shared shapes --------------------------------------------------------------------------------


def health(*probe: str) -> HealthCheck:
    return HealthCheck(test=("CMD", *probe))


def http_probe(url: str) -> str:
    """Shell that fetches `url` and fails unless it answers 2xx, with whichever client the image has:
    wget (busybox, Alpine), curl, or python3 (the slim Python images have neither of the others)."""
    python = "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=8)"
    return (
        f"if command -v wget >/dev/null; then exec wget -q -O /dev/null {url};"
        f" elif command -v curl >/dev/null; then exec curl -fsS -o /dev/null {url};"
        f" else exec python3 -c '{python}' {url}; fi"
    )


def app_health(command: list[str], port: int = 0, path: str = "") -> HealthCheck:
    """The application's own probe (`command`), or else an HTTP GET of `path` on `port`. Starting
    Python and importing the database drivers can take seconds on a busy host (measured: over 3 s
    on 2 cores during a rollout under load), and a probe that times out counts as a failure."""
    if command:
        return HealthCheck(test=("CMD", *command), timeout_seconds=10)
    return HealthCheck(test=("CMD-SHELL", http_probe(f"http://127.0.0.1:{port}{path}")), timeout_seconds=10)


def published(s: StackSettings, profile: Profile, service: str, internal: int, external: int) -> tuple[Port, ...]:
    return (Port(internal, external, s.bind_address),) if service in profile.published else ()


def app_hardening(profile: Profile) -> Hardening:
    if not profile.hardened:
        return Hardening()
    return Hardening(user=APP_UID, read_only_root=True, drop_all_capabilities=True, no_new_privileges=True)


def data_hardening(profile: Profile) -> Hardening:
    # Started directly as their own user, the official entrypoints skip the chown-and-gosu step
    # that needs root and capabilities: a new named volume takes its ownership from the image.
    if not profile.hardened:
        return Hardening()
    return Hardening(user=DATA_UID, read_only_root=True, drop_all_capabilities=True, no_new_privileges=True)


def source_mounts(profile: Profile, app_dir: Path) -> tuple[Mount, ...]:
    """dev's hot reload of the shipped application: its package bind-mounted over the image's (the
    virtual environment lives in /opt/venv and stays visible). Another application runs its image."""
    package = app_dir / SHIPPED_PACKAGE
    if not profile.hot_reload or not package.is_dir():
        return ()
    return (Mount(target=f"/app/{SHIPPED_PACKAGE}", host_path=str(package), read_only=True),)


def writable_tmp(profile: Profile, *extra: str) -> dict[str, str]:
    """With a read-only root filesystem, the few paths a process writes to are tmpfs."""
    if not profile.hardened:
        return {}
    # Docker copies the image directory's mode onto the tmpfs: the images make these world-writable.
    return {path: "rw,noexec,nosuid,size=64m" for path in ("/tmp", *extra)}


def after_migrations(s: StackSettings) -> tuple[str, ...]:
    """("migrate",) where the application has migrations: what reads the schema starts after them."""
    return ("migrate",) if s.migration_command else ()


def runs(s: StackSettings, profile: Profile, service: str) -> bool:
    """Whether the stack runs `service`, of those the application may leave out or the profile adds."""
    return {"app": s.app_enabled, "scheduler": s.scheduler_enabled, "ingress": profile.ingress}.get(service, True)
