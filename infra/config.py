"""A stack's settings: read from Pulumi config, validated once, every problem reported at once.

Pulumi passes config to the program as strings keyed `<project>:<key>`, with a separate list of
the keys that were stored as secrets. This module turns that into one typed `StackSettings`, or
raises `ConfigError` naming the stack and, for each problem, the key and what is wrong, before
the program registers a single resource.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
)
from pydantic.alias_generators import to_camel

from infra.ingress import HostNames
from infra.profiles import PROFILES

PROJECT = "ichrisbirch"
PROJECT_DIR = Path(__file__).resolve().parent.parent

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

    # Host ports; which services publish them is decided per environment in infra/services.py.
    api_port: HostPort = Field(8000, description="Host port of the api (FastAPI).")
    app_port: HostPort = Field(5000, description="Host port of the app (Flask).")
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
    def hosts(self) -> HostNames:
        """The names the ingress serves for this stack's domain."""
        return HostNames.of(self.domain)


SECRET_FIELDS = frozenset(
    name for name, field in StackSettings.model_fields.items() if SecretStr in get_args(field.annotation)
)
REQUIRED_SECRETS = ("postgres_password", "redis_password", "flask_secret_key")
OFFSITE_SECRETS = ["backup_offsite_access_key_id", "backup_offsite_secret_access_key"]
_LIST_FIELDS = frozenset(
    name for name, field in StackSettings.model_fields.items() if getattr(field.annotation, "__origin__", None) is list
)


_STACK_NAME = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
_STACK_NAME_MAX = 40


@dataclass(frozen=True)
class Identity:
    """The one source of every name a stack gives to what it creates, all derived from the stack name.

    Pulumi keeps stack names unique within a project's backend, so two stacks can never share a
    container, network, volume or image tag on one engine. `check_stack_name` refuses a stack name
    that would not make valid Docker names.
    """

    stack: str

    @property
    def prefix(self) -> str:
        return f"icb-{self.stack}"

    @property
    def network(self) -> str:
        return self.prefix

    def container(self, service: str) -> str:
        return f"{self.prefix}-{service}"

    def volume(self, short: str) -> str:
        return f"{self.prefix}-{short}"

    @staticmethod
    def secret_component(secret: str) -> str:
        """A secret's component name (its labels, its volume's short name): `secret-<name>`."""
        return f"secret-{secret.replace('_', '-')}"

    def secret(self, secret: str) -> str:
        """What carries a secret, by one name on every orchestrator: the Swarm secret (Pulumi adds a
        suffix to its physical name), or the holder container and the volume it fills."""
        return f"{self.prefix}-{self.secret_component(secret)}"

    @staticmethod
    def config_component(service: str, path: str) -> str:
        """A configuration file's component name: `<service>-<file name>` (router-haproxy-cfg)."""
        return f"{service}-{PurePosixPath(path).name.replace('.', '-').lower()}"

    def config(self, service: str, path: str) -> str:
        """What carries a service's configuration file: the Swarm config (Pulumi adds a suffix to its
        physical name), or the holder container and the volume it fills."""
        return f"{self.prefix}-{self.config_component(service, path)}"

    def labels(self, environment: str, component: str) -> dict[str, str]:
        return {
            "ichrisbirch.stack": self.stack,
            "ichrisbirch.environment": environment,
            "ichrisbirch.service": component,
            "ichrisbirch.managed-by": "pulumi",
        }


def committed_stack_config(stack: str) -> dict[str, Any]:
    """The `config:` of Pulumi.<stack>.yaml as committed (empty when there is no such file): what
    the command-line tools (scripts/restore, scripts/rollback) read a stack's engine and names from."""
    stack_file = PROJECT_DIR / f"Pulumi.{stack}.yaml"
    if not stack_file.exists():
        return {}
    return dict((yaml.safe_load(stack_file.read_text()) or {}).get("config") or {})


def check_stack_name(stack: str) -> str | None:
    """Why `stack` cannot name Docker objects, or None when it can."""
    if not _STACK_NAME.match(stack) or len(stack) > _STACK_NAME_MAX:
        return (
            f"stack name {stack!r} cannot name its containers, network, volumes and image tag: use lowercase "
            f"letters, digits and single dashes, starting with a letter, at most {_STACK_NAME_MAX} characters "
            "(`pulumi stack rename`)"
        )
    return None


