"""The benchmark's set-up path, run by the suite so it cannot break unseen: the stand-ins it builds
(the suite's own, through Standins.build), each stack's settings with them, the Compose baseline's
project validated by Compose, and the plan of measurements each flag selects. The long
measurements themselves are not run here (bench/run.py; figures in bench/RESULTS.md)."""

from __future__ import annotations

import pytest

from bench import run
from proof.harness.standins import Standins

pytestmark = pytest.mark.docker


def planned(capsys: pytest.CaptureFixture[str], *flags: str) -> list[str]:
    assert run.main([*flags, "--plan"]) == 0
    return [line.split()[1] for line in capsys.readouterr().err.splitlines() if line.startswith("- ")]


def test_the_whole_plan_builds_its_stand_ins_and_names_every_section(
    standins: Standins, capsys: pytest.CaptureFixture[str]
) -> None:
    assert planned(capsys) == list(run.SECTIONS)


def test_an_only_flag_plans_its_section_alone(standins: Standins, capsys: pytest.CaptureFixture[str]) -> None:
    assert planned(capsys, "--only-rollout", "--runs", "1") == ["rollout"]
    assert planned(capsys, "--only-swarm", "--only-backup") == ["swarm", "backup"]
