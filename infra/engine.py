"""A Docker engine as a stack's provider reaches it, for the command-line tools (scripts/ops,
scripts/rollback, scripts/restore, the releases' prune, the why of a failed `up`), and the program's
check that an ssh:// engine answers before anything is planned.

A local socket or a tcp:// engine is driven with `docker -H <host>`. An ssh:// engine is driven the
way the provider reaches it: over SSH with the stack's `dockerSshOpts` (its key, its pinned
known_hosts), running the host's own Docker CLI, which the provider's `docker system dial-stdio`
needs there anyway. The local Docker CLI's ssh:// support has no place for those options.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import subprocess
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from pulumi import RunError

from infra.identity import PROJECT, committed_stack_config
from infra.settings import StackSettings

LOCAL_ENGINE = str(StackSettings.model_fields["docker_host"].default)
CONNECT_TIMEOUT = ("-o", "ConnectTimeout=30")  # as the Docker CLI dials ssh://, unless the options say


def ssh_options(value: Any) -> tuple[str, ...]:
    """`dockerSshOpts` as a stack file or a provider's state holds it: a list, or that list as JSON.
    An option's words are never split again (a key's path may hold a space)."""
    listed = value
    if isinstance(value, str):
        with contextlib.suppress(json.JSONDecodeError):
            listed = json.loads(value)
    if listed is not None and not isinstance(listed, list):
        raise ValueError(f'dockerSshOpts must be a list of SSH options, e.g. ["-i", "~/.ssh/deploy"]; got {value!r}')
    return tuple(str(option) for option in listed or ())


@dataclass(frozen=True)
class Engine:
    """One Docker engine: its host (unix://, tcp:// or ssh://) and, for ssh://, the SSH options."""

    host: str
    ssh_opts: tuple[str, ...] = ()

    @classmethod
    def configured(cls, stack: str, docker_host: str | None = None) -> Engine:
        """`docker_host`, else Pulumi.<stack>.yaml's dockerHost, else the program's default; with the
        stack file's dockerSshOpts where that is the stack's own ssh:// host."""
        config = committed_stack_config(stack)
        configured = str(config.get(f"{PROJECT}:dockerHost") or LOCAL_ENGINE)
        host = docker_host or configured
        same_host = host == configured and host.startswith("ssh://")
        return cls(host, ssh_options(config.get(f"{PROJECT}:dockerSshOpts")) if same_host else ())

    def __str__(self) -> str:
        return self.host

    @property
    def over_ssh(self) -> bool:
        return self.host.startswith("ssh://")

    def command(self, *args: str, tty: bool = False) -> list[str]:
        """The argv that runs `docker <args>` against this engine."""
        if not self.over_ssh:
            return ["docker", "-H", self.host, *args]
        return self.on_host("docker", *args, tty=tty)

    def on_host(self, *words: str, tty: bool = False) -> list[str]:
        """The argv that runs `words` on an ssh:// engine's host, through SSH as its user."""
        target = urlparse(self.host)
        destination = f"{target.username}@{target.hostname}" if target.username else str(target.hostname)
        port = ("-p", str(target.port)) if target.port else ()
        timeout = () if any("connecttimeout" in option.lower() for option in self.ssh_opts) else CONNECT_TIMEOUT
        # The remote side joins the words into one shell command: each is quoted to arrive whole.
        remote = [shlex.quote(word) for word in words]
        return ["ssh", *self.ssh_opts, *timeout, *port, "-t" if tty else "-T", "--", destination, *remote]

    def run(self, *args: str, timeout: float = 600, check: bool = False) -> subprocess.CompletedProcess[str]:
        """`docker <args>` on this engine, its output captured."""
        return subprocess.run(
            self.command(*args), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=check
        )


# --- reaching an ssh:// engine --------------------------------------------------------------------

# What ssh (or the host's Docker CLI) says, and what the operator should check. First match wins.
SSH_FAULTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("Host key verification failed", "HOST IDENTIFICATION HAS CHANGED", "host key is not known"),
        "the host's key is not the one pinned: check that the known_hosts dockerSshOpts names"
        " (-o UserKnownHostsFile=...) holds this host's key",
    ),
    (
        ("Permission denied (publickey", "Too many authentication failures", "Permission denied, please try"),
        "the host refused the key: check that the key dockerSshOpts names (-i ..., or the agent's) is in"
        " the user's ~/.ssh/authorized_keys on the host",
    ),
    (
        ("timed out", "No route to host", "Connection refused", "Network is unreachable", "Could not resolve"),
        "the host does not answer on SSH: check its address, that sshd runs there and that this machine"
        " may reach its SSH port",
    ),
    (
        ("Cannot connect to the Docker daemon", "permission denied while trying to connect", "not found"),
        "SSH works but the host's Docker does not answer the user: check that dockerd runs there and that"
        " the user may use it (the docker group)",
    ),
)


class EngineUnreachable(RunError):
    """An ssh:// engine that does not answer: one line for the operator, and nothing planned.
    (A RunError: Pulumi prints its message alone, without a traceback.)"""


def unreachable_reason(said: str) -> str:
    """What the operator should check, from what ssh or the host's Docker CLI said."""
    for signs, check in SSH_FAULTS:
        if any(sign.lower() in said.lower() for sign in signs):
            return check
    return "check that `ssh` with dockerSshOpts reaches the host and runs `docker version` there"


def check_reachable(engine: Engine, stack: str, key: str = f"{PROJECT}:dockerHost") -> None:
    """Raise EngineUnreachable unless `engine` (an ssh:// one) answers `docker version` through the
    same SSH the provider dials, without a prompt: the provider's own error for an unreachable host
    is a page from deep in its connection helper, after a wait per resource."""
    if not engine.over_ssh:
        return
    probe = Engine(engine.host, (*engine.ssh_opts, "-o", "BatchMode=yes"))
    try:
        answered = probe.run("version", "--format", "{{.Server.Version}}", timeout=90)
        said, code = answered.stderr.strip() or answered.stdout.strip(), answered.returncode
    except subprocess.TimeoutExpired:
        said, code = "ssh timed out after 90 s", 255
    if code == 0:
        return
    last = said.splitlines()[-1] if said else f"exit {code}"
    raise EngineUnreachable(
        f"stack {stack}: {key} {engine.host} cannot be reached: {unreachable_reason(said)} (ssh said: {last});"
        " nothing was changed"
    )
