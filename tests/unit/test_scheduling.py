"""How the suite is split between pytest-xdist workers (tests/conftest.py): each integration module
whole on one worker, modules that share engine objects in one group, the longest groups first."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import LONGEST_FIRST, SHARED, group, pytest_xdist_make_scheduler

INTEGRATION = Path(__file__).parents[1] / "integration"
MODULES = sorted(path.stem for path in INTEGRATION.glob("test_*.py"))


def test_every_integration_test_has_its_module_group_and_the_unit_tests_none() -> None:
    assert group("tests/integration/test_deploy_prod.py::test_every_container_is_healthy") == "test_deploy_prod"
    assert group("tests/integration/test_backups.py::test_x[a::b]") == "test_backups"
    assert group("tests/unit/test_config.py::test_bad_value_names_key_and_problem[prod]") is None


def test_modules_that_share_engine_objects_are_one_group() -> None:
    assert group("tests/integration/test_deploy_dev.py::t") == group("tests/integration/test_deploy_script.py::t")
    assert group("tests/integration/test_swarm_harness.py::t") == group("tests/integration/test_deploy_swarm.py::t")
    assert set(SHARED) <= set(MODULES), "a shared module was renamed: its group would silently split"


def test_the_longest_first_are_groups_that_exist() -> None:
    groups = {group(f"tests/integration/{module}.py::t") for module in MODULES}
    assert set(LONGEST_FIRST) <= groups, set(LONGEST_FIRST) - groups


def test_the_scheduler_keeps_a_group_on_one_scope(pytestconfig: pytest.Config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pytestconfig.option, "loadscopereorder", True, raising=False)
    monkeypatch.setattr(pytestconfig.option, "tx", ["2*popen"], raising=False)  # what `-n 2` gives xdist
    scheduler = pytest_xdist_make_scheduler(pytestconfig, log=None)
    scope = scheduler._split_scope
    assert scope("tests/integration/test_deploy_dev.py::a") == scope("tests/integration/test_deploy_script.py::b")
    assert scope("tests/integration/test_deploy_prod.py::a") == scope("tests/integration/test_deploy_prod.py::b")
    assert scope("tests/integration/test_deploy_prod.py::a") != scope("tests/integration/test_contract.py::a")
    assert scope("tests/unit/test_ops.py::a") != scope("tests/unit/test_ops.py::b"), "the unit tests one by one"
    assert pytestconfig.option.loadscopereorder is False, "xdist would reorder the groups by their size"
