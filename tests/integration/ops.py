"""`scripts/ops` as an operator runs it, against a stack the suite deployed with the real CLI: the
same module (`python -m infra.ops`) in the stack's copy of the project, with its backend and
passphrase in the environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

from infra.identity import PROJECT_DIR
from proof.harness.pulumi import ProjectStack

BACKUP_ONCE = 'exec sh -c "$BACKUP_SCRIPT" backup once'  # a dump now, as docs/operating.md says


def ops(project: ProjectStack, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return module(project, "infra.ops", *args, timeout=timeout)


def module(project: ProjectStack, name: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`python -m <name> <args>` (infra.ops, infra.releases) in the stack's copy of the project."""
    environment = {**os.environ, **project.env}
    try:
        return subprocess.run(
            [sys.executable, "-m", name, *args],
            cwd=project.dir, env=environment, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
    finally:
        project.changed_elsewhere()  # `maintenance` runs `pulumi up`


def operator_up(project: ProjectStack, *options: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """`pulumi up` as scripts/deploy and scripts/rollback run it (`python -m infra.diagnose up`),
    without a prompt: Pulumi's output, then on failure why (infra/diagnose.py)."""
    environment = {**os.environ, **project.env}
    try:
        return subprocess.run(
            [sys.executable, "-m", "infra.diagnose", "up", project.name, "--yes", "--skip-preview", *options],
            cwd=project.dir, env=environment, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
    finally:
        project.changed_elsewhere()


def script(project: ProjectStack, name: str, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """scripts/<name> (rollback, restore, ops) as an operator runs it from a checkout: the stack's copy
    of the project with the scripts beside the program, and the checkout's environment (.venv)."""
    scripts = project.dir / "scripts"
    if not scripts.exists():
        shutil.copytree(PROJECT_DIR / "scripts", scripts)
        (project.dir / ".venv").symlink_to(PROJECT_DIR / ".venv")
    try:
        return subprocess.run(
            [str(scripts / name), *args], cwd=project.dir, env={**os.environ, **project.env},
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
    finally:
        project.changed_elsewhere()  # rollback runs `pulumi up`


def timed_script(project: ProjectStack, name: str, *args: str) -> tuple[int, list[tuple[float, str]]]:
    """`script`, with when (time.monotonic()) each line of its output was printed; stderr follows stdout."""
    script(project, name, "--help")  # the scripts beside the program, as `script` puts them
    process = subprocess.Popen(
        [str(project.dir / "scripts" / name), *args], cwd=project.dir,
        env={**os.environ, **project.env, "PYTHONUNBUFFERED": "1"},  # each line as it is printed
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        lines = [(time.monotonic(), line.rstrip("\n")) for line in process.stdout]
        return process.wait(timeout=600), lines
    finally:
        project.changed_elsewhere()


def table(printed: str) -> dict[str, dict[str, str]]:
    """`status`'s rows by service, each cell under its header (cells hold no double space)."""
    lines = printed.split("\n\n", 1)[0].splitlines()
    header = lines[0].split()
    rows = {}
    for line in lines[1:]:
        cells = [cell.strip() for cell in line.split("  ") if cell.strip()]
        rows[cells[0]] = dict(zip(header, cells, strict=False))
    return rows
