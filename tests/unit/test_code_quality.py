"""The program type-checks and lints clean: run by the suite so CI enforces it."""

from __future__ import annotations

import subprocess
import sys
import tomllib

from infra.identity import PROJECT_DIR


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300)


def test_mypy_strict_reports_no_errors_on_the_product_the_tooling_and_the_tests() -> None:
    checked = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["tool"]["mypy"]
    assert checked["strict"] is True
    assert {"infra", "proof", "bench", "tests"} <= set(checked["files"]), checked["files"]
    result = run(sys.executable, "-m", "mypy")  # files: pyproject.toml [tool.mypy]
    assert result.returncode == 0, result.stdout + result.stderr
    assert "source files" in result.stdout and "Success" in result.stdout


def test_ruff_reports_nothing() -> None:
    paths = ("infra", "proof", "tests", "policy", "bench", "app", "__main__.py")
    result = run(sys.executable, "-m", "ruff", "check", *paths)
    assert result.returncode == 0, result.stdout + result.stderr
