"""The benchmark's sections rendered from figures made up for the purpose: each says where its
figures came from, and its tables and ratios are computed from the figures given."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import page
from bench.dependency_away import HOLD_SECONDS, ONE_ENGINE, SWARM, Away, AwayFigures, render_dependency_away
from bench.later_ups import SecondUp, render_second_up
from bench.recovery import BackupFigures, render_backup
from bench.rollouts import Rollout, render_rollouts
from proof.harness.load import LoadReport, Outcome

ORIGIN = "Measured 2026-01-01 00:00 UTC at commit abc1234 by `python -m bench.run --only-rollout --runs 1` (one run)"


def rollout(failed: int, gap: float, wall: float) -> Rollout:
    return Rollout(requests=1000, failed=failed, seconds_without_service=gap, slowest=1.0, wall_seconds=wall)


def test_the_rollout_section_opens_with_its_origin_and_computes_its_ratios() -> None:
    text = render_rollouts(
        {"create-first (ours)": rollout(0, 2.0, 30.0), "delete-first": rollout(200, 4.0, 15.0)}, ORIGIN
    )
    lines = text.splitlines()
    assert lines[0] == page.ROLLOUT_HEADING and lines[2] == ORIGIN
    assert "| create-first (ours) | 1000 | 0 | 2.0 s | 1.0 s | 30.0 s |" in lines
    assert "| delete-first | 20.0% (ours 0.0%) | 2.00x | 0.50x |" in lines


def test_medians_of_runs_take_each_figure_on_its_own() -> None:
    runs = [rollout(0, 2.0, 30.0), rollout(5, 9.0, 20.0), rollout(1, 3.0, 25.0)]
    assert Rollout.median_of(runs) == rollout(1, 3.0, 25.0)


def test_the_backup_and_later_up_sections_carry_their_origin() -> None:
    backup = render_backup(BackupFigures(100, 2_000_000, 500_000, 0.5, 10.0), ORIGIN).splitlines()
    assert backup[2] == ORIGIN and "| 100 | 2.0 MB | 0.5 MB | 0.5 s | 10.0 s |" in backup
    later = SecondUp([0.5], [0], [30.0], [4], [0.4])
    second = render_second_up({"prod": later}, [0.3], ORIGIN).splitlines()
    assert second[2] == ORIGIN and "| prod | 0.50 s | 0 | 0.40 s | 30.0 s | 4 |" in second
    assert "| prod under Compose | 0.30 s | 0 | | | |" in second


def test_a_section_replaces_its_own_text_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## A\n\nold a\n\n## B\n\nold b\n")
    monkeypatch.setattr(page, "RESULTS", results)
    page.replace_section("## A", "## A\n\nnew a\n")
    assert results.read_text() == "# Benchmark results\n\n## A\n\nnew a\n\n## B\n\nold b\n"


def away(failed: int, gap: float, longest: float, seconds: float) -> Away:
    outcomes = [Outcome(at=0.0, what="GET api /", status=200, seconds=longest)]
    outcomes += [
        Outcome(at=1.0 + i * gap / max(failed, 1), what="GET api /", status=503, error="HTTP 503")
        for i in range(failed)
    ]
    outcomes += [Outcome(at=1.0 + gap + 0.1, what="GET api /", status=200, seconds=0.1)]
    return Away(seconds, LoadReport(outcomes, 10.0))


def test_the_dependency_away_section_compares_the_hold_with_its_anchor_in_the_same_run() -> None:
    figures = {
        ONE_ENGINE: AwayFigures(
            setting={0: away(10, 2.0, 0.1, 8.0), HOLD_SECONDS: away(0, 0.0, 1.5, 8.5)},
            restore={0: away(30, 4.0, 0.1, 7.0), HOLD_SECONDS: away(0, 0.0, 3.0, 7.5)},
        ),
        SWARM: AwayFigures(
            setting={0: away(12, 6.0, 0.1, 20.0), HOLD_SECONDS: away(0, 0.0, 7.0, 21.0)},
            restore={0: away(40, 9.0, 0.1, 30.0), HOLD_SECONDS: away(2, 0.0, 20.5, 31.0)},
        ),
    }
    lines = render_dependency_away(figures, ORIGIN).splitlines()
    assert lines[0] == page.DEPENDENCY_AWAY_HEADING and lines[2] == ORIGIN
    rows = {tuple(line.split(" | ")[:2]): line.split(" | ")[2:] for line in lines if line.startswith("| ")}
    assert rows[("| one engine", f"a Postgres setting, hold {HOLD_SECONDS} s")] == [
        "0 of 2",
        "8.5 s",
        "1.5 s",
        "8.5 s |",
    ]
    assert rows[("| one engine", "scripts/restore, hold off")][0] == "30 of 32"
    assert rows[("| swarm", f"scripts/restore, hold {HOLD_SECONDS} s")][0] == "2 of 4"
    summaries = {line.split(":")[0]: line for line in lines if ": with the hold" in line}
    assert "0 requests failed where 10 did without it" in summaries[ONE_ENGINE], summaries
    assert "2 where 40 did" in summaries[SWARM], summaries
