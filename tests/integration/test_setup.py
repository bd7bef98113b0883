"""scripts/setup, which scripts/deploy runs before `pulumi up`: for a stack whose dockerHost names
another engine, it checks that engine answers and says plainly when it does not."""

from __future__ import annotations

import subprocess

import pytest

from infra.identity import PROJECT_DIR
from proof.harness.cli import engine_host

pytestmark = pytest.mark.docker


def setup(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PROJECT_DIR / "scripts" / "setup"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_an_engine_that_answers_is_named_with_its_version(engine: None) -> None:
    checked = setup("--docker-host", engine_host())
    assert checked.returncode == 0, checked.stderr
    assert "docker " in checked.stdout and f"at {engine_host()}" in checked.stdout, checked.stdout


def test_an_engine_that_does_not_answer_stops_setup_in_one_plain_line(tmp_path: object) -> None:
    missing = f"unix://{tmp_path}/no-engine.sock"
    checked = setup("--docker-host", missing)
    assert checked.returncode == 1
    (line,) = checked.stderr.strip().splitlines()
    assert line.startswith(f"setup: no Docker engine answers at {missing} ("), line


def test_an_unknown_option_is_refused() -> None:
    refused = setup("--docker")
    assert refused.returncode == 2 and "usage: scripts/setup" in refused.stderr
