"""Linters and scanners over the repository: zero findings, or each disabled where it arises with
its reason. Each scanner is also shown a known-bad input, so a scanner that silently checks
nothing (missing rules offline, wrong flags) fails here instead of passing."""

from __future__ import annotations

import os
import random
import shutil
import string
import subprocess
import sys
from pathlib import Path

import pytest

from infra.identity import PROJECT_DIR

VENV_BIN = Path(sys.executable).parent
TOOLS_BIN = PROJECT_DIR / ".venv-tools" / "bin"
SKIP_DIRS = ".venv,.venv-tools,policy/.venv,.git"


def tool(name: str, *where: Path) -> str:
    for folder in (*where, VENV_BIN):
        if (folder / name).exists():
            return str(folder / name)
    found = shutil.which(name)
    assert found, f"{name} is not installed: run scripts/setup"
    return found


def run(*command: str, cwd: Path = PROJECT_DIR) -> subprocess.CompletedProcess[str]:
    # The venv's bin first: actionlint runs shellcheck on workflow scripts when it finds it.
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def trivy(target: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run(
        tool("trivy"),
        "fs",
        "--scanners",
        "misconfig,secret",
        "--skip-db-update",
        "--skip-check-update",
        "--skip-version-check",
        "--exit-code",
        "1",
        "--quiet",
        "--cache-dir",
        str(PROJECT_DIR / ".cache" / "trivy"),
        "--skip-dirs",
        SKIP_DIRS,
        *extra,
        str(target),
    )


BAD_DOCKERFILE = 'FROM debian:latest\nRUN apt-get update && apt-get install -y curl\nCMD ["sh"]\n'


def test_hadolint_reports_nothing_on_the_dockerfile() -> None:
    result = run(tool("hadolint"), "app/Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(BAD_DOCKERFILE)
    assert run(tool("hadolint"), str(tmp_path / "Dockerfile")).returncode != 0


def checkov(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    return run(
        tool("checkov", TOOLS_BIN),
        "-f",
        str(dockerfile),
        "--framework",
        "dockerfile",
        "--skip-download",
        "--compact",
        "--quiet",
    )


def test_checkov_reports_nothing_on_the_dockerfile() -> None:
    result = checkov(PROJECT_DIR / "app" / "Dockerfile")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def test_checkov_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(BAD_DOCKERFILE)
    result = checkov(tmp_path / "Dockerfile")
    assert result.returncode != 0 and "CKV_DOCKER" in result.stdout


def test_trivy_config_and_secret_scan_of_the_repository() -> None:
    result = trivy(PROJECT_DIR, "--ignorefile", str(PROJECT_DIR / ".trivyignore.yaml"))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_trivy_catches_a_root_image_and_a_leaked_key(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(BAD_DOCKERFILE)
    # A token of GitHub's format, made up now so that no file of the repository holds one.
    token = "ghp_" + "".join(random.choices(string.ascii_letters + string.digits, k=36))
    (tmp_path / "deploy.sh").write_text(f"export GITHUB_TOKEN={token}\n")
    result = trivy(tmp_path, "--format", "json")
    assert result.returncode == 1, result.stderr[-2000:]
    assert '"DS-0002"' in result.stdout or '"DS002"' in result.stdout, "the misconfiguration checks did not run"
    assert '"Secrets"' in result.stdout, "the secret scanner did not run"


WORKFLOWS = PROJECT_DIR / ".github" / "workflows"


def test_actionlint_passes_on_the_workflows() -> None:
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert len(files) >= 2, "the test and preview workflows"
    result = run(tool("actionlint"), "-no-color", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ github.nope }}\n"
    )
    assert run(tool("actionlint"), "-no-color", str(broken)).returncode != 0


@pytest.mark.parametrize("workflow", ["test.yml", "preview.yml"])
def test_workflows_install_with_the_readme_commands(workflow: str) -> None:
    text = (WORKFLOWS / workflow).read_text()
    assert "scripts/test" in text or "scripts/setup" in text


# Every shell script of the repository: scripts/, CI's entry, the backup loops, and the scripts that
# make the suite's engine, stand-ins and hosts (those sourced by others checked beside them).
SHELL_SCRIPTS = [
    *sorted(str(p.relative_to(PROJECT_DIR)) for p in (PROJECT_DIR / "scripts").iterdir() if p.is_file()),
    ".ci/run",
    *sorted(str(p.relative_to(PROJECT_DIR)) for p in (PROJECT_DIR / "infra").glob("*.sh")),
    *sorted(str(p.relative_to(PROJECT_DIR)) for p in (PROJECT_DIR / "tests").rglob("*.sh")),
]


def test_shellcheck_reports_nothing_on_the_scripts() -> None:
    result = run(tool("shellcheck"), *SHELL_SCRIPTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_catches_a_bad_script(tmp_path: Path) -> None:
    (tmp_path / "bad.sh").write_text("#!/usr/bin/env bash\ncd $1\nrm -rf $2/*\n")
    assert run(tool("shellcheck"), str(tmp_path / "bad.sh")).returncode != 0
