"""What each environment runs, as plain data: one `ServiceSpec` per container, no Pulumi calls.

`PROFILES` is the one place where dev, test and prod differ in kind; `services()` turns a stack's
settings (the application's contract among them) into the specs that `infra.containers` and
`infra.swarm` declare. Read a service's function to see its image, command, environment, ports,
volumes, health check and dependencies in one place. A spec never asks which orchestrator runs it:
it names its secrets and configuration files, and each renderer decides how they get there.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from infra.ingress import (
    CADDY_CA_PATH,
    CERT_PATH,
    HTTP_PORT,
    HTTPS_PORT,
    ROUTER,
    STATUS_PORT,
    Route,
    caddy_config,
    router_config,
    tcp_ingress_config,
)
from infra.profiles import PROFILES, Profile
from infra.settings import SHIPPED_PACKAGE, StackSettings, schedule_seconds

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


# --- the application's environment contract, split by who uses what -----------------------------


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


def _from_file(s: StackSettings, var: str, path: str, *command: str) -> tuple[str, ...]:
    """`command`, reading the secret <var> from the file <var>_FILE names. Where secrets are values
    in the environment (dev, test), first written from <var> to `path` (umask 077: readable by the
    process's user only), for a program that reads only files (HAProxy's certificate, Caddy's CA)."""
    if secrets_as_files(s):
        return command
    write = f'umask 077 && printf "%s\\n" "${var}" >{path} && export {var}_FILE={path}'
    return ("sh", "-c", f"{write} && exec {shlex.join(command)}")


def _common_env(s: StackSettings) -> dict[str, str]:
    return {"ENVIRONMENT": s.environment, "LOG_LEVEL": s.log_level}


def _postgres_env(s: StackSettings) -> tuple[dict[str, str], dict[str, SecretName]]:
    env = {
        "POSTGRES_HOST": "postgres",
        "POSTGRES_PORT": str(POSTGRES_PORT),
        "POSTGRES_USERNAME": s.postgres_user,
        "POSTGRES_DB": s.postgres_db,
    }
    return env, {"POSTGRES_PASSWORD": "postgres_password"}


def _redis_env(s: StackSettings) -> tuple[dict[str, str], dict[str, SecretName]]:
    env = {"REDIS_HOST": "redis", "REDIS_PORT": str(REDIS_PORT), "REDIS_DB": str(s.redis_db)}
    return env, {"REDIS_PASSWORD": "redis_password"}


def _flask_env(s: StackSettings) -> tuple[dict[str, str], dict[str, SecretName]]:
    env = {
        "FASTAPI_HOST": "api",
        "FASTAPI_PORT": str(s.api_container_port),
        "FLASK_HOST": "0.0.0.0",
        "FLASK_PORT": str(s.app_container_port),
    }
    return env, {"FLASK_SECRET_KEY": "flask_secret_key"}


def _merge(
    *parts: tuple[dict[str, str], dict[str, SecretName]],
) -> tuple[dict[str, str], dict[str, SecretName]]:
    env: dict[str, str] = {}
    secrets: dict[str, SecretName] = {}
    for plain, secret in parts:
        env.update(plain)
        secrets.update(secret)
    return env, secrets


# --- shared shapes --------------------------------------------------------------------------------


def _health(*probe: str) -> HealthCheck:
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


def _app_health(command: list[str], port: int = 0, path: str = "") -> HealthCheck:
    """The application's own probe (`command`), or else an HTTP GET of `path` on `port`. Starting
    Python and importing the database drivers can take seconds on a busy host (measured: over 3 s
    on 2 cores during a rollout under load), and a probe that times out counts as a failure."""
    if command:
        return HealthCheck(test=("CMD", *command), timeout_seconds=10)
    return HealthCheck(test=("CMD-SHELL", http_probe(f"http://127.0.0.1:{port}{path}")), timeout_seconds=10)


def _published(s: StackSettings, profile: Profile, service: str, internal: int, external: int) -> tuple[Port, ...]:
    return (Port(internal, external, s.bind_address),) if service in profile.published else ()


def _app_hardening(profile: Profile) -> Hardening:
    if not profile.hardened:
        return Hardening()
    return Hardening(user=APP_UID, read_only_root=True, drop_all_capabilities=True, no_new_privileges=True)


def _data_hardening(profile: Profile) -> Hardening:
    # Started directly as their own user, the official entrypoints skip the chown-and-gosu step
    # that needs root and capabilities: a new named volume takes its ownership from the image.
    if not profile.hardened:
        return Hardening()
    return Hardening(user=DATA_UID, read_only_root=True, drop_all_capabilities=True, no_new_privileges=True)


def _source_mounts(profile: Profile, app_dir: Path) -> tuple[Mount, ...]:
    """dev's hot reload of the shipped application: its package bind-mounted over the image's (the
    virtual environment lives in /opt/venv and stays visible). Another application runs its image."""
    package = app_dir / SHIPPED_PACKAGE
    if not profile.hot_reload or not package.is_dir():
        return ()
    return (Mount(target=f"/app/{SHIPPED_PACKAGE}", host_path=str(package), read_only=True),)


def _writable_tmp(profile: Profile, *extra: str) -> dict[str, str]:
    """With a read-only root filesystem, the few paths a process writes to are tmpfs."""
    if not profile.hardened:
        return {}
    # Docker copies the image directory's mode onto the tmpfs: the images make these world-writable.
    return {path: "rw,noexec,nosuid,size=64m" for path in ("/tmp", *extra)}


# --- one function per service --------------------------------------------------------------------


def postgres(s: StackSettings, profile: Profile) -> ServiceSpec:
    if profile.persistent_data:
        command: tuple[str, ...] = ("postgres",)
        mounts: tuple[Mount, ...] = (Mount(target=POSTGRES_DATA, volume="postgres-data"),)
        # The server's socket and lock file live in /var/run/postgresql.
        tmpfs: dict[str, str] = _writable_tmp(profile, "/var/run/postgresql")
    else:
        # Throwaway data: durability buys nothing and costs seconds per test run.
        command = ("postgres", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
        mounts = ()
        tmpfs = {POSTGRES_DATA: "rw,size=512m"}
    return ServiceSpec(
        name="postgres",
        image="postgres",
        command=command,
        env={"POSTGRES_USER": s.postgres_user, "POSTGRES_DB": s.postgres_db},
        secret_env={"POSTGRES_PASSWORD": "postgres_password"},
        limits=Limits(memory_mb=s.postgres_memory_mb, cpus=s.cpus, processes=s.process_limit),
        ports=_published(s, profile, "postgres", POSTGRES_PORT, s.postgres_port),
        mounts=mounts,
        tmpfs=tmpfs,
        # -h 127.0.0.1: without it pg_isready passes during first-time init, before TCP is up.
        health=_health("pg_isready", "-h", "127.0.0.1", "-U", s.postgres_user, "-d", s.postgres_db),
        hardening=_data_hardening(profile),
        restart=profile.restart,
        # A fast shutdown (the image's SIGINT) writes a checkpoint; killed, it replays WAL on next start.
        stop_grace_seconds=POSTGRES_STOP_SECONDS,
        placement=(DATA_NODE,),  # its volume lives on that node
    )


def redis(s: StackSettings, profile: Profile) -> ServiceSpec:
    persistence = "--appendonly yes" if profile.persistent_data else "--save '' --appendonly no"
    # Through a shell so the password never is on the command line that `docker inspect` and the
    # plan show; the image's entrypoint still drops root for redis-server. REDISCLI_AUTH lets the
    # health check authenticate without a password on its command line.
    command = ("sh", "-c", f'exec docker-entrypoint.sh redis-server --requirepass "$REDIS_PASSWORD" {persistence}')
    secret_env: dict[str, SecretName] = {"REDIS_PASSWORD": "redis_password", "REDISCLI_AUTH": "redis_password"}
    probe = '[ "$(redis-cli ping)" = PONG ]'
    if secrets_as_files(s):
        # The password only in its secret file: written into a config file on tmpfs at start.
        command = (
            "sh",
            "-c",
            'umask 077 && printf "requirepass %s\\n" "$(cat "$REDIS_PASSWORD_FILE")" >/tmp/redis.conf'
            f" && exec docker-entrypoint.sh redis-server /tmp/redis.conf {persistence}",
        )
        secret_env = {"REDIS_PASSWORD": "redis_password"}
        probe = f'REDISCLI_AUTH="$(cat "$REDIS_PASSWORD_FILE")" && export REDISCLI_AUTH && {probe}'
    return ServiceSpec(
        name="redis",
        image="redis",
        command=command,
        env={},
        secret_env=secret_env,
        limits=Limits(memory_mb=s.redis_memory_mb, cpus=s.cpus, processes=s.process_limit),
        ports=_published(s, profile, "redis", REDIS_PORT, s.redis_port),
        mounts=(Mount(target=REDIS_DATA, volume="redis-data"),) if profile.persistent_data else (),
        tmpfs=_writable_tmp(profile) if profile.persistent_data else {REDIS_DATA: "rw,size=64m"},
        health=HealthCheck(test=("CMD-SHELL", probe)),
        hardening=_data_hardening(profile),
        restart=profile.restart,
        # On SIGTERM Redis fsyncs its append-only file (and saves, where snapshots are on) before exiting.
        stop_grace_seconds=REDIS_STOP_SECONDS,
        placement=(DATA_NODE,),
    )


def backup(s: StackSettings, profile: Profile) -> ServiceSpec:
    """pg_dump on the schedule into the backups volume, each dump checked and checksummed
    (infra/backup.sh); unhealthy once the latest good dump is older than the schedule allows."""
    interval = schedule_seconds(s.backup_schedule)
    run = 'exec sh -c "$BACKUP_SCRIPT" backup'  # + a mode: loop, check, once, list, verify, restore
    return ServiceSpec(
        name="backup",
        image="postgres",
        command=("sh", "-c", f"{run} loop"),
        env={
            "BACKUP_SCRIPT": BACKUP_SCRIPT,
            "BACKUP_DIR": BACKUP_DIR,
            "BACKUP_INTERVAL_SECONDS": str(interval),
            # Overdue once a whole interval has passed since the last good dump, plus time to take one.
            "BACKUP_MAX_AGE_SECONDS": str(interval + max(300, interval // 10)),
            "BACKUP_KEEP": str(s.backup_keep),
            "PGHOST": "postgres",
            "PGUSER": s.postgres_user,
            "PGDATABASE": s.postgres_db,
        },
        secret_env={"PGPASSWORD": "postgres_password"},
        limits=Limits(memory_mb=s.redis_memory_mb, cpus=s.cpus, processes=s.process_limit),
        mounts=(Mount(target=BACKUP_DIR, volume="backups"),),
        tmpfs=_writable_tmp(profile),
        # A file's age: cheap, and never flaky, so two failures in a row are enough.
        health=HealthCheck(test=("CMD-SHELL", f"{run} check"), interval_seconds=10, retries=2),
        # After the migrations: each dump is recorded in their table backup_runs.
        depends_on=_after_migrations(s) or ("postgres",),
        hardening=_data_hardening(profile),
        restart=profile.restart,
        stop_grace_seconds=BACKUP_STOP_SECONDS,
        placement=(DATA_NODE,),  # beside Postgres, with its volume
    )


def backup_offsite(s: StackSettings, profile: Profile) -> ServiceSpec:
    """Every good dump and its checksum copied to an S3-compatible bucket (infra/offsite.sh): only
    adds, never overwrites or deletes; unhealthy when the latest dump is not there in time.

    A service of its own, so the bucket's keys are in no container that holds the database's
    password, and the dumps' volume is mounted read-only."""
    interval = schedule_seconds(s.backup_schedule)
    run = 'exec sh -c "$OFFSITE_SCRIPT" offsite'  # + a mode: loop, once, check, list
    remote = f"RCLONE_CONFIG_{OFFSITE_REMOTE.upper()}"
    return ServiceSpec(
        name="backup-offsite",
        image="rclone",
        entrypoint=("sh", "-c"),  # the image's is rclone itself
        command=(f"{run} loop",),
        env={
            "OFFSITE_SCRIPT": OFFSITE_SCRIPT,
            "BACKUP_DIR": BACKUP_DIR,
            "OFFSITE_TARGET": f"{OFFSITE_REMOTE}:{s.backup_offsite_bucket}/{s.backup_offsite_prefix}",
            # Overdue once the latest dump has waited a tenth of the schedule (at least 10 min) for its copy.
            "OFFSITE_GRACE_SECONDS": str(max(600, interval // 10)),
            f"{remote}_TYPE": "s3",
            f"{remote}_PROVIDER": s.backup_offsite_provider,
            f"{remote}_ENDPOINT": s.backup_offsite_endpoint,
            **({f"{remote}_REGION": s.backup_offsite_region} if s.backup_offsite_region else {}),
            # The bucket exists: the keys need no right to create one (nor to delete anything).
            f"{remote}_NO_CHECK_BUCKET": "true",
            # No config file: the remote is these variables; HOME for anything rclone keeps.
            "RCLONE_CONFIG": "/notfound",
            "HOME": "/tmp",
        },
        secret_env={
            f"{remote}_ACCESS_KEY_ID": "backup_offsite_access_key_id",
            f"{remote}_SECRET_ACCESS_KEY": "backup_offsite_secret_access_key",
        },
        limits=Limits(memory_mb=s.redis_memory_mb, cpus=s.cpus, processes=s.process_limit),
        mounts=(Mount(target=BACKUP_DIR, volume="backups", read_only=True),),
        tmpfs=_writable_tmp(profile),
        health=HealthCheck(test=("CMD-SHELL", f"{run} check"), interval_seconds=10, retries=2),
        hardening=_data_hardening(profile),  # the dumps' owner: it reads them, nothing more
        restart=profile.restart,
        stop_grace_seconds=OFFSITE_STOP_SECONDS,
        placement=(DATA_NODE,),  # beside the backups volume
    )


def migrate(s: StackSettings, profile: Profile, app_dir: Path) -> ServiceSpec:
    env, secrets = _merge((_common_env(s), {}), _postgres_env(s))
    return ServiceSpec(
        name="migrate",
        image="app",
        command=tuple(s.migration_command),
        env=env,
        secret_env=secrets,
        limits=Limits(memory_mb=s.memory_mb, cpus=s.cpus, processes=s.process_limit),
        mounts=_source_mounts(profile, app_dir),
        tmpfs=_writable_tmp(profile),
        depends_on=("postgres",),
        one_shot=True,
        hardening=_app_hardening(profile),
        # Beside an ingress, a name of its own per release, made before the old one goes: api,
        # app and scheduler carry its exit gate, so the old release's gate stands until the new
        # migrations have run, and nothing serving is deleted for them.
        create_first=profile.ingress,
    )


def api(s: StackSettings, profile: Profile, app_dir: Path) -> ServiceSpec:
    env, secrets = _merge((_common_env(s), {}), _postgres_env(s), _redis_env(s))
    port = s.api_container_port
    if s.api_command:
        command: tuple[str, ...] = tuple(s.api_command)
    elif profile.production_servers:
        command = (
            "gunicorn",
            "ichrisbirch.wsgi_api:api",
            "--bind",
            f"0.0.0.0:{port}",
            "--worker-class",
            "uvicorn_worker.UvicornWorker",
            "--workers",
            str(s.api_workers),
            # Load the app in the master: a bad environment stops gunicorn instead of a worker boot loop.
            "--preload",
            # On SIGTERM, workers finish their in-flight requests for up to this long.
            "--graceful-timeout",
            str(SERVER_GRACEFUL_SECONDS),
        )
    else:
        command = ("uvicorn", "ichrisbirch.wsgi_api:api", "--host", "0.0.0.0", "--port", str(port))
        command += ("--timeout-graceful-shutdown", str(SERVER_GRACEFUL_SECONDS))
        if profile.hot_reload:
            command += ("--reload",)
    return ServiceSpec(
        name="api",
        image="app",
        command=command,
        env=env,
        secret_env=secrets,
        limits=Limits(memory_mb=s.memory_mb, cpus=s.cpus, processes=s.process_limit),
        ports=_published(s, profile, "api", port, s.api_port),
        replicas=s.api_replicas,
        create_first=profile.ingress,
        route=Route(s.hosts.api, "api", port, s.api_health_path),
        mounts=_source_mounts(profile, app_dir),
        tmpfs=_writable_tmp(profile),
        health=_app_health(s.api_health_command, port, s.api_health_path),
        depends_on=("postgres", "redis", *_after_migrations(s)),
        hardening=_app_hardening(profile),
        restart=profile.restart,
        stop_grace_seconds=SERVER_STOP_SECONDS,
    )


def app(s: StackSettings, profile: Profile, app_dir: Path) -> ServiceSpec:
    env, secrets = _merge((_common_env(s), {}), _flask_env(s))
    port = s.app_container_port
    if s.app_command:
        command: tuple[str, ...] = tuple(s.app_command)
    elif profile.production_servers:
        command = (
            "gunicorn",
            "ichrisbirch.wsgi_app:app",
            "--bind",
            f"0.0.0.0:{port}",
            "--workers",
            str(s.app_workers),
            "--preload",
            "--graceful-timeout",
            str(SERVER_GRACEFUL_SECONDS),
        )
    else:
        command = ("flask", "--app", "ichrisbirch.wsgi_app:app", "run", "--host", "0.0.0.0", "--port", str(port))
        if profile.hot_reload:
            command += ("--debug",)
    return ServiceSpec(
        name="app",
        image="app",
        command=command,
        env=env,
        secret_env=secrets,
        limits=Limits(memory_mb=s.memory_mb, cpus=s.cpus, processes=s.process_limit),
        ports=_published(s, profile, "app", port, s.app_port),
        replicas=s.app_replicas,
        create_first=profile.ingress,
        route=Route(s.hosts.app, "app", port, s.app_health_path),
        mounts=_source_mounts(profile, app_dir),
        tmpfs=_writable_tmp(profile),
        health=_app_health(s.app_health_command, port, s.app_health_path),
        depends_on=("api",),
        hardening=_app_hardening(profile),
        restart=profile.restart,
        stop_grace_seconds=SERVER_STOP_SECONDS,
    )


def scheduler(s: StackSettings, profile: Profile, app_dir: Path) -> ServiceSpec:
    # Exactly one per stack: two schedulers on one database would run every job twice.
    env, secrets = _merge(
        (_common_env(s), {}), _postgres_env(s), ({"SCHEDULER_HEARTBEAT_SECONDS": str(s.heartbeat_seconds)}, {})
    )
    return ServiceSpec(
        name="scheduler",
        image="app",
        command=tuple(s.scheduler_command),
        env=env,
        secret_env=secrets,
        limits=Limits(memory_mb=s.memory_mb, cpus=s.cpus, processes=s.process_limit),
        mounts=_source_mounts(profile, app_dir),
        tmpfs=_writable_tmp(profile),
        health=_app_health(s.scheduler_health_command),
        # Last in a rollout: one that fails on the api or the app never reaches it.
        depends_on=(*_after_migrations(s), "app" if s.app_enabled else "api"),
        # Two may overlap while it is replaced create-first: the leader lock lets one run jobs.
        create_first=profile.ingress,
        hardening=_app_hardening(profile),
        restart=profile.restart,
    )


def _haproxy_hardening(profile: Profile) -> Hardening:
    if not profile.hardened:
        return Hardening()
    return Hardening(user=HAPROXY_UID, read_only_root=True, drop_all_capabilities=True, no_new_privileges=True)


def _status_probe() -> HealthCheck:
    # No curl in the HAProxy image: bash's /dev/tcp asks the monitor URI.
    return HealthCheck(
        test=(
            "CMD",
            "bash",
            "-c",
            f"exec 3<>/dev/tcp/127.0.0.1/{STATUS_PORT} && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3"
            " && grep -q ' 200 ' <&3",
        )
    )


def _haproxy(config_file: str) -> tuple[str, ...]:
    return ("haproxy", "-W", "-db", "-f", config_file)


def router(s: StackSettings, profile: Profile, routed: list[ServiceSpec]) -> ServiceSpec:
    """HAProxy: TLS with the stack's certificate, routing by Host, health-gated balancing."""
    routes = [spec.route for spec in routed if spec.route is not None]
    body_limit = s.request_body_limit_kb * 1024
    # HAProxy reads the certificate's path from the environment ("${HAPROXY_TLS_PEM_FILE}").
    maintenance = s.maintenance_message if s.maintenance else None
    config = router_config(routes, s.https_port, body_limit, not s.acme_email, s.trusted_front_proxies, maintenance)
    return ServiceSpec(
        name=ROUTER,
        image="haproxy",
        command=_from_file(s, "HAPROXY_TLS_PEM", CERT_PATH, *_haproxy(HAPROXY_CONFIG_FILE)),
        env={},
        config_files={HAPROXY_CONFIG_FILE: config},
        secret_env={"HAPROXY_TLS_PEM": "router_tls_pem"},
        limits=Limits(memory_mb=s.redis_memory_mb, cpus=s.cpus, processes=s.process_limit),
        tmpfs=_writable_tmp(profile),
        health=_status_probe(),
        # Two on two nodes where there are nodes (swarm): losing one never takes the only router.
        replicas=2,
        depends_on=tuple(spec.name for spec in routed),
        # A new configuration or certificate starts beside the old router; the ingress moves
        # new connections to it once it is healthy, and the old one finishes what it serves.
        create_first=profile.ingress,
        hardening=_haproxy_hardening(profile),
        restart=profile.restart,
        # The image's stop signal, SIGUSR1, is HAProxy's soft stop: it closes its listeners and
        # finishes in-flight requests (hard-stop-after in the configuration bounds it).
        stop_grace_seconds=SERVER_STOP_SECONDS,
    )


def ingress(s: StackSettings, profile: Profile) -> ServiceSpec:
    """The one container that publishes ports (with dev's direct ones, for debugging). Its
    configuration does not depend on the routes: only its image and host ports replace it."""
    ports = _published(s, profile, "ingress", HTTP_PORT, s.http_port)
    if s.tls_termination == "ingress":  # otherwise a proxy in front serves HTTPS, and reaches port 80
        ports += _published(s, profile, "ingress", HTTPS_PORT, s.https_port)
    # Clients on the stack's network (the test suite) reach the sites by their names, as outside.
    aliases = tuple(s.hosts.all())
    if s.acme_email:
        # Caddy reads the CA's path from the environment ({$ROUTER_CA_FILE}).
        caddyfile = caddy_config(s.hosts, s.acme_email, s.acme_directory, s.https_port)
        caddy = ("caddy", "run", "--config", CADDY_CONFIG_FILE, "--adapter", "caddyfile")
        return ServiceSpec(
            name="ingress",
            image="caddy",
            command=_from_file(s, "ROUTER_CA", CADDY_CA_PATH, *caddy),
            env={},
            config_files={CADDY_CONFIG_FILE: caddyfile},
            placement=(MANAGER_NODE,),
            secret_env={"ROUTER_CA": "internal_ca_certificate"},
            limits=Limits(memory_mb=s.redis_memory_mb, cpus=s.cpus, processes=s.process_limit),
            ports=ports,
            aliases=aliases,
            # Certificates and the ACME account outlive the container.
            mounts=(Mount(target="/data", volume="acme-data"),),
            # Caddy runs as the image's root, which owns /data; with no capabilities it can bind
            # only the unprivileged ports above.
            tmpfs=_writable_tmp(profile, "/config"),
            health=_health("wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{STATUS_PORT}/healthz"),
            depends_on=(ROUTER,),
            hardening=Hardening(read_only_root=True, drop_all_capabilities=True, no_new_privileges=True)
            if profile.hardened
            else Hardening(),
            restart=profile.restart,
            stop_grace_seconds=SERVER_STOP_SECONDS,
        )
    return ServiceSpec(
        name="ingress",
        image="haproxy",
        command=_haproxy(HAPROXY_CONFIG_FILE),
        env={},
        config_files={HAPROXY_CONFIG_FILE: tcp_ingress_config()},
        # On swarm: on the manager, the address clients and DNS know; its ports in host mode.
        placement=(MANAGER_NODE,),
        secret_env={},
        limits=Limits(memory_mb=s.redis_memory_mb, cpus=s.cpus, processes=s.process_limit),
        ports=ports,
        aliases=aliases,
        tmpfs=_writable_tmp(profile),
        health=_status_probe(),
        depends_on=(ROUTER,),
        hardening=_haproxy_hardening(profile),
        restart=profile.restart,
        stop_grace_seconds=SERVER_STOP_SECONDS,
    )


def tests(s: StackSettings, profile: Profile) -> ServiceSpec:
    env, secrets = _merge(
        (_common_env(s), {}),
        _postgres_env(s),
        _redis_env(s),
        _flask_env(s),
        ({"SCHEDULER_HEARTBEAT_SECONDS": str(s.heartbeat_seconds)}, {}),
    )
    if profile.ingress:
        # The deployed stack, through its ingress, as a client outside would see it.
        env["STACK_APP_URL"] = f"https://{s.hosts.app}:{HTTPS_PORT}"
        env["STACK_API_URL"] = f"https://{s.hosts.api}:{HTTPS_PORT}"
        secrets["STACK_CA_CERTIFICATE"] = "internal_ca_certificate"
    return ServiceSpec(
        name="tests",
        image="app",
        command=tuple(s.test_command),
        env=env,
        secret_env=secrets,
        limits=Limits(memory_mb=s.memory_mb, cpus=s.cpus, processes=s.process_limit),
        depends_on=tuple(d for d in ("api", "app", "scheduler", "ingress") if _runs(s, profile, d)),
        one_shot=True,
        hardening=_app_hardening(profile),
    )


def _after_migrations(s: StackSettings) -> tuple[str, ...]:
    """("migrate",) where the application has migrations: what reads the schema starts after them."""
    return ("migrate",) if s.migration_command else ()


def _runs(s: StackSettings, profile: Profile, service: str) -> bool:
    """Whether the stack runs `service`, of those the application may leave out or the profile adds."""
    return {"app": s.app_enabled, "scheduler": s.scheduler_enabled, "ingress": profile.ingress}.get(service, True)


def app_directory(s: StackSettings, project_dir: Path) -> Path:
    """The application folder (its Dockerfile inside): `appDirectory`, relative to the project."""
    return project_dir / s.app_directory


def services(s: StackSettings, project_dir: Path) -> list[ServiceSpec]:
    """Every container of the stack, in an order where each comes after what it depends on."""
    profile = PROFILES[s.environment]
    app_dir = app_directory(s, project_dir)
    specs = [postgres(s, profile), redis(s, profile)]
    if s.migration_command:
        specs.append(migrate(s, profile, app_dir))
    specs.append(api(s, profile, app_dir))
    if s.app_enabled:
        specs.append(app(s, profile, app_dir))
    if s.scheduler_enabled:
        specs.append(scheduler(s, profile, app_dir))
    if s.backups and profile.persistent_data:
        specs.append(backup(s, profile))
        if s.backup_offsite_endpoint:
            specs.append(backup_offsite(s, profile))
    if profile.ingress:
        specs.append(router(s, profile, [spec for spec in specs if spec.route is not None]))
        specs.append(ingress(s, profile))
    if profile.runs_test_suite and s.test_command:
        specs.append(tests(s, profile))
    for spec in specs:
        # Old and new run side by side during a create-first replacement: no host port, no fixed name.
        assert not (spec.create_first and spec.ports), f"{spec.name} is replaced create-first but publishes a port"
    return specs
