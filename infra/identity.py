"""A stack's identity: the project, its folder, and every name a stack gives to what it creates.

Everything a stack creates is named from the stack name, so two stacks never share a container,
network, volume or image tag on one engine. Read by the program and by the command-line tools.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

PROJECT = "ichrisbirch"
PROJECT_DIR = Path(__file__).resolve().parent.parent

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
