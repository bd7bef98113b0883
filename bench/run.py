"""Benchmarks: our app/Dockerfile against two baselines, time to healthy per stack, program under mocks.

    python -m bench.run              # 3 runs each; prints the table and writes bench/RESULTS.md
    python -m bench.run --runs 5
    python -m bench.run --only-swarm # rolling updates on the three-node test swarm beside one engine
    python -m bench.run --only-backup # backup and restore of 100,000 task rows
    python -m bench.run --only-remote # prod over SSH (tests/remote's host) beside a local engine
    python -m bench.run --only-anatomy # where a no-change `up` of prod spends its time (the CLI's trace)
    python -m bench.run --only-dependency-away # a Postgres change and a restore under load, hold off and on

Needs what the test suite needs (scripts/setup): a running Docker engine and the stand-in images.
Every figure is the median of the runs, and ratios compare figures measured in this same run.
Not a test: it asserts nothing and does not run in CI.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.anatomy import measure_anatomy, render_anatomy
from bench.builds import image_size, measure_builds, measure_mocks, render_builds
from bench.compose import check_compose_project
from bench.dependency_away import measure_dependency_away, render_dependency_away
from bench.later_ups import measure_compose_unchanged, measure_deployments, render_second_up
from bench.page import (
    ANATOMY_HEADING,
    BACKUP_HEADING,
    BUILDS_HEADING,
    DEPENDENCY_AWAY_HEADING,
    REMOTE_HEADING,
    RESULTS,
    ROLLBACK_HEADING,
    ROLLOUT_HEADING,
    SECOND_UP_HEADING,
    SWARM_API_REPLICAS,
    SWARM_HEADING,
    commit,
    origin,
    replace_section,
)
from bench.recovery import BACKUP_ROWS, measure_backup, measure_rollback, render_backup, render_rollback
from bench.remote import measure_remote, render_remote
from bench.rollouts import measure_rollouts, measure_swarm_rollouts, render_rollouts, render_swarm_rollouts
from infra.config import load_settings
from infra.identity import PROJECT_DIR
from proof.harness.standins import Standins
from proof.mocks import committed_config


@dataclass(frozen=True)
class Section:
    """One section of RESULTS.md: what it measures, and how (returns the rendered section)."""

    heading: str
    what: str
    measure: Callable[[Standins, int, str], str]  # (stand-ins, runs, command) -> section text


def _builds_section(standins: Standins, runs: int, command: str) -> str:
    with tempfile.TemporaryDirectory(prefix="icb-bench-") as tmp:
        print("builds ...", file=sys.stderr)
        builds = measure_builds(runs, standins.python, Path(tmp))
    print("time to healthy and later `up`s ...", file=sys.stderr)
    healthy, later = measure_deployments(runs, standins)
    compose_unchanged = measure_compose_unchanged(runs, standins)
    print("program under mocks ...", file=sys.stderr)
    mocks = measure_mocks(max(runs, 5))
    here = origin(command, runs)
    return render_builds(builds, image_size(standins.python), healthy, later, mocks, compose_unchanged, here, here)


SECTIONS: dict[str, Section] = {
    "builds": Section(
        BUILDS_HEADING,
        "three Dockerfiles built cold, after a source change and after a new dependency; each stack deployed "
        "(time to healthy, later `up`s); the program under mocks",
        _builds_section,
    ),
    "second-up": Section(
        SECOND_UP_HEADING,
        "each stack deployed, then `up` with nothing changed and after a source change",
        lambda standins, runs, command: render_second_up(
            measure_deployments(runs, standins)[1], measure_compose_unchanged(runs, standins), origin(command, runs)
        ),
    ),
    "anatomy": Section(
        ANATOMY_HEADING,
        "prod's `up` with nothing changed, traced by the CLI (`--otel-traces`): where its time goes",
        lambda standins, runs, command: render_anatomy(measure_anatomy(standins, runs), origin(command, runs)),
    ),
    "rollout": Section(
        ROLLOUT_HEADING,
        "prod v1 -> v2 under the request loop: create-first (ours), delete-first, `docker compose up -d`",
        lambda standins, runs, command: render_rollouts(measure_rollouts(standins, runs), origin(command, runs)),
    ),
    "swarm": Section(
        SWARM_HEADING,
        f"prod v1 -> v2 under the request loop on one engine and on the test swarm with {SWARM_API_REPLICAS} api "
        "tasks (one run)",
        lambda standins, _runs, command: render_swarm_rollouts(measure_swarm_rollouts(standins), origin(command, 1)),
    ),
    "rollback": Section(
        ROLLBACK_HEADING,
        "prod v2 back to v1 under the request loop: a rollback against a rebuild of the previous source (one run)",
        lambda standins, _runs, command: render_rollback(measure_rollback(standins), origin(command, 1)),
    ),
    "dependency-away": Section(
        DEPENDENCY_AWAY_HEADING,
        "prod under the request loop while Postgres is away (a setting changed, a restore), the router's hold off"
        " and on, on one engine and on the test swarm (one run)",
        lambda standins, _runs, command: render_dependency_away(measure_dependency_away(standins), origin(command, 1)),
    ),
    "remote": Section(
        REMOTE_HEADING,
        "prod's first deploy, an `up` with nothing changed and one after a source change, on the local engine and "
        "over SSH on the test run's remote host (one run)",
        lambda standins, _runs, command: render_remote(measure_remote(standins), origin(command, 1)),
    ),
    "backup": Section(
        BACKUP_HEADING,
        f"dev with {BACKUP_ROWS} task rows: one dump, then a restore (one run)",
        lambda standins, _runs, command: render_backup(measure_backup(standins), origin(command, 1)),
    ),
}


def prepare() -> Standins:
    """What every measurement stands on, checked before any is taken (and by the suite, with --plan):
    the stand-in images, each stack's settings with them, and the Compose baseline's project."""
    standins = Standins.build()
    for stack in ("dev", "test", "prod"):
        load_settings(stack, *committed_config(stack, standins.config()))
    check_compose_project(standins)
    return standins


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement (medians are reported)")
    for name, section in SECTIONS.items():
        parser.add_argument(
            f"--only-{name}", action="store_true", help=f"measure only {section.what}; rewrite that section"
        )
    parser.add_argument(
        "--plan", action="store_true", help="build the stand-ins, print what would be measured, measure nothing"
    )
    args = parser.parse_args(argv)
    chosen = [name for name in SECTIONS if getattr(args, f"only_{name.replace('-', '_')}")] or list(SECTIONS)
    flags = "".join(f" --only-{name}" for name in chosen if len(chosen) < len(SECTIONS))
    command = f"python -m bench.run{flags}" + (f" --runs {args.runs}" if args.runs != 3 else "")

    commit()  # the code measured is the code as it is now, whatever is committed while this runs
    standins = prepare()
    print(f"{command}: stand-ins {', '.join(standins.config().values())}", file=sys.stderr)
    for name in chosen:
        print(f"- {name} ({SECTIONS[name].heading.lstrip('# ')}): {SECTIONS[name].what}", file=sys.stderr)
    if args.plan:
        return 0

    if len(chosen) == len(SECTIONS):  # the whole file; the builds section renders the later `up`s it measured
        text = "\n".join(SECTIONS[name].measure(standins, args.runs, command) for name in chosen if name != "second-up")
        print(text)
        RESULTS.write_text(text)
        print(f"wrote {RESULTS.relative_to(PROJECT_DIR)}", file=sys.stderr)
        return 0
    for name in chosen:
        replace_section(SECTIONS[name].heading, SECTIONS[name].measure(standins, args.runs, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
