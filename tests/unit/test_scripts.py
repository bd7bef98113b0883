"""The README's commands refuse a stack that has no stack file, naming it, before anything runs."""

from __future__ import annotations

import subprocess

import pytest

from infra.identity import PROJECT_DIR


@pytest.mark.parametrize("script", ["deploy", "rollback"])
def test_a_stack_without_a_stack_file_is_refused_naming_the_file(script: str) -> None:
    for stack in ("staging", "--help"):
        refused = subprocess.run(
            [str(PROJECT_DIR / "scripts" / script), stack], capture_output=True, text=True, timeout=30, check=False
        )
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert f"no stack file Pulumi.{stack}.yaml" in refused.stderr and "usage: scripts/" in refused.stderr
        assert refused.stdout == "", "nothing ran"
