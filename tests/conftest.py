"""Shared helpers: run the program for a stack under mocks, with test values for its secrets."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest

from proof.mocks import TEST_SECRETS, ProgramMocks, Run, committed_config, run_program

RunStack = Callable[..., Run]


@pytest.fixture
def run_stack() -> RunStack:
    """run_stack("prod", apiWorkers="2") -> Run, the program run fresh under mocks.

    `secrets` adds secret config values (set as with `pulumi config set --secret`).
    """

    def run(
        stack: str, mocks: ProgramMocks | None = None, secrets: Mapping[str, str] | None = None, **overrides: str
    ) -> Run:
        config, secret_keys = committed_config(stack, overrides, secrets={**TEST_SECRETS, **(secrets or {})})
        return run_program(stack, config, secret_keys, mocks or ProgramMocks())

    return run
