"""The application's contract as configuration: another application (tests/apps/ledger) run by
config alone, today's values as the defaults, and bad values refused before anything is created."""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.config import ConfigError
from infra.identity import PROJECT_DIR
from infra.spec import http_probe
from proof.harness.ledger import LEDGER_CONTRACT, LEDGER_DIR
from proof.mocks import Run
from proof.resources import IMAGE, PROVIDER, REMOTE_IMAGE, SERVICE, reveal
from tests.conftest import RunStack
from tests.unit.registrations import config_of, containers, env_of, is_secret
from tests.unit.test_swarm import SWARM


@pytest.fixture
def ledger(run_stack: RunStack) -> Run:
    return run_stack("prod", **LEDGER_CONTRACT)


def test_the_ledger_runs_from_configuration_with_only_the_services_it_has(ledger: Run) -> None:
    run = containers(ledger)
    assert set(run) == {"postgres", "redis", "migrate", "api", "backup", "router", "ingress"}, "no app, no scheduler"
    api = run["api"].inputs
    assert api["command"] == json.loads(LEDGER_CONTRACT["apiCommand"])
    assert run["migrate"].inputs["command"] == ["python", "-m", "ledger.schema", "upgrade", "head"]
    # No health command: Docker probes the health path over HTTP, with whichever client the image has.
    assert api["healthcheck"]["tests"] == ["CMD-SHELL", http_probe("http://127.0.0.1:9000/livez")]
    assert env_of(run["api"])["POSTGRES_HOST"] == "postgres" and "POSTGRES_PASSWORD_FILE" in env_of(run["api"])
    # The router checks and balances the api on its port and path; every host goes to it.
    router = config_of(ledger, "router")
    assert "server-template api 6 api:9000 check" in router and "option httpchk GET /livez" in router
    assert "backend app" not in router and "default_backend api" in router
    image = ledger.named("docker:index/image:Image", "app-image").inputs
    assert image["build"]["context"] == "tests/apps/ledger" and image["build"]["target"] == "production"
    # Without migrations and a web app, what waited for them waits for what there is.
    backup = [d.rsplit("::", 1)[-1] for d in run["backup"].dependencies if "Container::" in d]
    assert "migrate" in backup


def test_without_migrations_nothing_waits_for_them(run_stack: RunStack) -> None:
    run = containers(run_stack("prod", **{**LEDGER_CONTRACT, "migrationCommand": "[]"}))
    assert "migrate" not in run
    for name, container in run.items():
        assert not any(d.endswith("::migrate") for d in container.dependencies), name
    swarm = run_stack("prod", **{**LEDGER_CONTRACT, "migrationCommand": "[]"}, **SWARM).of_type(SERVICE)
    api = reveal(swarm["api"].inputs["taskSpec"])["containerSpec"]["args"]
    assert api == json.loads(LEDGER_CONTRACT["apiCommand"]), "no migration before serving on swarm either"


def test_the_shipped_apps_contract_is_the_default(run_stack: RunStack) -> None:
    run = containers(run_stack("prod"))
    assert run["api"].inputs["healthcheck"]["tests"] == ["CMD", "python", "-m", "ichrisbirch.healthcheck", "api"]
    assert run["scheduler"].inputs["command"] == ["python", "-m", "ichrisbirch.wsgi_scheduler"]
    assert run["migrate"].inputs["command"] == ["python", "-m", "ichrisbirch.migrate"]
    assert run["api"].inputs["command"][:2] == ["gunicorn", "ichrisbirch.wsgi_api:api"]