def key_of(field_name: str) -> str:
    """The config key (without the project prefix) of a settings field."""
    return to_camel(field_name)


_FIELD_BY_KEY = {key_of(name): name for name in StackSettings.model_fields}


class ConfigError(Exception):
    """Invalid stack configuration. `problems` holds (key, what is wrong) pairs."""

    def __init__(self, stack: str, problems: list[tuple[str, str]]) -> None:
        self.stack = stack
        self.problems = problems
        lines = [f"  - {key}: {message}" for key, message in problems]
        super().__init__(
            f"Invalid configuration for stack '{stack}' ({len(problems)} problem"
            f"{'' if len(problems) == 1 else 's'}); nothing was created:\n" + "\n".join(lines)
        )


def _secret_command(stack: str, field_name: str) -> str:
    return f"pulumi config set --secret {key_of(field_name)} <value> --stack {stack}"


def _describe(error: Any) -> str:
    message = str(error["msg"])
    # "Value error, ..." is pydantic's prefix for our own validators; the rest speaks for itself.
    message = message.removeprefix("Value error, ")
    if error["type"] not in ("value_error",) and "input" in error and not isinstance(error["input"], dict):
        message += f" (got {error['input']!r})"
    return message


Problem = tuple[str, str]  # (the full key, or "stack"; what is wrong with it)


# --- 1. parsing: raw strings by full key -> values by key ----------------------------------------


def _parse(stack: str, config: Mapping[str, str], secret_keys: set[str]) -> tuple[dict[str, Any], list[Problem]]:
    """The project's keys as the model reads them: unknown keys and secrets in plain text refused,
    JSON lists decoded. Keys of other namespaces (docker:, pulumi:) are left alone."""
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    for full_key, raw in sorted(config.items()):
        namespace, _, key = full_key.partition(":")
        if namespace != PROJECT:
            continue
        field_name = _FIELD_BY_KEY.get(key)
        if field_name is None:
            hint = difflib.get_close_matches(key, _FIELD_BY_KEY, n=1)
            problems.append((full_key, "unknown key" + (f"; did you mean {PROJECT}:{hint[0]}?" if hint else "")))
            continue
        if field_name in SECRET_FIELDS and raw == "":
            continue  # Pulumi.yaml's empty default: not set
        if field_name in SECRET_FIELDS and full_key not in secret_keys:
            message = f"is a secret given in plain text; remove it and run `{_secret_command(stack, field_name)}`"
            problems.append((full_key, message))
            continue
        if field_name in _LIST_FIELDS:
            try:
                values[key] = json.loads(raw)
            except json.JSONDecodeError:
                problems.append((full_key, f"must be a JSON list of strings (got {raw!r})"))
                continue
        else:
            values[key] = raw
    return values, problems


# --- 2. fields: each value against its field, and the secrets a stack needs ----------------------


def _validate(stack: str, values: dict[str, Any]) -> tuple[StackSettings | None, list[Problem]]:
    try:
        return StackSettings.model_validate(values), []
    except ValidationError as error:
        problems = []
        for detail in error.errors():
            key = str(detail["loc"][0]) if detail["loc"] else "?"
            if detail["type"] == "missing":
                problems.append(
                    (f"{PROJECT}:{key}", f"is required; run `pulumi config set {key} <value> --stack {stack}`")
                )
            else:
                problems.append((f"{PROJECT}:{key}", _describe(error=detail)))
        return None, problems


def _missing_secrets(stack: str, values: dict[str, Any], refused: set[str]) -> list[Problem]:
    """Checked on the raw keys, so missing secrets are reported even when other values are bad.
    `refused`: keys already reported as plain-text secrets."""
    needed = list(REQUIRED_SECRETS) + (["registry_password"] if values.get("registryUsername") else [])
    if values.get("backupOffsiteEndpoint"):
        needed += OFFSITE_SECRETS
    return [
        (f"{PROJECT}:{key_of(name)}", f"is missing; run `{_secret_command(stack, name)}`")
        for name in needed
        if key_of(name) not in values and f"{PROJECT}:{key_of(name)}" not in refused
    ]


# --- 3. cross-field rules: each one a function of the whole settings ------------------------------


