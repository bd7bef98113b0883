"""Another application, run by configuration alone (tests/apps/ledger: its own modules, a migration
tool's command, another health path and port, no web app, no scheduler), deployed as prod through
the ingress on the real engine; a new release under the request loop; bad values refused."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.config import ConfigError
from proof.engine import UpFailed
from proof.harness.figures import report
from proof.harness.ledger import LEDGER_CONTRACT, LEDGER_DIR
from proof.harness.load import LoadLoop
from proof.harness.registry import local_registry, push
from proof.harness.stacks import Deployed, deploy, psql
from proof.harness.standins import Standins, build_image
from proof.provider import CONTAINER

pytestmark = pytest.mark.docker

LEDGER_REQUESTS = (("GET", "api", "/"), ("POST", "api", "/entries"), ("GET", "api", "/livez"))


def entry(worker: int, n: int) -> dict[str, object]:
    return {"memo": f"load {worker}-{n}", "cents": n}


@pytest.fixture(scope="module")
def ledger(standins: Standins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    source = tmp_path_factory.mktemp("ledger") / "ledger"
    shutil.copytree(LEDGER_DIR, source, ignore=shutil.ignore_patterns("__pycache__"))
    with deploy("prod", standins, **{**LEDGER_CONTRACT, "appDirectory": str(source)}) as deployed:
        deployed.app_dir = source  # edits go to the ledger's copy
        yield deployed


def version(deployed: Deployed) -> str:
    status, body = deployed.http("GET", "api", "/", timeout=10)
    assert status == 200, body
    answer = json.loads(body)
    assert answer["name"] == "ledger", answer
    return str(answer["version"])


def test_the_ledger_serves_through_the_ingress_from_its_contract(ledger: Deployed) -> None:
    containers = {r.name for r in ledger.engine.resources.values() if r.type == CONTAINER and "secret" not in r.name}
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


def test_a_new_release_rolls_out_under_load_with_no_failed_request(ledger: Deployed) -> None:
    before = psql(ledger, "SELECT count(*) FROM entries").strip()
    init = ledger.app_dir / "ledger" / "__init__.py"
    init.write_text(re.sub(r'VERSION = ".*"', 'VERSION = "2.0.0"', init.read_text()))
    with LoadLoop(ledger, requests=LEDGER_REQUESTS, body=entry) as loop:
        time.sleep(2)
        result = ledger.up()
        time.sleep(3)
        load = loop.report(min_rate=20)
    ops = result.ops()
    assert ops["api"] == "replace" and ops["migrate"] == "replace", result.preview()
    assert not any(s.delete_first for s in result.steps if s.name == "api"), "created before deleted"
    assert load.failed == [], f"{len(load.failed)} failed {load.failures_by_kind()}: {load.failed[:5]}"
    # Old and new both answer while the new is admitted and the old drains; the new one last.
    assert set(load.versions()) == {"1.0.0", "2.0.0"} and load.versions()[-1] == "2.0.0", load.versions()
    assert version(ledger) == "2.0.0"
    written = int(psql(ledger, "SELECT count(*) FROM entries").strip())
    assert written > int(before), "what was written before and during the rollout is kept"
    report(
        f"ledger (another application, configuration only) v1 -> v2 under load: {len(load.outcomes)} requests"
        f" at {load.rate:.0f}/s, {len(load.failed)} failed"
    )


@pytest.mark.parametrize(
    ("change", "key"),
    [({"apiHealthPath": "livez"}, "apiHealthPath"), ({"apiCommand": "[]"}, "apiCommand")],
)
def test_bad_contract_values_are_refused_before_anything_changes(
    ledger: Deployed, change: dict[str, str], key: str
) -> None:
    ids = {r.urn: r.id for r in ledger.engine.resources.values()}
    with pytest.raises(UpFailed) as failed:
        ledger.up(**change)
    assert isinstance(failed.value.__cause__, ConfigError), failed.value
    assert re.search(rf"stack 'prod'.*nothing was created:\n.*ichrisbirch:{key}:", str(failed.value.__cause__))
    assert failed.value.result.steps == [], "no step: refused before any resource was registered"
    assert {r.urn: r.id for r in ledger.engine.resources.values()} == ids, "nothing created, replaced or deleted"
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
    running = version(ledger)
    with local_registry() as registry:
        prebuilt = push("icb-ledger-ci:3.0.0", f"{registry}/ledger")
        with LoadLoop(ledger, requests=LEDGER_REQUESTS, body=entry) as loop:
            time.sleep(2)
            result = ledger.up(appImage=prebuilt)
            time.sleep(3)
            load = loop.report(min_rate=20)
    kinds = {(s.name, s.type.rsplit(":", 1)[-1]): s.op for s in result.steps}
    assert kinds[("app-image", "RemoteImage")] == "create" and kinds[("app-image", "Image")] == "delete", kinds
    assert result.ops()["api"] == "replace", result.preview()
    assert load.failed == [], f"{len(load.failed)} failed {load.failures_by_kind()}: {load.failed[:5]}"
    assert set(load.versions()) == {running, "3.0.0"} and load.versions()[-1] == "3.0.0", load.versions()
    assert str(ledger.run.outputs["image_digest"]) == prebuilt, "the digest it runs, as exported"
    # A later normal `up` (appImage unset) builds from the source again, as configured.
    result = ledger.up(appImage="")
    assert result.ops()["api"] == "replace" and version(ledger) == running
    report(
        f"ledger from a prebuilt image by digest under load: {len(load.outcomes)} requests, "
        f"{len(load.failed)} failed; back to building after"
    )
