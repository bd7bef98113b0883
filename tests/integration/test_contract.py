"""Another application, run by configuration alone (tests/apps/ledger: its own modules, a migration
tool's command, another health path and port, no web app, no scheduler), deployed as prod through
the ingress on the real engine; a new release under the request loop; bad values refused."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra import targets
from infra.releases import RELEASE_ENV, StackReleases
from proof.harness.certificates import ca_and_server
from proof.harness.cli import TEST_LABEL, docker, engine_host, until
from proof.harness.clients import exchange
from proof.harness.figures import report
from proof.harness.ledger import LEDGER_CONTRACT, LEDGER_DIR
from proof.harness.load import LoadLoop, under_load
from proof.harness.pulumi import RunFailed
from proof.harness.registry import local_registry, push
from proof.harness.run import claim_port
from proof.harness.stacks import Deployed, deploy, full, psql
from proof.harness.standins import Standins, build_image
from proof.resources import CONTAINER

pytestmark = pytest.mark.docker

LEDGER_REQUESTS = (("GET", "api", "/"), ("POST", "api", "/entries"), ("GET", "api", "/livez"))


def entry(worker: int, n: int) -> dict[str, object]:
    return {"memo": f"load {worker}-{n}", "cents": n}


@pytest.fixture(scope="module")
def ledger(standins: Standins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    source = tmp_path_factory.mktemp("ledger") / "ledger"
    shutil.copytree(LEDGER_DIR, source, ignore=shutil.ignore_patterns("__pycache__"))
    # A stack of its own name with the prod stack file: its containers, network and releases its own.
    with deploy("prod", standins, name="ledger", **{**LEDGER_CONTRACT, "appDirectory": str(source)}) as deployed:
        deployed.app_dir = source  # edits go to the ledger's copy
        yield deployed


def version(deployed: Deployed) -> str:
    status, body = deployed.http("GET", "api", "/", timeout=10)
    assert status == 200, body
    answer = json.loads(body)
    assert answer["name"] == "ledger", answer
    return str(answer["version"])


def test_the_ledger_serves_through_the_ingress_from_its_contract(ledger: Deployed) -> None:
    containers = {name for name in ledger.ids(CONTAINER) if "secret" not in name}
    assert {"api", "migrate", "postgres", "redis", "router", "ingress"} <= containers
    assert not {"app", "scheduler"} & containers, "the ledger has neither"
    assert version(ledger) == "1.0.0"
    status, body = ledger.http("POST", "api", "/entries", {"memo": "opening balance", "cents": 12_500})
    assert status == 201, body
    status, body = ledger.http("GET", "api", "/livez")
    assert status == 200 and json.loads(body)["status"] == "ok", body
    # Its own migration tool ran, to its head, before the api started.
    assert psql(ledger, "SELECT revision FROM schema_revisions ORDER BY 1").split() == ["0001", "0002"]
    # The app's host goes to the one service there is.
    status, body = ledger.http("GET", "app", "/")
    assert status == 200 and json.loads(body)["name"] == "ledger", body


def test_a_postgres_change_under_load_fails_none_of_the_ledgers_requests(ledger: Deployed) -> None:
    """The ledger keeps the contract of docs/operating.md ("While a dependency is away"): its health
    answers 503 while Postgres is away, and so does a request that wrote nothing; the router holds."""
    served = tuple(r for r in LEDGER_REQUESTS if r[2] != "/livez")  # health is answered at once: 503 meanwhile
    changed = under_load(
        LoadLoop(ledger, requests=served, body=entry), lambda: ledger.up(postgresParameters='["max_connections=120"]')
    )
    result, load = changed.result, changed.load
    assert result.ops()["postgres"] == "replace" and result.ops()["api"] == "same", result.preview()
    assert load.failed == [], f"{len(load.failed)} failed {load.failures_by_kind()}: {load.failed[:5]}"
    kept = set(psql(ledger, "SELECT memo FROM entries").splitlines())
    acknowledged, lost = load.unkept_writes(kept, "memo")
    assert acknowledged and not lost, f"lost: {lost[:5]}"
    report(
        f"ledger Postgres setting changed under load: 0 of {len(load.outcomes)} requests failed, the longest"
        f" waited {load.slowest():.1f} s; {acknowledged} acknowledged writes, all kept"
    )


def test_a_new_release_rolls_out_under_load_with_no_failed_request(ledger: Deployed) -> None:
    # (The release this one replaces stays on the engine under its own tag: the rollback's, below.)
    before = psql(ledger, "SELECT count(*) FROM entries").strip()
    init = ledger.app_dir / "ledger" / "__init__.py"
    init.write_text(re.sub(r'VERSION = ".*"', 'VERSION = "2.0.0"', init.read_text()))
    release = under_load(LoadLoop(ledger, requests=LEDGER_REQUESTS, body=entry), ledger.up)
    result, load = release.result, release.load
    ops = result.ops()
    assert ops["api"] == "replace" and ops["migrate"] == "replace", result.preview()
    assert not result.replaced_first_by_delete("api"), "created before deleted"
    assert load.failed == [], f"{len(load.failed)} failed {load.failures_by_kind()}: {load.failed[:5]}"
    # Old and new both answer while the new is admitted and the old drains; the new one last.
    assert set(load.versions()) == {"1.0.0", "2.0.0"} and load.versions()[-1] == "2.0.0", load.versions()
    assert load.switch_uncovered("1.0.0", "2.0.0") == []
    assert version(ledger) == "2.0.0"
    written = int(psql(ledger, "SELECT count(*) FROM entries").strip())
    assert written > int(before), "what was written before and during the rollout is kept"
    report(
        f"ledger (another application, configuration only) v1 -> v2 under load: {len(load.outcomes)} requests"
        f" at {load.rate:.0f}/s, {len(load.failed)} failed, longest without a successful answer"
        f" {load.longest_without_service():.1f} s"
    )


@pytest.mark.parametrize(
    ("change", "key"),
    [({"apiHealthPath": "livez"}, "apiHealthPath"), ({"apiCommand": "[]"}, "apiCommand")],
)
def test_bad_contract_values_are_refused_before_anything_changes(
    ledger: Deployed, change: dict[str, str], key: str
) -> None:
    ids = {r["urn"]: r.get("id") for r in ledger.project.resources()}
    before = {k: ledger.config[f"ichrisbirch:{k}"] for k in change}
    with pytest.raises(RunFailed) as failed:
        ledger.set(**change)
        ledger.up()
    ledger.set(**before)  # the refused value stays in the stack's config until it is put right
    error = failed.value.result.error
    assert "infra.config.ConfigError" in error, failed.value
    assert re.search(rf"stack 'ledger'.*nothing was created:\n.*ichrisbirch:{key}:", error), error
    assert failed.value.result.steps == [], "no step: refused before any resource was registered"
    assert {r["urn"]: r.get("id") for r in ledger.project.resources()} == ids, "nothing created, replaced or deleted"
    assert version(ledger) in ("1.0.0", "2.0.0"), "still serving"


def test_the_same_stack_runs_a_prebuilt_image_by_digest_and_builds_again_after(
    ledger: Deployed, standins: Standins, tmp_path: Path
) -> None:
    # CI's part: a checkout of its own at 3.0.0, built and pushed; the stack names what it pushed.
    checkout = tmp_path / "ci"
    shutil.copytree(ledger.app_dir, checkout, ignore=shutil.ignore_patterns("__pycache__"))
    init = checkout / "ledger" / "__init__.py"
    init.write_text(re.sub(r'VERSION = ".*"', 'VERSION = "3.0.0"', init.read_text()))
    build_image(checkout, "production", "icb-ledger-ci:3.0.0", standins.python)
    built = docker("image", "inspect", "-f", "{{.Id}}", "icb-ledger-ci:3.0.0").stdout.strip()
    running = version(ledger)
    with local_registry() as registry:
        prebuilt = push("icb-ledger-ci:3.0.0", f"{registry}/ledger")
        release = under_load(
            LoadLoop(ledger, requests=LEDGER_REQUESTS, body=entry), lambda: ledger.up(appImage=prebuilt)
        )
    result, load = release.result, release.load
    kinds = {(s.name, s.type.rsplit(":", 1)[-1]): s.op for s in result.steps}
    assert kinds[("app-image", "RemoteImage")] == "create" and kinds[("app-image", "Image")] == "delete", kinds
    assert result.ops()["api"] == "replace", result.preview()
    assert load.failed == [], f"{len(load.failed)} failed {load.failures_by_kind()}: {load.failed[:5]}"
    assert set(load.versions()) == {running, "3.0.0"} and load.versions()[-1] == "3.0.0", load.versions()
    assert load.switch_uncovered(running, "3.0.0") == []
    # Exported: the engine's record of it, by the digest CI pushed (the provider takes the first of
    # the image's repo digests that starts like the name, so the registry's address may differ).
    assert str(ledger.outputs["image_digest"]).endswith(prebuilt.split("@", 1)[1]), ledger.outputs
    # A later normal `up` (appImage unset) builds from the source again, as configured.
    result = ledger.up(appImage="")
    assert result.ops()["api"] == "replace" and version(ledger) == running
    docker("rmi", "-f", built)  # CI's build, under its tag and the registry's digest: nothing runs it now
    report(
        f"ledger from a prebuilt image by digest under load: {len(load.outcomes)} requests, "
        f"{len(load.failed)} failed; back to building after"
    )


def test_a_rollback_puts_the_previous_release_back_under_load_and_keeps_the_data(
    ledger: Deployed, monkeypatch: pytest.MonkeyPatch
) -> None:
    releases = StackReleases.of("ledger", engine_host())
    listed = releases.releases()
    assert [r.running for r in listed].count(True) == 1 and listed[0].running, [r.line() for r in listed]
    running, previous = listed[0], releases.previous()
    assert version(ledger) == "2.0.0" and previous.tag != running.tag
    status, body = ledger.http("POST", "api", "/entries", {"memo": "written by 2.0.0", "cents": 1})
    assert status == 201, body
    # A change of the router's setting, pending in the stack file: the rollback must not take it out.
    ledger.set(requestBodyLimitKb="2048")
    try:
        monkeypatch.setenv(RELEASE_ENV, previous.tag)  # what scripts/rollback gives its `pulumi up` ...
        rollback = under_load(
            LoadLoop(ledger, requests=LEDGER_REQUESTS, body=entry),
            lambda: ledger.project.up(target=targets.release()),  # ... with the targets it passes
        )
        result, load = rollback.result, rollback.load
        pending = ledger.project.preview()  # with the release still requested: the router alone differs
        monkeypatch.delenv(RELEASE_ENV)
    finally:
        ledger.project.remove_config(full("requestBodyLimitKb"))
        ledger.config.pop(full("requestBodyLimitKb"))
    assert result.ops().get("router", "same") == "same", result.preview()
    assert pending.touched("replace") == {"router", "router-haproxy-cfg"}, pending.preview()
    assert result.ops()["api"] == "replace" and not result.replaced_first_by_delete("api"), result.preview()
    assert result.ops()["migrate"] == "same", "a rollback runs no migration: the schema is at the newest head"
    assert not result.built(), "nothing built: the release was on the engine"
    assert load.failed == [], f"{len(load.failed)} failed {load.failures_by_kind()}: {load.failed[:5]}"
    assert load.versions()[-1] == "1.0.0" and version(ledger) == "1.0.0", load.versions()
    assert load.switch_uncovered("2.0.0", "1.0.0") == []
    assert "written by 2.0.0" in psql(ledger, "SELECT memo FROM entries"), "the data written since are kept"
    assert [r.tag for r in releases.releases() if r.running] == [previous.tag]
    # A later normal `up` builds the source again, as configured: the release rolled back from.
    forward = ledger.up()
    # Back to the release whose migrations migrate last ran: nothing to run again.
    assert forward.ops()["migrate"] == "same" and forward.ops()["api"] == "replace", forward.preview()
    assert version(ledger) == "2.0.0" and [r.tag for r in releases.releases() if r.running] == [running.tag]
    # Keep one: the older release's tag goes, never the running one's.
    pruned = dataclasses.replace(releases, keep=1).prune()
    assert previous.tag in pruned and running.tag not in pruned
    with pytest.raises(LookupError, match="no release of the ledger stack before the running one"):
        releases.previous()
    report(
        f"ledger rollback 2.0.0 -> 1.0.0 under load: {len(load.outcomes)} requests, {len(load.failed)} failed;"
        f" the `up` took {rollback.took:.1f} s, nothing built"
    )


FRONT_CONFIG = """global
    log stdout format raw local0
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
resolvers docker
    nameserver dns 127.0.0.11:53
    hold valid 1s
