"""The check behind "one scheduler at a time, no job twice", on runs made up to show each fault:
it passes a clean handover and fails two schedulers interleaving or one running a job twice."""

from __future__ import annotations

from tests.integration.day2 import scheduler_problems

INTERVAL = 2.0


def every(runner: str, start: float, count: int, step: float = INTERVAL) -> list[tuple[str, float]]:
    return [(runner, start + i * step) for i in range(count)]


def test_a_clean_handover_passes() -> None:
    # The old leader's last run, then the new one's run on taking over, then its schedule.
    runs = every("old:7", 0, 10) + [("new:7", 18.3)] + every("new:7", 20.3, 10)
    assert scheduler_problems(runs, INTERVAL) == []


def test_a_run_delayed_by_a_loaded_machine_passes() -> None:
    runs = [("a:1", 0.0), ("a:1", 3.9), ("a:1", 4.0), ("a:1", 6.0), ("a:1", 8.0)]
    assert scheduler_problems(runs, INTERVAL) == []


def test_two_schedulers_at_once_fail() -> None:
    runs = sorted(every("old:7", 0, 10) + every("new:7", 1, 10), key=lambda run: run[1])
    (problem,) = scheduler_problems(runs, INTERVAL)
    assert problem.startswith("runners interleave"), problem


def test_a_job_run_twice_fails() -> None:
    doubled = sorted(every("a:1", 0, 10) + every("a:1", 0.05, 10), key=lambda run: run[1])
    (problem,) = scheduler_problems(doubled, INTERVAL)
    assert problem == "a:1 ran the job 20 times in 18.1 s (at most 11)", problem


def test_a_leader_coming_back_after_another_fails() -> None:
    runs = every("a:1", 0, 3) + every("b:1", 6, 3) + every("a:1", 12, 3)
    assert scheduler_problems(runs, INTERVAL)[0].startswith("runners interleave"), "a, b, a: two leaders"
