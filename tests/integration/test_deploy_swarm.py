"""Prod with `orchestrator: swarm`, deployed through the test engine on the three-node test swarm
(tests/swarm/up.sh): the image built and pushed by the manager's engine, Swarm secrets and configs,
services converged and spread over the nodes, requests through the ingress on the manager."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import TEST_SECRETS, committed_config
from tests.integration import day2
from tests.integration.conftest import DOCKER, Standins, copy_app, docker, report
from tests.integration.deployer import DockerEngine, UpFailed, UpResult

pytestmark = pytest.mark.docker
SWARM = Path(__file__).resolve().parent.parent / "swarm"


def on(host: str, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return docker("-H", host, *args, **kwargs)  # type: ignore[arg-type]


def to_registry(manager: str, registry: str, image: str) -> str:
    """The stand-in `image`, loaded into the manager's engine and pushed to the swarm's registry."""
    save = subprocess.Popen([DOCKER, "save", image], stdout=subprocess.PIPE)
    on(manager, "load", stdin=save.stdout)
    save.wait()
    pushed = f"{registry}/{image}"
    on(manager, "tag", image, pushed)
    on(manager, "push", pushed)
    return pushed


@dataclass
class SwarmProd:
    """The deployed swarm stack, reachable like a deployed one-engine stack (for day2's helpers)."""

    engine: DockerEngine
    first: UpResult
    config: dict[str, str]
    secret_keys: set[str]
    manager: str
    addresses: list[str]
    app_dir: Path

    @property
    def ca(self) -> str:
        assert self.first.run is not None
        return str(self.first.run.outputs["ingress_ca_certificate"])

    def up(self, **overrides: str) -> UpResult:
        self.config.update({f"ichrisbirch:{key}": value for key, value in overrides.items()})
        return self.engine.up("prod", self.config, self.secret_keys)

    def http(
        self, method: str, service: str, path: str = "", body: dict[str, object] | None = None, timeout: float = 5
    ) -> tuple[int, str]:
        """Through the ingress on the manager's address, as a client outside would."""
        host = "localhost" if service == "app" else f"{service}.localhost"
        return https(method, self.addresses[0], host, path or "/", self.ca, body, timeout)


@pytest.fixture(scope="module")
def swarm_prod(standins: Standins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwarmProd]:
    up = subprocess.run(["bash", str(SWARM / "up.sh")], capture_output=True, text=True, timeout=300, check=False)
    assert up.returncode == 0, up.stdout + up.stderr
    env = dict(line.split("=", 1) for line in up.stdout.splitlines() if line.startswith("ICB_SWARM_"))
    manager, registry = env["ICB_SWARM_MANAGER"], env["ICB_SWARM_REGISTRY"]
    try:
        # The base image the manager builds on, and the images every node pulls from the registry.
        to_registry(manager, registry, standins.python)
        workspace = tmp_path_factory.mktemp("swarm")
        config, secret_keys = committed_config(
            "prod",
            {
                "orchestrator": "swarm",
                "dockerHost": manager,
                "imageRegistry": f"{registry}/icb",
                "pythonBaseImage": standins.python,
                "postgresImage": to_registry(manager, registry, standins.postgres),
                "redisImage": to_registry(manager, registry, standins.redis),
                "haproxyImage": to_registry(manager, registry, standins.haproxy),
                "appDirectory": str(copy_app(workspace / "app")),
                "waitTimeoutSeconds": "150",
            },
        )
        engine = DockerEngine(workspace / "state.json")
        started = time.monotonic()
        first = engine.up("prod", config, secret_keys)
        report(f"swarm prod: first `up` converged in {time.monotonic() - started:.1f} s")
        addresses = env["ICB_SWARM_ADDRESSES"].split(",")
        yield SwarmProd(
            engine, first, config, secret_keys, manager, addresses, Path(config["ichrisbirch:appDirectory"])
        )
    finally:
        subprocess.run(["bash", str(SWARM / "down.sh")], capture_output=True, text=True, timeout=300, check=False)


def https(
    method: str, address: str, host: str, path: str, ca: str, body: dict[str, object] | None = None, timeout: float = 10
) -> tuple[int, str]:
    """One request to the ingress's host-mode port 443 on `address`, verifying `host`'s certificate."""
    context = ssl.create_default_context(cadata=ca)
    payload = json.dumps(body).encode() if body is not None else b""
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {len(payload)}\r\n"
    head += "Content-Type: application/json\r\n" if body is not None else ""
    raw = socket.create_connection((address, 443), timeout=timeout)
    with context.wrap_socket(raw, server_hostname=host) as tls:
        tls.sendall(head.encode() + b"\r\n" + payload)
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    status_line, _, rest = data.decode(errors="replace").partition("\r\n")
    return int(status_line.split()[1]), rest.partition("\r\n\r\n")[2]


def nodes_of(prod: SwarmProd, service: str) -> list[str]:
    listed = on(prod.manager, "service", "ps", f"icb-prod-{service}", "--filter", "desired-state=running",
                "--format", "{{.Node}}")  # fmt: skip
    return listed.stdout.split()


def test_prod_converges_spread_over_the_nodes_and_serves_through_the_ingress(swarm_prod: SwarmProd) -> None:
    prod = swarm_prod
    listed = on(prod.manager, "service", "ls", "--format", "{{.Name}} {{.Replicas}}").stdout.splitlines()
    assert dict(line.split(" ", 1) for line in listed) == {
        "icb-prod-postgres": "1/1", "icb-prod-redis": "1/1", "icb-prod-api": "2/2", "icb-prod-app": "2/2",
        "icb-prod-scheduler": "1/1", "icb-prod-router": "1/1", "icb-prod-ingress": "1/1",
    }  # fmt: skip
    assert len(set(nodes_of(prod, "api"))) == 2, "the two api tasks on two nodes"
    assert nodes_of(prod, "postgres") == nodes_of(prod, "redis") == ["icb-worker1"], "on the data node"
    assert nodes_of(prod, "ingress") == ["icb-manager"]
    status, body = prod.http("GET", "api", "/health")
    assert status == 200 and json.loads(body)["status"] == "ok", body
    status, page = prod.http("GET", "app", "/")
    assert status == 200 and "<html" in page.lower()


def test_no_secret_value_in_any_service_task_or_container(swarm_prod: SwarmProd) -> None:
    prod = swarm_prod
    seen = []
    services = on(prod.manager, "service", "ls", "-q").stdout.split()
    seen.append(on(prod.manager, "service", "inspect", *services).stdout)
    tasks = on(prod.manager, "service", "ps", "-q", *services).stdout.split()
    seen.append(on(prod.manager, "inspect", *tasks).stdout)
    for node in ("icb-manager", "icb-worker1", "icb-worker2"):
        host = f"unix:///tmp/icb-swarm/{node}/docker.sock"
        containers = on(host, "ps", "-q").stdout.split()
        assert containers, f"no task runs on {node}"
        seen.append(on(host, "inspect", *containers).stdout)
    text = "\n".join(seen)
    for name, value in TEST_SECRETS.items():
        assert value not in text, f"{name}'s value appears in docker inspect"
    assert "POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password" in text


def test_a_second_up_with_nothing_changed_touches_nothing(swarm_prod: SwarmProd) -> None:
    prod = swarm_prod
    versions = on(prod.manager, "service", "inspect", "-f", "{{.ID}} {{.Version.Index}}",
                  *on(prod.manager, "service", "ls", "-q").stdout.split()).stdout  # fmt: skip
    result = prod.engine.up("prod", prod.config, prod.secret_keys)
    assert set(result.ops().values()) == {"same"}, result.preview()
    after = on(prod.manager, "service", "inspect", "-f", "{{.ID}} {{.Version.Index}}",
               *on(prod.manager, "service", "ls", "-q").stdout.split()).stdout  # fmt: skip
    assert after == versions, "no service was updated"


def test_a_rolling_update_under_load_fails_no_request(swarm_prod: SwarmProd) -> None:
    prod = swarm_prod
    v1 = day2.api_version(prod)  # type: ignore[arg-type]
    with day2.LoadLoop(prod, max_seconds=600) as loop:  # type: ignore[arg-type]
        time.sleep(2)
        v2 = day2.bump_version(prod)  # type: ignore[arg-type]
        began = time.monotonic()
        result = prod.up()
        took = time.monotonic() - began
        time.sleep(3)
        load = loop.report()
    ops = result.ops()
    assert ops["app-image"] == "update" and ops["api"] == ops["app"] == ops["scheduler"] == "update", result.preview()
    assert load.failed == [], f"{len(load.failed)} failed: {load.failed[:5]}"
    assert set(load.versions()) <= {v1, v2} and load.versions()[-1] == v2, load.versions()
    assert len(set(nodes_of(prod, "api"))) == 2
    report(
        f"swarm rolling update v1 -> v2 under load: {len(load.outcomes)} requests at {load.rate:.0f}/s, "
        f"{len(load.failed)} failed, longest without a successful answer {load.longest_without_service():.1f} s; "
        f"the `up` took {took:.1f} s"
    )


def test_a_version_whose_health_check_fails_rolls_back_by_itself(swarm_prod: SwarmProd) -> None:
    # Last: it leaves the state with the failed spec recorded, as the provider does.
    prod = swarm_prod
    serving = day2.api_version(prod)  # type: ignore[arg-type]
    image_before = on(prod.manager, "service", "inspect", "-f", "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
                      "icb-prod-api").stdout.strip()  # fmt: skip
    day2.edit_source(
        prod,  # type: ignore[arg-type]
        "ichrisbirch/wsgi_api.py",
        lambda t: t.replace("status_code=503 if down else 200", "status_code=500"),
    )
    with day2.LoadLoop(prod, max_seconds=600) as loop:  # type: ignore[arg-type]
        with pytest.raises(UpFailed) as failed:
            prod.up()
        time.sleep(2)
        load = loop.report()
    message = str(failed.value.__cause__)
    assert "icb-prod-api" in message and "rolled back" in message, message
    assert load.failed == [], f"{len(load.failed)} failed: {load.failed[:5]}"
    assert set(load.versions()) == {serving}, "only the old version answered"
    image_after = on(prod.manager, "service", "inspect", "-f", "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
                     "icb-prod-api").stdout.strip()  # fmt: skip
    assert image_after == image_before, "the swarm rolled the service back to the old image"
    report(f"swarm update to a never-healthy api: rolled back by itself, {len(load.outcomes)} requests, 0 failed")
