"""The README's first command, `scripts/deploy dev`, as a new user runs it on a machine like this one
(no image can be pulled: `--standins`; Pulumi's plugins from ICB_PLUGINS_FROM where it is set, as
on CI): in a copy of the checkout, with a home and a state backend of its own. Deploys, serves, leaves the stack file
holding only encrypted secrets, and a second run changes nothing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from infra.identity import PROJECT_DIR
from proof.harness.cli import engine_host, remove_objects
from proof.harness.clients import http
from proof.harness.figures import report
from proof.harness.run import claim_port
from proof.harness.stacks import left_on_engine, remove_releases

pytestmark = pytest.mark.docker
# Made by scripts/setup, or shared with the checkout's: the policy pack's and the scanners' environments.
NOT_COPIED = (".git", ".venv", ".venv-tools", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache")


@pytest.fixture(scope="module")
def checkout(engine: None) -> Iterator[Path]:
    workspace = Path(tempfile.mkdtemp(prefix="icb-deploy-script-"))
    workspace.chmod(0o755)  # dev bind-mounts the checkout's source into containers running as 10001
    project = workspace / "checkout"
    shutil.copytree(PROJECT_DIR, project, symlinks=True, ignore=shutil.ignore_patterns(*NOT_COPIED))
    shutil.rmtree(project / "policy" / ".venv", ignore_errors=True)
    for shared in (".venv-tools", "policy/.venv"):
        (project / shared).symlink_to(PROJECT_DIR / shared)
    (workspace / "home").mkdir()
    try:
        yield project
    finally:
        destroy(project, workspace)
        shutil.rmtree(workspace, ignore_errors=True)


def environment(project: Path) -> dict[str, str]:
    home = project.parent / "home"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")  # uv's and the toolchain's
    drop = ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE", "PULUMI_HOME", "VIRTUAL_ENV")
    return {
        **{k: v for k, v in os.environ.items() if k not in drop},
        "HOME": str(home),
        "XDG_CACHE_HOME": cache,
        "PULUMI_BACKEND_URL": (project.parent / "state").as_uri(),
    }


def deploy_script(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(project / "scripts" / "deploy"), "dev", "--standins", "--yes", *args],
        capture_output=True, text=True, timeout=1200, check=False, env=environment(project),
    )  # fmt: skip


def destroy(project: Path, workspace: Path) -> None:
    pulumi = project / ".venv" / "bin" / "pulumi"
    if pulumi.exists():
        passphrase = workspace / "home" / ".config" / "ichrisbirch" / "dev.passphrase"  # made by scripts/deploy
        env = environment(project) | {"PULUMI_CONFIG_PASSPHRASE_FILE": str(passphrase)}
        subprocess.run(
            [str(pulumi), "destroy", "--stack", "dev", "--yes", "--non-interactive"],
            cwd=project, env=env, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
    remove_objects(left_on_engine("dev"))
    remove_releases("dev")


@pytest.fixture(scope="module")
def ports() -> list[str]:
    """Host ports free here, and the suite's engine, as `pulumi up` options: with --standins they go
    to the copy of the stack file the run uses, so the committed one keeps its own and each run must
    name them again."""
    ports = [f"--config={key}Port={claim_port()}" for key in ("api", "app", "postgres", "redis")]
    return [*ports, f"--config=dockerHost={engine_host()}"]  # and the suite's engine (CI's is its own)


@pytest.fixture(scope="module")
def first_run(checkout: Path, ports: list[str]) -> tuple[subprocess.CompletedProcess[str], int]:
    ran = deploy_script(checkout, *ports)
    assert ran.returncode == 0, f"scripts/deploy dev failed:\n{ran.stdout[-6000:]}\n{ran.stderr[-4000:]}"
    return ran, int(ports[0].rsplit("=", 1)[1])


def test_scripts_deploy_dev_brings_up_a_serving_stack(first_run: tuple[subprocess.CompletedProcess[str], int]) -> None:
    ran, api_port = first_run
    for key in ("postgresPassword", "redisPassword", "flaskSecretKey"):
        assert f"deploy: generated {key} for dev" in ran.stdout, ran.stdout
    assert "deploy: pythonBaseImage is the stand-in icb-standin/" in ran.stdout, ran.stdout
    status, body = http("GET", f"http://127.0.0.1:{api_port}/health", timeout=10)
    assert status == 200, body


def test_the_stack_file_gains_encrypted_secrets_only(
    checkout: Path, first_run: tuple[subprocess.CompletedProcess[str], int]
) -> None:
    committed = yaml.safe_load((PROJECT_DIR / "Pulumi.dev.yaml").read_text())["config"]
    written = yaml.safe_load((checkout / "Pulumi.dev.yaml").read_text())
    added = {k: v for k, v in written["config"].items() if k not in committed}
    assert sorted(added) == ["ichrisbirch:flaskSecretKey", "ichrisbirch:postgresPassword", "ichrisbirch:redisPassword"]
    assert all(set(v) == {"secure"} for v in added.values()), "secrets are stored encrypted"
    assert "icb-standin" not in (checkout / "Pulumi.dev.yaml").read_text(), "the stand-ins stay out of it"


def test_a_second_run_changes_nothing(
    checkout: Path, ports: list[str], first_run: tuple[subprocess.CompletedProcess[str], int]
) -> None:
    ran = deploy_script(checkout, *ports)
    assert ran.returncode == 0, f"the second scripts/deploy dev failed:\n{ran.stdout[-6000:]}\n{ran.stderr[-4000:]}"
    assert "deploy: generated" not in ran.stdout, "the secrets are generated once"
    summary = ran.stdout[ran.stdout.rindex("Resources:") :]
    changed = re.search(r"to (create|update|delete|replace)|created|updated|deleted|replaced", summary)
    assert re.search(r"\d+ unchanged", summary) and not changed, summary
    report(f"scripts/deploy dev --standins, run again: {summary.splitlines()[1].strip()}")