def _ports_collide(settings: StackSettings) -> list[Problem]:
    problems = []
    by_port: dict[int, list[str]] = {}
    for service, port in published_ports(settings).items():
        by_port.setdefault(port, []).append(service)
    for port, services in sorted(by_port.items()):
        if len(services) > 1:
            port_keys = {"ingress": "http_port", "ingress_https": "https_port"}
            keys = ", ".join(f"{PROJECT}:{key_of(port_keys.get(s, s + '_port'))}" for s in services)
            problems.append((keys, f"{' and '.join(services)} would both publish host port {port}"))
    return problems


def _ssh_options_need_an_ssh_host(settings: StackSettings) -> list[Problem]:
    if settings.docker_ssh_opts and not settings.docker_host.startswith("ssh://"):
        return [(f"{PROJECT}:dockerSshOpts", f"only applies to an ssh:// dockerHost, not {settings.docker_host}")]
    return []


def _acme_needs_a_public_domain(settings: StackSettings) -> list[Problem]:
    private = "." not in settings.domain or settings.domain.endswith((".localhost", ".internal", ".test"))
    if settings.acme_email and private:
        return [
            (
                f"{PROJECT}:acmeEmail",
                f"needs a public {PROJECT}:domain that an ACME CA can reach, not {settings.domain!r}",
            )
        ]
    return []


def _tls_in_front_is_declared_whole(settings: StackSettings) -> list[Problem]:
    key = f"{PROJECT}:tlsTermination"
    if settings.tls_termination != "front":
        if settings.front_proxies:
            return [(f"{PROJECT}:frontProxies", f"only applies with {key} front")]
        return []
    problems = []
    if not settings.front_proxies:
        message = f"is required with {key} front: the proxies whose X-Forwarded-* headers are trusted"
        problems.append((f"{PROJECT}:frontProxies", message))
    if settings.acme_email:
        message = f"cannot be set with {key} front: the proxy in front holds the certificate"
        problems.append((f"{PROJECT}:acmeEmail", message))
    if not PROFILES[settings.environment].ingress:
        problems.append((key, f"front needs an ingress, which the {settings.environment} environment does not run"))
    if settings.bind_address in ("0.0.0.0", "::"):
        message = f"must be the address the proxy in front reaches (not every interface) with {key} front"
        problems.append((f"{PROJECT}:bindAddress", message))
    return problems


def _maintenance_needs_an_ingress(settings: StackSettings) -> list[Problem]:
    if settings.maintenance and not PROFILES[settings.environment].ingress:
        message = f"the {settings.environment} environment runs no ingress, whose router would answer for it"
        return [(f"{PROJECT}:maintenance", message)]
    return []


def _a_suite_in_the_stack_needs_a_domain(settings: StackSettings) -> list[Problem]:
    if PROFILES[settings.environment].runs_test_suite and settings.domain == "localhost":
        message = (
            "must not be localhost in a stack whose test suite reaches the ingress by name"
            " (inside a container localhost is the container itself); for example test.ichrisbirch.internal"
        )
        return [(f"{PROJECT}:domain", message)]
    return []


def _swarm_runs_prod_from_a_registry(settings: StackSettings) -> list[Problem]:
    if settings.orchestrator != "swarm":
        return []
    problems = []
    if settings.environment != "prod":
        problems.append(
            (
                f"{PROJECT}:orchestrator",
                f"swarm runs the prod environment only, not {settings.environment}"
                " (dev bind-mounts the checkout; test runs its suite as a one-shot container)",
            )
        )
    if not settings.image_registry and not settings.app_image:
        problems.append(
            (
                f"{PROJECT}:imageRegistry",
                "is required with orchestrator swarm (or a prebuilt appImage): every node pulls the"
                " application image from it",
            )
        )
    if not settings.data_node_host:
        problems.append(
            (
                f"{PROJECT}:dataNodeHost",
                "is required with orchestrator swarm: the data volumes are declared (and protected) on the engine"
                " of the node labelled ichrisbirch.data=true, for example ssh://deploy@data-node",
            )
        )
    return problems


def _data_node_is_for_swarm(settings: StackSettings) -> list[Problem]:
    if settings.data_node_host and settings.orchestrator != "swarm":
        return [(f"{PROJECT}:dataNodeHost", "only applies to orchestrator swarm (one engine keeps its volumes itself)")]
    return []


