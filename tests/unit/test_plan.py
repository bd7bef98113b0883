"""The committed plans under tests/plans/ are what the program declares now."""

from __future__ import annotations

import difflib

import pytest

from proof.harness.stacks import TEST_SECRETS
from proof.plan import REGENERATE, plan, plan_path


@pytest.mark.parametrize("stack", ["dev", "test", "prod"])
def test_committed_plan_matches_the_program(stack: str) -> None:
    committed = plan_path(stack).read_text()
    current = plan(stack)
    if current != committed:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(True), current.splitlines(True), f"committed {stack}", f"program {stack}", n=2
            )
        )
        pytest.fail(f"tests/plans/{stack}.yaml is out of date; regenerate with `{REGENERATE}` and review:\n{diff}")


@pytest.mark.parametrize("stack", ["dev", "test", "prod"])
def test_plan_masks_secrets_and_keeps_plain_settings_readable(stack: str) -> None:
    text = plan(stack)
    assert "plan-placeholder" not in text and not any(v in text for v in TEST_SECRETS.values())
    # dev and test: in environments; prod: in the uploads to the secrets' holders.
    assert ("POSTGRES_PASSWORD=[secret]" in text) == (stack != "prod")
    assert ("- content: '[secret]'\n          file: /run/secrets/postgres_password/value" in text) == (stack == "prod")
    assert f"ENVIRONMENT={stack}" in text
    assert "${PROJECT_DIR}" in text or stack != "dev"
