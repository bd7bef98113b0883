"""Reading what the program registered under Pulumi mocks: a container's environment, the
containers that run, the configuration files their holders carry, the data volumes."""

from __future__ import annotations

from typing import Any

from proof.mocks import Registration, Run
from proof.resources import CONTAINER, SECRET_SIG, SECRET_VALUE_SIG, VOLUME

LONG_RUNNING = ["postgres", "redis", "api", "app", "scheduler"]
APP_SERVICES = ["migrate", "api", "app", "scheduler"]

CONTRACT_POSTGRES = {"POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_USERNAME", "POSTGRES_PASSWORD", "POSTGRES_DB"}
CONTRACT_REDIS = {"REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "REDIS_DB"}
COMMON = {"ENVIRONMENT", "LOG_LEVEL"}


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG) == SECRET_VALUE_SIG


def unwrap(value: Any) -> Any:
    return value["value"] if is_secret(value) else value


def env_of(container: Registration) -> dict[str, str]:
    return dict(entry.split("=", 1) for entry in unwrap(container.inputs["envs"]))


def containers(run: Run) -> dict[str, Registration]:
    """The containers that run (not prod's secret holders, which are created and never started)."""
    return {name: c for name, c in run.of_type(CONTAINER).items() if c.inputs.get("start", True)}


def holders(run: Run) -> dict[str, Registration]:
    return {name: c for name, c in run.of_type(CONTAINER).items() if not c.inputs.get("start", True)}


def label(resource: Registration, key: str) -> str | None:
    return next((x["value"] for x in unwrap(resource.inputs.get("labels")) or [] if x["label"] == key), None)


def config_of(run: Run, service: str, path: str | None = None) -> str:
    """The configuration file the program renders for `service` (at `path`; by default its main
    one, not the router's hold.lua): its holder's upload."""
    (holder,) = [
        h
        for h in holders(run).values()
        if label(h, "ichrisbirch.config-of") == service
        and (
            label(h, "ichrisbirch.file") == path
            or (path is None and not str(label(h, "ichrisbirch.file")).endswith(".lua"))
        )
    ]
    (upload,) = unwrap(holder.inputs["uploads"])
    return str(upload["content"])


def data_volumes(run: Run) -> dict[str, Registration]:
    """The stack's volumes that hold data: not those a holder fills with a secret or a configuration."""
    held = {v["volumeName"] for h in holders(run).values() for v in h.inputs["volumes"]}
    return {name: v for name, v in run.of_type(VOLUME).items() if v.inputs["name"] not in held}


SECRET_VARS = {"POSTGRES_PASSWORD", "REDIS_PASSWORD", "FLASK_SECRET_KEY", "PGPASSWORD", "REDISCLI_AUTH"}


def as_read(stack: str, names: set[str]) -> set[str]:
    """The variables a container has for `names`: in prod each secret's is <VAR>_FILE."""
    return {f"{n}_FILE" if stack == "prod" and n in SECRET_VARS else n for n in names}


def short(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


# The host ports each committed stack publishes.
PORTS = {
    "dev": {"api": 8000, "app": 5000, "postgres": 5432, "redis": 6379},
    "test": {"postgres": 5434, "redis": 6380, "ingress": 8081},
    "prod": {"ingress": 80},
}
