"""Shared helpers: run the program for a stack under mocks, with test values for its secrets."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest

from proof.mocks import Run, run_program, stack_config
from proof.plan import PlanMocks

# Test values for the secrets: never real, and distinctive so a leak is easy to grep for.
TEST_SECRETS = {
    "postgresPassword": "pg-test-5c2f0e1d",
    "redisPassword": "redis-test-9a7b3c4e",
    "flaskSecretKey": "flask-test-1f8e6d2a",
    # Used only where a test sets backupOffsiteEndpoint (the bucket of tests/integration's offsite_bucket).
    "backupOffsiteAccessKeyId": "offsite-id-test-3d9a",
    "backupOffsiteSecretAccessKey": "offsite-key-test-7e41b08c",
}

RunStack = Callable[..., Run]


def committed_config(
    stack: str, overrides: Mapping[str, str] | None = None, secrets: Mapping[str, str] | None = None
) -> tuple[dict[str, str], set[str]]:
    """The committed stack file's config with test secrets, plus `overrides` (short key -> value)."""
    config, secret_keys = stack_config(stack, TEST_SECRETS if secrets is None else secrets)
    for key, value in (overrides or {}).items():
        config[f"ichrisbirch:{key}"] = value
    return config, secret_keys


@pytest.fixture
def run_stack() -> RunStack:
    """run_stack("prod", apiWorkers="2") -> Run, the program run fresh under mocks.

    `secrets` adds secret config values (set as with `pulumi config set --secret`).
    """

    def run(
        stack: str, mocks: PlanMocks | None = None, secrets: Mapping[str, str] | None = None, **overrides: str
    ) -> Run:
        config, secret_keys = committed_config(stack, overrides, secrets={**TEST_SECRETS, **(secrets or {})})
        return run_program(stack, config, secret_keys, mocks or PlanMocks())

    return run
