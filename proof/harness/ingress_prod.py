"""prod deployed on engines other than this machine's (the test swarm, the remote host over SSH),
reached as a client outside reaches it: through its ingress on an address of theirs, port 443. What
the swarm and the remote harnesses share, and what day2's helpers and the request loop need."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from infra.ingress import HostNames
from proof.harness.clients import KeepAlive, https_to, keepalive_https
from proof.harness.pulumi import ProjectStack, RunResult
from proof.harness.stacks import full


def host_name(service: str) -> str:
    """The name the ingress routes `service` by (the stack's domain is localhost here)."""
    return HostNames.of("localhost").of_service(service)


@dataclass
class IngressProd:
    """The deployed stack and the address its ingress answers on."""

    project: ProjectStack
    first: RunResult
    config: dict[str, str]
    secret_keys: set[str]
    app_dir: Path
    first_up_seconds: float
    ingress_address: str

    @property
    def ca(self) -> str:
        return str(self.first.outputs["ingress_ca_certificate"])

    def up(self, **overrides: str) -> RunResult:
        values = {full(key): value for key, value in overrides.items()}
        self.project.set_config(values, self.secret_keys)
        self.config.update(values)
        return self.project.up()

    def http(
        self, method: str, service: str, path: str = "", body: dict[str, object] | None = None, timeout: float = 5
    ) -> tuple[int, str]:
        return https_to(self.ingress_address, 443, method, path or "/", host_name(service), self.ca, body, timeout)

    def keepalive(self) -> KeepAlive:
        return keepalive_https(self.ingress_address, 443, self.ca, host_name)
