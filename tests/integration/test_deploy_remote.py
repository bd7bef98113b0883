"""prod on another machine, over SSH, as a team runs it against its server: the test run's own host
(tests/remote/up.sh: Debian 13 with its Docker 26 and OpenSSH, in network and mount namespaces of
its own), reached only through `dockerHost: ssh://deploy@<address>` with `dockerSshOpts` naming the
run's key and its pinned known_hosts. The image is built by the host's engine from a context sent
over SSH; the ingress answers over TLS on the host's address; what runs is read through the same SSH."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from proof.harness.figures import report
from proof.harness.load import LoadLoop
from proof.harness.remote import RemoteProd, remote_prod
from proof.harness.stacks import api_version, bump_version
from proof.harness.standins import Standins

pytestmark = pytest.mark.docker
LONG_RUNNING = ("postgres", "redis", "api", "app", "scheduler", "router", "ingress", "backup")


@pytest.fixture(scope="module")
def prod(standins: Standins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RemoteProd]:
    with remote_prod(standins, tmp_path_factory.mktemp("remote")) as deployed:
        report(f"remote prod over ssh://: first `up` {deployed.first_up_seconds:.1f} s, "
               f"building {deployed.first.build_seconds():.1f} s of it")  # fmt: skip
        yield deployed


def test_prod_runs_on_the_remote_docker_26_as_declared_and_answers_on_its_address(prod: RemoteProd) -> None:
    version = prod.host.ssh("docker", "version", "-f", "{{.Server.Version}}").stdout.strip()
    assert int(version.split(".")[0]) >= 26, version
    names: dict[str, str] = prod.first.outputs["containers"]
    for service in LONG_RUNNING:
        state = prod.host.inspect(names[service])["State"]
        assert isinstance(state, dict) and state["Running"], (service, state)
        assert state.get("Health", {}).get("Status") == "healthy", (service, state.get("Health"))
    assert prod.host.inspect(names["migrate"])["State"]["ExitCode"] == 0  # type: ignore[index]
    api = prod.host.inspect(names["api"])
    assert api["Config"]["User"] == "10001:10001" and api["HostConfig"]["ReadonlyRootfs"] is True  # type: ignore[index]
    ingress = prod.host.inspect(names["ingress"])["HostConfig"]["PortBindings"]  # type: ignore[index]
    assert {b["HostIp"] for bindings in ingress.values() for b in bindings} == {prod.host.address}, ingress
    status, body = prod.http("GET", "api", "/health")
    assert status == 200 and json.loads(body)["status"] == "ok", body
    status, _ = prod.http("GET", "app", "/")
    assert status == 200


def test_a_second_up_over_ssh_touches_nothing(prod: RemoteProd) -> None:
    again = prod.up()
    assert set(again.ops().values()) == {"same"}, again.preview()


def test_v1_to_v2_over_ssh_under_load_fails_no_request(prod: RemoteProd) -> None:
    v1 = api_version(prod)
    with LoadLoop(prod, max_seconds=600) as loop:
        time.sleep(2)
        v2 = bump_version(prod)
        began = time.monotonic()
        result = prod.up()
        took = time.monotonic() - began
        time.sleep(3)
        load = loop.report()
    assert result.built() and result.touched("replace") >= {"api", "app", "scheduler"}, result.preview()
    assert load.failed == [], f"{len(load.failed)} failed {load.failures_by_kind()}: {load.failed[:5]}"
    assert set(load.versions()) <= {v1, v2} and load.versions()[-1] == v2, load.versions()
    assert load.switch_uncovered(v1, v2) == []
    report(
        f"remote prod v1 -> v2 over ssh:// under load: {len(load.outcomes)} requests, {len(load.failed)} failed, "
        f"longest without a successful answer {load.longest_without_service():.1f} s; the `up` took {took:.1f} s"
    )