@pytest.fixture
def server() -> Iterator[str]:
    """A local HTTP server: /ok answers 200, anything else 404."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            self.send_response(200 if self.path == "/ok" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _probe(url: str, bin_dir: Path) -> int:
    # Only what is in bin_dir: the probe finds its client with `command -v`, as in an image.
    return subprocess.run(["/bin/sh", "-c", http_probe(url)], env={"PATH": str(bin_dir)}, check=False).returncode


def test_the_http_probe_passes_on_200_and_fails_otherwise_with_python3_alone(server: str, tmp_path: Path) -> None:
    (tmp_path / "python3").symlink_to(sys.executable)
    assert _probe(f"{server}/ok", tmp_path) == 0
    assert _probe(f"{server}/missing", tmp_path) != 0, "a 404 is unhealthy"
    assert _probe("http://127.0.0.1:9/ok", tmp_path) != 0, "nothing listening is unhealthy"


@pytest.mark.parametrize("client", ["wget", "curl"])
def test_the_http_probe_prefers_the_images_own_client(client: str, server: str, tmp_path: Path) -> None:
    (tmp_path / "python3").symlink_to(sys.executable)
    called = tmp_path / "called"
    (tmp_path / client).write_text(f'#!/bin/sh\necho "$@" >{called}\nexit 0\n')
    (tmp_path / client).chmod(0o755)
    assert _probe(f"{server}/missing", tmp_path) == 0, f"{client} answered, not python3"
    assert f"{server}/missing" in called.read_text()


BAD = [
    ({"apiHealthPath": "livez"}, "apiHealthPath", "should match pattern"),
    ({"apiContainerPort": "70000"}, "apiContainerPort", "less than or equal to 65535"),
    ({"apiCommand": "gunicorn ledger"}, "apiCommand", "must be a JSON list"),
    ({"apiCommand": '["gunicorn", ""]'}, "apiCommand", "at least 1 character"),
    ({"schedulerEnabled": "true", "schedulerCommand": "[]"}, "schedulerCommand", "required while"),
    ({"apiCommand": "[]"}, "apiCommand", "is required for the application in tests/apps/ledger"),
    ({"appEnabled": "maybe"}, "appEnabled", "valid boolean"),
]


@pytest.mark.parametrize(("change", "key", "message"), BAD, ids=[b[1] + ":" + b[2][:12] for b in BAD])
def test_bad_contract_values_are_refused_naming_the_key_and_the_stack(
    run_stack: RunStack, change: dict[str, str], key: str, message: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        run_stack("prod", **{**LEDGER_CONTRACT, **change})
    text = str(refused.value)
    assert "stack 'prod'" in text and "nothing was created" in text, text
    assert re.search(rf"ichrisbirch:{key}: .*{re.escape(message)}", text), text


def test_the_ledgers_pins_are_the_shipped_apps() -> None:
    def pins(path: str) -> dict[str, str]:
        text = (PROJECT_DIR / path).read_text()
        return dict(re.findall(r"^([a-z0-9-]+==\S+)[^\n]*((?:\n +--hash=\S+(?: \\)?)+)", text, re.M))

    ledger = pins(str((LEDGER_DIR / "requirements.txt").relative_to(PROJECT_DIR)))
    shipped = pins("app/requirements.txt")
    assert len(ledger) == 5 and all("--hash=sha256:" in hashes for hashes in ledger.values())
    assert all(shipped.get(name) == hashes for name, hashes in ledger.items()), "same versions, same hashes"


# --- a prebuilt image ------------------------------------------------------------------------------

DIGEST = "sha256:" + "ab" * 32
PREBUILT = f"registry.example.com/team/ledger@{DIGEST}"


def test_a_prebuilt_image_by_digest_is_pulled_and_run_instead_of_a_build(run_stack: RunStack) -> None:
    run = run_stack("prod", **LEDGER_CONTRACT, appImage=PREBUILT)
    assert not run.of_type(IMAGE), "nothing is built"
    pulled = run.named(REMOTE_IMAGE, "app-image")
    assert pulled.inputs["name"] == PREBUILT and pulled.inputs["keepLocally"] is True
    # Containers run it by the engine's image id, as every pulled image.
    image_id = run.outputs["image_digest"]
    assert image_id and containers(run)["api"].inputs["image"] != PREBUILT
    assert {containers(run)[n].inputs["image"] for n in ("api", "migrate")} == {containers(run)["api"].inputs["image"]}


def test_on_swarm_every_node_pulls_the_prebuilt_image_by_its_digest(run_stack: RunStack) -> None:
    overrides = {**SWARM, "imageRegistry": "", "appImage": PREBUILT}
    run = run_stack("prod", **overrides)
    api = reveal(run.of_type(SERVICE)["api"].inputs["taskSpec"])["containerSpec"]
    assert api["image"].endswith(DIGEST) and not run.of_type(IMAGE)


def test_the_pull_logs_in_with_the_registry_credentials_as_a_secret(run_stack: RunStack) -> None:
    run = run_stack("prod", appImage=PREBUILT, registryUsername="ci", secrets={"registryPassword": "pull-secret-1b2c"})
    provider = run.named(PROVIDER, "docker").inputs
    # A provider's inputs reach it as JSON text; these, with the password, as one secret.
    assert is_secret(provider["registryAuth"]), "the password stays a secret in state and plans"
    (auth,) = json.loads(reveal(provider["registryAuth"]))
    assert auth["address"] == "registry.example.com" and auth["username"] == "ci"
    assert auth["password"] == "pull-secret-1b2c"


@pytest.mark.parametrize(
    ("stack", "reference", "message"),
    [
        ("prod", "registry.example.com/team/ledger:1.2.0", "must be pinned by digest in prod"),
        ("prod", "registry.example.com/team/ledger:latest", "is not pinned"),
        ("dev", "registry.example.com/team/ledger", "is not pinned"),
    ],
)
def test_an_unpinned_prebuilt_image_is_refused(run_stack: RunStack, stack: str, reference: str, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"stack '{stack}'(.|\n)*ichrisbirch:appImage: .*{message}"):
        run_stack(stack, appImage=reference)


def test_a_tagged_prebuilt_image_runs_outside_prod(run_stack: RunStack) -> None:
    run = run_stack("dev", appImage="registry.example.com/team/ledger:1.2.0")
    assert run.named(REMOTE_IMAGE, "app-image").inputs["name"] == "registry.example.com/team/ledger:1.2.0"


def test_another_application_in_dev_and_test(run_stack: RunStack) -> None:
    dev = containers(run_stack("dev", **LEDGER_CONTRACT))
    assert not any(v.get("hostPath") for v in dev["api"].inputs.get("volumes") or []), "hot reload is the shipped app's"
    suite = ["python", "-m", "ledger.selftest"]
    test = run_stack("test", **LEDGER_CONTRACT, testCommand=json.dumps(suite))
    assert containers(test)["tests"].inputs["command"] == suite
    after = {d.rsplit("::", 1)[-1] for d in containers(test)["tests"].dependencies}
    assert {"api", "ingress"} <= after and not {"app", "scheduler"} & after, "after what the ledger runs"
    without = run_stack("test", **LEDGER_CONTRACT, testCommand="[]")
    assert "tests" not in containers(without) and "tests_exit_code" not in without.outputs