frontend tls
    bind :8443 ssl crt /front/front.pem
    http-request set-header X-Forwarded-Proto https
    option forwardfor
    default_backend stack
backend stack
    server-template ingress 1 ingress:8080 check resolvers docker init-addr none
"""


@pytest.fixture
def proxy_in_front(ledger: Deployed, standins: Standins, tmp_path: Path) -> Iterator[tuple[str, int, str]]:
    """A stand-in for the tunnel or proxy a user runs in front of the stack: HAProxy on the stack's
    network, ending TLS with a certificate of its own and passing requests to the ingress's plain
    HTTP with X-Forwarded-For and -Proto. (its address, its published HTTPS port, its CA)"""
    ca, bundle = ca_and_server([str(ledger.host("app")), str(ledger.host("api"))], name="front")
    folder = tmp_path / "front"
    folder.mkdir()
    (folder / "haproxy.cfg").write_text(FRONT_CONFIG)
    (folder / "front.pem").write_text(bundle)
    for path in (folder, *folder.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    port = claim_port()
    name = f"icb-front-{port}"
    network = str(ledger.outputs["network"])
    docker(
        "run", "-d", "--name", name, "--label", TEST_LABEL, "--network", network,
        "-p", f"127.0.0.1:{port}:8443", "-v", f"{folder}:/front:ro",
        standins.haproxy, "haproxy", "-W", "-db", "-f", "/front/haproxy.cfg",
    )  # fmt: skip
    try:
        address = docker("inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}', name)
        yield address.stdout.strip(), port, ca
    finally:
        docker("rm", "-f", name, check=False)


def test_tls_ended_in_front_plain_http_served_and_forwarded_headers_trusted_from_it_only(
    ledger: Deployed, proxy_in_front: tuple[str, int, str]
) -> None:
    address, front_port, front_ca = proxy_in_front
    result = ledger.up(tlsTermination="front", frontProxies=json.dumps([address]))
    assert result.ops()["router"] == "replace", result.preview()
    host = str(ledger.host("api"))
    claimed = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}

    def whoami(port: int, ca: str | None) -> tuple[dict[str, object], dict[str, str]]:
        def answered() -> tuple[dict[str, object], dict[str, str]] | None:
            try:
                status, headers, body = exchange(port, host, "/whoami", claimed, ca)
            except OSError:
                return None
            return (json.loads(body), headers) if status == 200 else None

        return until(answered, 60, f"/whoami through port {port}")

    # Through the proxy in front: what it passed on is believed, over HTTPS it ended.
    seen, headers = whoami(front_port, front_ca)
    forwarded = seen["forwarded"]
    assert isinstance(forwarded, dict) and "203.0.113.9" in str(forwarded["for"]) and forwarded["proto"] == "https"
    assert headers["strict-transport-security"].startswith("max-age=") and headers["x-frame-options"] == "DENY"
    # Straight to the ingress's plain HTTP: the same claims are dropped, the scheme is http.
    seen, headers = whoami(ledger.ports["ingress"], None)
    forwarded = seen["forwarded"]
    assert isinstance(forwarded, dict) and "203.0.113.9" not in str(forwarded["for"]), forwarded
    assert forwarded["proto"] == "http" and forwarded["for"], forwarded
    assert headers["x-content-type-options"] == "nosniff", "the security headers stay on plain HTTP"
    # Plain HTTP on the bind address only: the HTTPS port is no longer published.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", ledger.ports["ingress_https"]), timeout=3).close()
    published = docker("port", ledger.container("ingress")).stdout
    assert published.strip().splitlines() == [f"8080/tcp -> 127.0.0.1:{ledger.ports['ingress']}"], published
    report(f"TLS ended in front: served via a stand-in proxy ({address}); its X-Forwarded-* kept, a client's dropped")
