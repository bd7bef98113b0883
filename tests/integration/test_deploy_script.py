"""The README's walk through dev, step by step, as a new user runs it on a machine like this one (no
image can be pulled: `--standins`; Pulumi's plugins from ICB_PLUGINS_FROM where it is set, as on
CI): in a copy of the checkout, with a home and a state backend of its own. `scripts/deploy dev`
deploys and serves, leaves the stack file holding encrypted secrets and the images it runs, and a
second run changes nothing; then step 3's config change, whose plain preview replaces the scheduler
alone, its `up`, and step 4's destroy, which leaves nothing on the engine."""

from __future__ import annotations

import json
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
from proof.harness.cli import docker, engine_host, remove_objects
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
def machine(checkout: Path) -> dict[str, str]:
    """What differs on this machine from a fresh one, set in the checkout's stack file as a user
    would: host ports free here (8000 and the rest may be taken) and the suite's engine."""
    settings = {f"{key}Port": str(claim_port()) for key in ("api", "app", "postgres", "redis")}
    settings["dockerHost"] = engine_host()  # CI's is its own
    stack_file = checkout / "Pulumi.dev.yaml"
    lines = "".join(f"  ichrisbirch:{key}: {json.dumps(value)}\n" for key, value in settings.items())
    stack_file.write_text(stack_file.read_text() + lines)
    return settings


@pytest.fixture(scope="module")
def first_run(checkout: Path, machine: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Step 1: `scripts/deploy dev`, with --standins and without the prompt."""
    ran = deploy_script(checkout)
    assert ran.returncode == 0, f"scripts/deploy dev failed:\n{ran.stdout[-6000:]}\n{ran.stderr[-4000:]}"
    return ran


def test_scripts_deploy_dev_brings_up_a_serving_stack(
    first_run: subprocess.CompletedProcess[str], machine: dict[str, str]
) -> None:
    for key in ("postgresPassword", "redisPassword", "flaskSecretKey"):
        assert f"deploy: generated {key} for dev" in first_run.stdout, first_run.stdout
    assert "deploy: pythonBaseImage is the stand-in icb-standin/" in first_run.stdout, first_run.stdout
    # Step 2: the api's health, and the app's page.
    status, body = http("GET", f"http://127.0.0.1:{machine['apiPort']}/health", timeout=10)
    assert status == 200, body
    status, body = http("GET", f"http://127.0.0.1:{machine['appPort']}/", timeout=10)
    assert status == 200, body


def test_the_stack_file_gains_encrypted_secrets_and_the_images_it_runs(
    checkout: Path, machine: dict[str, str], first_run: subprocess.CompletedProcess[str]
) -> None:
    committed = yaml.safe_load((PROJECT_DIR / "Pulumi.dev.yaml").read_text())["config"]
    written = yaml.safe_load((checkout / "Pulumi.dev.yaml").read_text())["config"]
    added = {k: v for k, v in written.items() if k not in committed and k.removeprefix("ichrisbirch:") not in machine}
    secrets = {"ichrisbirch:flaskSecretKey", "ichrisbirch:postgresPassword", "ichrisbirch:redisPassword"}
    assert secrets <= set(added) and all(set(added[k]) == {"secure"} for k in secrets), "secrets stored encrypted"
    images = {k: v for k, v in added.items() if k not in secrets}
    assert images and all(k.endswith("Image") and str(v).startswith("icb-standin/") for k, v in images.items()), images
    assert "ichrisbirch:pythonBaseImage" in images


def test_a_second_run_changes_nothing(checkout: Path, first_run: subprocess.CompletedProcess[str]) -> None:
    ran = deploy_script(checkout)
    assert ran.returncode == 0, f"the second scripts/deploy dev failed:\n{ran.stdout[-6000:]}\n{ran.stderr[-4000:]}"
    assert "deploy: generated" not in ran.stdout, "the secrets are generated once"
    summary = ran.stdout[ran.stdout.rindex("Resources:") :]
    changed = re.search(r"to (create|update|delete|replace)|created|updated|deleted|replaced", summary)
    assert re.search(r"\d+ unchanged", summary) and not changed, summary
    report(f"scripts/deploy dev --standins, run again: {summary.splitlines()[1].strip()}")


def readme_step(project: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """A command of the README's step 3 or 4, in its shell: the checkout's .venv on PATH and the
    passphrase scripts/deploy made."""
    passphrase = project.parent / "home" / ".config" / "ichrisbirch" / "dev.passphrase"
    env = environment(project) | {
        "PATH": f"{project / '.venv' / 'bin'}:{os.environ['PATH']}",
        "PULUMI_CONFIG_PASSPHRASE_FILE": str(passphrase),
    }
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=900, check=False)


def test_the_readme_walk_a_setting_previewed_applied_then_everything_destroyed(
    checkout: Path, first_run: subprocess.CompletedProcess[str]
) -> None:
    assert readme_step(checkout, "pulumi", "config", "set", "heartbeatSeconds", "30", "--stack", "dev").returncode == 0
    shown = readme_step(checkout, "pulumi", "preview", "--stack", "dev", "--diff")
    assert shown.returncode == 0 and "scheduler" in shown.stdout, shown.stdout[-4000:] + shown.stderr[-2000:]
    # "the scheduler is replaced, nothing else": the same preview's steps, as the engine reports them.
    planned = readme_step(checkout, "pulumi", "preview", "--stack", "dev", "--json")
    assert planned.returncode == 0, planned.stderr[-2000:]
    changing = {
        (step["urn"].rsplit("::", 1)[1], step["op"])
        for step in json.loads(planned.stdout)["steps"]
        if step["op"] != "same"
    }
    assert {name for name, _ in changing} == {"scheduler"} and ("scheduler", "replace") in changing, changing
    applied = readme_step(checkout, "pulumi", "up", "--stack", "dev", "--yes")
    assert applied.returncode == 0, applied.stdout[-4000:]
    env = docker("inspect", "-f", "{{json .Config.Env}}", "icb-dev-scheduler").stdout
    assert "SCHEDULER_HEARTBEAT_SECONDS=30" in env, env
    # Step 4: everything it made goes.
    destroyed = readme_step(checkout, "pulumi", "destroy", "--stack", "dev", "--yes")
    assert destroyed.returncode == 0, destroyed.stdout[-4000:]
    assert left_on_engine("dev") == [], "pulumi destroy leaves nothing of the stack on the engine"
    report("the README's walk: deploy, health, a setting previewed (the scheduler alone) and applied, destroy")
