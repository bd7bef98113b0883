"""The model of a stack's settings: each config key, its type, its default and what it is for,
with the checks of a single value (an image reference, a Docker host, a schedule).

`infra.config.load_settings` builds one from a stack's Pulumi config; Pulumi.yaml declares the same
keys (tests/unit/test_config.py holds the two equal) and docs/config.md is generated from them.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
)
from pydantic.alias_generators import to_camel

from infra.ingress import HostNames
from infra.profiles import PROFILES

Environment = Literal["dev", "test", "prod"]
ENVIRONMENTS: tuple[str, ...] = get_args(Environment)

# A Docker image reference: [registry[:port]/]path[:tag][@sha256:digest] (distribution/reference grammar).
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REGISTRY = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9-]+)*(?::[0-9]+)?/)"
_IMAGE_REF = re.compile(
    rf"^(?P<name>{_REGISTRY}?{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)
_REPOSITORY = re.compile(rf"^{_REGISTRY}?{_COMPONENT}(?:/{_COMPONENT})*$")


def _pinned_image(value: str) -> str:
    match = _IMAGE_REF.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a valid image reference (expected name:tag or name@sha256:digest)")
    tag, digest = match.group("tag"), match.group("digest")
    if not digest and (tag is None or tag == "latest"):
        raise ValueError(f"{value!r} is not pinned: give an explicit tag other than 'latest', or a digest")
    return value


def _pinned_image_or_empty(value: str) -> str:
    return value and _pinned_image(value)


def _address_or_network(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False)) if "/" in value else str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address or network (for example 172.18.0.5 or 10.0.0.0/24)") from None


def _repository_or_empty(value: str) -> str:
    if value and not _REPOSITORY.match(value):
        raise ValueError(f"{value!r} is not a valid registry repository (for example registry.example.com/team)")
    return value


def _ip_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address (for example 127.0.0.1)") from None


def _optional_docker_host(value: str) -> str:
    return value and _docker_host(value)


def _docker_host(value: str) -> str:
    if not re.match(r"^(unix|tcp|ssh|npipe)://\S+$", value):
        raise ValueError(
            f"{value!r} is not a Docker host (unix:///var/run/docker.sock, ssh://user@host, tcp://host:2376)"
        )
    return value


# Long enough for a Postgres replacement or a restore (measured: 3 to 15 s), well inside the
# ingress's 60 s on a quiet connection.
DEFAULT_REQUEST_HOLD_SECONDS = 20
_SCHEDULES = {"@hourly": 3600, "@daily": 86400, "@weekly": 7 * 86400}
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def schedule_seconds(schedule: str) -> int:
    """The interval a backup schedule means: @hourly, @daily, @weekly, or <n>s|m|h|d."""
    if schedule in _SCHEDULES:
        return _SCHEDULES[schedule]
    match = re.fullmatch(r"([1-9][0-9]*)([smhd])", schedule)
    if not match:
        raise ValueError(f"{schedule!r} is not a schedule (@hourly, @daily, @weekly, or an interval such as 6h or 30m)")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _endpoint_or_empty(value: str) -> str:
    if value and not re.match(r"^https?://[^\s/]+(:[0-9]+)?/?$", value):
        raise ValueError(
            f"{value!r} is not an endpoint URL (https://host[:port], for example https://s3.amazonaws.com)"
        )
    return value


def _schedule(value: str) -> str:
    if schedule_seconds(value) < 10:
        raise ValueError(f"{value!r} is shorter than 10 seconds")
    return value


ImageRef = Annotated[str, AfterValidator(_pinned_image)]
# A command as Docker takes it: program and arguments, none empty.
Command = list[Annotated[str, Field(min_length=1)]]
ContainerPort = Annotated[int, Field(ge=1, le=65535)]
HealthPath = Annotated[str, Field(pattern=r"^/[^\s]*$")]
HostPort = Annotated[int, Field(ge=1, le=65535)]
# The application this project ships (its folder and package), whose contract the defaults describe.
SHIPPED_APP, SHIPPED_PACKAGE = "app", "ichrisbirch"
Positive = Annotated[int, Field(gt=0)]


class StackSettings(BaseModel):
    """Everything one stack can be configured with. Field names are snake_case; keys are camelCase."""

    model_config = ConfigDict(
        alias_generator=to_camel, extra="forbid", frozen=True, validate_default=True, strict=False
    )

    environment: Environment = Field(description="Which environment this stack is: dev, test or prod.")

    # Where the stack runs.
    docker_host: Annotated[str, AfterValidator(_docker_host)] = Field(
        "unix:///var/run/docker.sock", description="Docker engine to deploy to: a local socket or ssh://user@host."
    )
    docker_ssh_opts: list[str] = Field(
        default_factory=list, description="Extra ssh options for an ssh:// dockerHost (for example -i ~/.ssh/id)."
    )
    bind_address: Annotated[str, AfterValidator(_ip_address)] = Field(
        "127.0.0.1", description="Host IP address that published ports bind to."
    )

    orchestrator: Literal["containers", "swarm"] = Field(
        "containers",
        description="containers: one Docker engine; swarm: Swarm services on the swarm dockerHost manages (prod).",
    )
    data_node_host: Annotated[str, AfterValidator(_optional_docker_host)] = Field(
        "",
        description="On swarm (required there): the Docker engine of the node labelled ichrisbirch.data=true,"
        " where Postgres, Redis and the backups run; their volumes are declared (and in prod protected) on it.",
    )
    overlay_encrypted: bool = Field(
        False, description="On swarm: encrypt the overlay network's traffic between nodes (IPsec; costs throughput)."
    )
    app_directory: str = Field(
        SHIPPED_APP,
        description="The application to build and run: a folder with its Dockerfile, relative to the project.",
    )

    app_image: Annotated[str, AfterValidator(_pinned_image_or_empty)] = Field(
        "",
        description="A prebuilt application image to run instead of building appDirectory: a reference a CI"
        " pushed, pinned by digest in prod (registry@sha256:...); pulled by the engine (every node, on swarm).",
    )

    keep_releases: Positive = Field(
        5,
        description="How many releases (application images) stay on the engine for a rollback; older ones are"
        " removed by `python -m infra.releases prune` (scripts/deploy and scripts/rollback run it).",
    )

    # Images: every reference is configurable so nothing pulls a fixed name.
    python_base_image: ImageRef = Field(
        "python:3.12-slim-bookworm", description="Base image of app/Dockerfile (build argument PYTHON_BASE_IMAGE)."
    )
    postgres_image: ImageRef = Field("postgres:16.4-bookworm", description="Pinned Postgres image.")
    redis_image: ImageRef = Field("redis:7.4.1-bookworm", description="Pinned Redis image.")
    haproxy_image: ImageRef = Field(
        "haproxy:2.8.10-bookworm",
        description="Pinned HAProxy image of the ingress and the router, which balances api and app (test, prod).",
    )
    caddy_image: ImageRef = Field(
        "caddy:2.10.2", description="Pinned Caddy image of the ingress when acmeEmail is set (ACME certificates)."
    )
    rclone_image: ImageRef = Field(
        "rclone/rclone:1.75.2",
        description="Pinned rclone image that copies dumps off the host (backupOffsiteEndpoint).",
    )
    image_registry: Annotated[str, AfterValidator(_repository_or_empty)] = Field(
        "", description="Registry repository to push the prod image to; empty keeps the image local."
    )
    registry_username: str = Field("", description="User for imageRegistry (its password is registryPassword).")

    # Host ports; which services publish them is decided per environment in infra/profiles.py.
    api_port: HostPort = Field(8000, description="Host port of the api (FastAPI).")
    app_port: HostPort = Field(5000, description="Host port of the app (Flask).")
    postgres_parameters: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.]*=[^\n\r]+$")]] = Field(
        default_factory=list,
        description="Postgres server settings as name=value (max_connections=200), each passed as -c;"
        " a change restarts Postgres (replaced, its volume kept, requests held meanwhile).",
    )
    postgres_port: HostPort = Field(5432, description="Host port of Postgres (not published in prod).")
    redis_port: HostPort = Field(6379, description="Host port of Redis (not published in prod).")
    http_port: HostPort = Field(80, description="Host port of the ingress's plain HTTP, which only redirects.")
    https_port: HostPort = Field(443, description="Host port of the ingress's HTTPS.")

    domain: str = Field(
        "localhost",
        pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$",
        description="Where the ingress serves: the app at <domain>, the api at api.<domain>.",
    )
    acme_email: str = Field(
        "",
        pattern=r"^$|^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="Set (with a public domain) for certificates from ACME; empty uses the stack's internal CA.",
    )
    acme_directory: str = Field(
        "https://acme-v02.api.letsencrypt.org/directory",
        pattern=r"^https://\S+$",
        description="ACME directory URL (Let's Encrypt by default; its staging URL while trying things out).",
    )
    tls_termination: Literal["ingress", "front"] = Field(
        "ingress",
        description="Where TLS ends: ingress (the stack's CA, or ACME with acmeEmail), or front: a tunnel or"
        " proxy you run ends it, and the ingress serves plain HTTP on bindAddress:httpPort only.",
    )
    front_proxies: list[Annotated[str, AfterValidator(_address_or_network)]] = Field(
        default_factory=list,
        description="With tlsTermination front: the addresses (or networks) the proxy in front connects"
        " from; only their X-Forwarded-For, -Proto and -Host are trusted.",
    )
    request_body_limit_kb: Positive = Field(
        1024, description="Largest request body the ingress accepts, in KiB; larger ones get a 413."
    )
    maintenance: bool = Field(
        False,
        description="The router answers every request with a 503 page and Retry-After, health too"
        " (scripts/ops <stack> maintenance on|off sets it).",
    )
    maintenance_message: str = Field(
        "Down for maintenance; back shortly.",
        max_length=200,
        pattern=r"^[^\"\\$\n\r]*$",  # inside a quoted HAProxy string: no quote, escape or variable
        description="The sentence the maintenance page shows (no quotes, backslashes, $ or newlines).",
    )

    request_hold_seconds: Annotated[int, Field(ge=0, le=30)] = Field(
        DEFAULT_REQUEST_HOLD_SECONDS,
        description="How long the router holds a request while its service has no container to serve"
        " (Postgres replaced or restored, a writer restarting) before answering 503 with Retry-After;"
        " 0 answers at once. At most 30, the ingress gives up on a quiet connection after 60 s.",
    )

    # Sizing.
    api_replicas: Positive = Field(2, description="On swarm: api tasks, spread over the nodes.")
    app_replicas: Positive = Field(2, description="On swarm: app tasks, spread over the nodes.")
    api_workers: Positive = Field(4, description="gunicorn workers of the api in prod.")
    app_workers: Positive = Field(4, description="gunicorn workers of the app in prod.")
    memory_mb: Positive = Field(512, description="Memory limit of each application container, in MB.")
    postgres_memory_mb: Positive = Field(1024, description="Memory limit of Postgres, in MB.")
    redis_memory_mb: Positive = Field(256, description="Memory limit of Redis, in MB.")
    cpus: Annotated[float, Field(gt=0)] = Field(1.0, description="CPU limit of each container, in cores.")
    process_limit: Positive = Field(256, description="Process limit (ulimit nproc) of each container's user.")
    wait_timeout_seconds: Positive = Field(
        120, description="How long a deployment waits for a container to be healthy."
    )

    # Application settings.
    postgres_user: str = Field("ichrisbirch", min_length=1, description="Postgres user the application connects as.")
    postgres_db: str = Field("ichrisbirch", min_length=1, description="Postgres database of the application.")
    redis_db: Annotated[int, Field(ge=0, le=15)] = Field(0, description="Redis database number.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="LOG_LEVEL of the application.")
    heartbeat_seconds: Positive = Field(60, description="Interval of the scheduler's heartbeat job, in seconds.")

    # The application's contract: what each of its services runs and how the stack knows it is
    # healthy. The defaults are the shipped application's (app/); another application sets these.
    api_command: Command = Field(
        default_factory=list,
        description="The api's command (a JSON list); empty: the shipped app's (gunicorn in prod, uvicorn elsewhere).",
    )
    api_container_port: ContainerPort = Field(8000, description="Port the api listens on inside its container.")
    api_health_path: HealthPath = Field(
        "/health", description="HTTP path that answers 200 when the api can serve; the router checks it."
    )
    api_health_command: Command = Field(
        default_factory=lambda: ["python", "-m", "ichrisbirch.healthcheck", "api"],
        description="Docker's health check of the api (a JSON list); empty: apiHealthPath over HTTP"
        " (with wget, curl or python3, whichever the image has).",
    )
    app_enabled: bool = Field(True, description="Whether the application has a web app (Flask) beside its api.")
    app_command: Command = Field(
        default_factory=list,
        description="The app's command (a JSON list); empty: the shipped app's (gunicorn in prod, flask elsewhere).",
    )
    app_container_port: ContainerPort = Field(5000, description="Port the app listens on inside its container.")
    app_health_path: HealthPath = Field(
        "/health", description="HTTP path that answers 200 when the app can serve; the router checks it."
    )
    app_health_command: Command = Field(
        default_factory=lambda: ["python", "-m", "ichrisbirch.healthcheck", "app"],
        description="Docker's health check of the app (a JSON list); empty: appHealthPath over HTTP.",
    )
    scheduler_enabled: bool = Field(True, description="Whether the application has a scheduler (exactly one runs).")
    scheduler_command: Command = Field(
        default_factory=lambda: ["python", "-m", "ichrisbirch.wsgi_scheduler"],
        description="The scheduler's command (a JSON list).",
    )
    scheduler_health_command: Command = Field(
        default_factory=lambda: ["python", "-m", "ichrisbirch.healthcheck", "scheduler"],
        description="Docker's health check of the scheduler (a JSON list).",
    )
    test_command: Command = Field(
        # -rfEp: each failed, erroring and passed test by name in the log, for checking what ran.
        default_factory=lambda: ["python", "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfEp", "tests"],
        description="The application's own test suite, run once against the deployed test stack in the"
        " development image (a JSON list); empty: none.",
    )
    migration_command: Command = Field(
        default_factory=lambda: ["python", "-m", "ichrisbirch.migrate"],
        description="Run to completion before a release serves, in the application image (a JSON list);"
        " empty: the application has no migrations.",
    )

    # Backups: in the stacks whose data persist (dev and prod; test keeps none).
    backups: bool = Field(
        True, description="A backup service: pg_dump on backupSchedule into the protected icb-<stack>-backups volume."
    )
    backup_schedule: Annotated[str, AfterValidator(_schedule)] = Field(
        "@daily", description="How often to back up: @hourly, @daily, @weekly, or an interval such as 6h or 30m."
    )
    backup_keep: Positive = Field(7, description="How many good dumps to keep; older ones are deleted.")
    # Off the host: every good dump and its checksum copied to an S3-compatible bucket (rclone).
    backup_offsite_endpoint: Annotated[str, AfterValidator(_endpoint_or_empty)] = Field(
        "",
        description="S3 API endpoint to copy each good dump to (https://s3.eu-west-1.amazonaws.com); empty: none.",
    )
    backup_offsite_bucket: str = Field(
        "",
        pattern=r"^$|^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="Bucket the dumps go to; it must exist (the copy never creates or deletes anything).",
    )
    backup_offsite_prefix: str = Field(
        "",
        pattern=r"^$|^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$",
        description="Folder in the bucket; empty: the stack name.",
    )
    backup_offsite_region: str = Field("", description="Region of the bucket, where the provider needs one.")
    backup_offsite_provider: str = Field(
        "Other",
        pattern=r"^[A-Za-z][A-Za-z0-9]*$",
        description="rclone's name for the S3 provider: AWS, Minio, Ceph, Cloudflare, Wasabi, ... or Other.",
    )

    # Secrets: only ever from `pulumi config set --secret`.
    postgres_password: SecretStr | None = Field(None, description="Postgres password (secret, required).")
    redis_password: SecretStr | None = Field(None, description="Redis password (secret, required).")
    flask_secret_key: SecretStr | None = Field(None, description="Flask session key (secret, required).")
    registry_password: SecretStr | None = Field(
        None, description="Password of imageRegistry; set it with `pulumi config set --secret registryPassword`."
    )
    backup_offsite_access_key_id: SecretStr | None = Field(
        None, description="Access key id for backupOffsiteEndpoint (secret; required with it)."
    )
    backup_offsite_secret_access_key: SecretStr | None = Field(
        None, description="Secret access key for backupOffsiteEndpoint (secret; required with it)."
    )

    def secret(self, name: str) -> str:
        """The value of the settings secret `name` (a field name), the one place one is read;
        load_settings has checked that every secret the stack needs is there."""
        value = getattr(self, name)
        assert isinstance(value, SecretStr), f"{name} is validated as required where it is read"
        return value.get_secret_value()

    @property
    def trusted_front_proxies(self) -> list[str]:
        """The proxies whose X-Forwarded-* the router trusts: none unless TLS ends in front."""
        return self.front_proxies if self.tls_termination == "front" else []

    @property
    def engine_is_local(self) -> bool:
        """Whether the engine runs on this machine, sees its files (the checkout) and answers on its
        loopback: a socket (unix://, npipe://) rather than ssh:// or tcp://."""
        return self.docker_host.startswith(("unix://", "npipe://"))

    @property
    def hosts(self) -> HostNames:
        """The names the ingress serves for this stack's domain."""
        return HostNames.of(self.domain)


SECRET_FIELDS = frozenset(
    name for name, field in StackSettings.model_fields.items() if SecretStr in get_args(field.annotation)
)
REQUIRED_SECRETS = ("postgres_password", "redis_password", "flask_secret_key")
OFFSITE_SECRETS = ["backup_offsite_access_key_id", "backup_offsite_secret_access_key"]
LIST_FIELDS = frozenset(
    name for name, field in StackSettings.model_fields.items() if getattr(field.annotation, "__origin__", None) is list
)


def key_of(field_name: str) -> str:
    """The config key (without the project prefix) of a settings field."""
    return to_camel(field_name)


def published_ports(s: StackSettings) -> dict[str, int]:
    """Host port per published service, for the config check that no two collide."""
    ports = {
        "api": s.api_port,
        "app": s.app_port,
        "postgres": s.postgres_port,
        "redis": s.redis_port,
        "ingress": s.http_port,
        "ingress_https": s.https_port,
    }
    published = PROFILES[s.environment].published
    return {name: port for name, port in ports.items() if name.removesuffix("_https") in published}
