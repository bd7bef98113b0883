"""The run as a whole, and the helper every unit test uses.

The run: scripts/test runs the suite on pytest-xdist workers, each test module on one worker (its
deployment is made once, by a module-scoped fixture; modules that share objects on the engine share
a group). The process that starts the run (the controller, or the one process without workers)
notes the engine before the workers start and checks it after they stop: anything the suite made
and left fails the run by name. Each worker's figures are printed at the end.

The helper: run the program for a stack under mocks, with test values for its secrets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from proof.harness.figures import FIGURES, report
from proof.harness.run import EngineBefore, end_run, engine_problem
from proof.mocks import TEST_SECRETS, ProgramMocks, Run, committed_config, run_program

# Modules that use the same objects on the engine, by group: they run on one worker, one after the
# other (two `dev` stacks share their containers' names; the two swarm modules, the test swarm).
SHARED = {
    "test_deploy_dev": "dev", "test_deploy_script": "dev",
    "test_swarm_harness": "swarm", "test_deploy_swarm": "swarm",
}  # fmt: skip
# The longest groups first, so that the workers end together (as .ci/run measured them).
LONGEST_FIRST = (
    "swarm",
    "test_deploy_prod",
    "test_contract",
    "test_deploy_remote",
    "test_backups",
    "dev",
    "test_deploy_test",
)
ENGINE_BEFORE = pytest.StashKey[EngineBefore | None]()


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def group(nodeid: str) -> str | None:
    """The group of an integration test (its module's, or the one it shares); None for the others."""
    module = nodeid.split("::", 1)[0]
    if not module.startswith("tests/integration/test_"):
        return None
    stem = Path(module).stem
    return SHARED.get(stem, stem)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = group(item.nodeid)
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the rest, and each group's tests, in the files' order


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """pytest-xdist: each group on one worker, whole, in the order collected (xdist's own
    `--dist loadgroup` reads its marks into node ids that pytest 9 no longer lets it change)."""
    from xdist.scheduler import LoadScopeScheduling

    class ByGroup(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return group(nodeid) or nodeid  # the unit tests one by one

    config.option.loadscopereorder = False  # keep the longest first
    return ByGroup(config, log)


def pytest_sessionstart(session: pytest.Session) -> None:
    if not is_worker(session.config):
        session.config.stash[ENGINE_BEFORE] = EngineBefore.take() if engine_problem() is None else None


def pytest_sessionfinish(session: pytest.Session) -> None:
    if is_worker(session.config):
        session.config.workeroutput["figures"] = FIGURES  # type: ignore[attr-defined]
        return
    end_run()
    before = session.config.stash.get(ENGINE_BEFORE, None)
    if before is None:
        return
    left = before.left_behind()
    report(f"build cache on the engine: {EngineBefore.take().build_cache} after the suite, {before.build_cache} before")
    if left:
        report(f"FAILED: the suite left these behind (now removed): {left}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist: a worker ended; its figures join the controller's."""
    FIGURES.extend(getattr(node, "workeroutput", {}).get("figures", []))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


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