def _offsite_copy_is_complete(settings: StackSettings) -> list[Problem]:
    """An off-host copy needs the rest of its settings, and dumps to copy."""
    endpoint = f"{PROJECT}:backupOffsiteEndpoint"
    if not settings.backup_offsite_endpoint:
        given = [key_of(f) for f in ("backup_offsite_bucket", "backup_offsite_prefix", "backup_offsite_region")
                 if getattr(settings, f)]  # fmt: skip
        return [(f"{PROJECT}:{key}", f"has no effect without {endpoint}") for key in given]
    problems = []
    if not settings.backup_offsite_bucket:
        problems.append((f"{PROJECT}:backupOffsiteBucket", f"is required with {endpoint}"))
    if not settings.backups:
        problems.append((endpoint, f"copies the backup service's dumps, but {PROJECT}:backups is false"))
    elif not PROFILES[settings.environment].persistent_data:
        problems.append(
            (endpoint, f"copies dumps, but the {settings.environment} environment keeps no data to back up")
        )
    return problems


def _the_application_contract_is_whole(settings: StackSettings) -> list[Problem]:
    """What the shipped application's defaults cannot stand in for."""
    problems = []
    if settings.scheduler_enabled:
        for field_name in ("scheduler_command", "scheduler_health_command"):
            if not getattr(settings, field_name):
                key = f"{PROJECT}:{key_of(field_name)}"
                problems.append((key, f"is required while {PROJECT}:schedulerEnabled is true"))
    if not settings.app_image and not (PROJECT_DIR / settings.app_directory / SHIPPED_PACKAGE).is_dir():
        for field_name in ("api_command", "app_command"):
            if not getattr(settings, field_name) and (field_name == "api_command" or settings.app_enabled):
                message = (
                    f"is required for the application in {settings.app_directory}: the default runs the"
                    f" shipped app's modules ({SHIPPED_PACKAGE}.*), which it does not have"
                )
                problems.append((f"{PROJECT}:{key_of(field_name)}", message))
    return problems


def _a_prebuilt_image_is_pinned_by_digest_in_prod(settings: StackSettings) -> list[Problem]:
    if settings.app_image and settings.environment == "prod" and "@sha256:" not in settings.app_image:
        message = (
            f"must be pinned by digest in prod (a tag can be moved): {settings.app_image}@sha256:<digest>,"
            " as the registry reported it when CI pushed"
        )
        return [(f"{PROJECT}:appImage", message)]
    return []


def _the_application_has_a_dockerfile(settings: StackSettings) -> list[Problem]:
    if settings.app_image:
        return []  # prebuilt: nothing is built here
    app_dir = PROJECT_DIR / settings.app_directory
    if not (app_dir / "Dockerfile").is_file():
        return [(f"{PROJECT}:appDirectory", f"{app_dir} has no Dockerfile")]
    return []


CROSS_FIELD_RULES: tuple[Callable[[StackSettings], list[Problem]], ...] = (
    _ports_collide,
    _ssh_options_need_an_ssh_host,
    _acme_needs_a_public_domain,
    _a_suite_in_the_stack_needs_a_domain,
    _tls_in_front_is_declared_whole,
    _maintenance_needs_an_ingress,
    _swarm_runs_prod_from_a_registry,
    _data_node_is_for_swarm,
    _offsite_copy_is_complete,
    _the_application_contract_is_whole,
    _a_prebuilt_image_is_pinned_by_digest_in_prod,
    _the_application_has_a_dockerfile,
)


def load_settings(stack: str, config: Mapping[str, str], secret_keys: set[str]) -> StackSettings:
    """Validate the raw Pulumi config of `stack` (keys `<namespace>:<key>`, string values).

    `secret_keys` are the full keys Pulumi marked as secret. Every problem is collected, in three
    passes (parsing, fields, cross-field rules), and raised together as one ConfigError.
    """
    values, problems = _parse(stack, config, secret_keys)
    settings, field_problems = _validate(stack, values)
    refused = {key for key, message in problems if message.startswith("is a secret given in plain text")}
    problems += field_problems + _missing_secrets(stack, values, refused)
    if settings is not None:
        problems += [problem for rule in CROSS_FIELD_RULES for problem in rule(settings)]
    stack_problem = check_stack_name(stack)
    if stack_problem:
        problems.append(("stack", stack_problem))
    if problems:
        raise ConfigError(stack, problems)
    assert settings is not None
    if settings.backup_offsite_endpoint and not settings.backup_offsite_prefix:
        settings = settings.model_copy(update={"backup_offsite_prefix": stack})  # one folder per stack
    return settings


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
