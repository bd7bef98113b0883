"""bench/RESULTS.md and what each section opens with: when, from which commit, by which command, on
what machine; the headings the sections are found by, and the helpers every measurement uses."""

from __future__ import annotations

import functools
import os
import platform
import statistics
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from infra.identity import PROJECT_DIR

BENCH = PROJECT_DIR / "bench"
DOCKER = "/usr/bin/docker"
RESULTS = BENCH / "RESULTS.md"
HEADER = (
    "Each section says when it was measured, from which commit, by which command, over how many runs (its "
    "figures are the medians), and on what machine; `python -m bench.run --only-<section>` measures one "
    "section again and rewrites it."
)
BUILDS_HEADING = "## Builds of the production image"
SECOND_UP_HEADING = "## Later `up`s of a deployed stack"
ROLLOUT_HEADING = "## A prod update under load"
SWARM_HEADING = "## A rolling update on the swarm"
SWARM_API_REPLICAS = (2, 4)
BACKUP_HEADING = "## Backup and restore"
ROLLBACK_HEADING = "## A rollback against a rebuild"
REMOTE_HEADING = "## prod over SSH beside a local engine"
ANATOMY_HEADING = "## Where a later `up` spends its time"
DEPENDENCY_AWAY_HEADING = "## While Postgres is away"
# The same sections as measured at 01df02e (2026-12-03), when every `up` ran on the project's model of
# the docker and tls providers instead of Pulumi's own plugins: a record, printed beside each new run.
ON_THE_MODEL = {
    SECOND_UP_HEADING: "On the provider model (01df02e, one run): with nothing changed dev 3.22 s, test 4.22 s, "
    "prod 4.41 s, prod under Compose 3.39 s; after a source-only change dev 18.2 s, test 30.9 s, prod 20.4 s.",
    ROLLOUT_HEADING: "On the provider model (01df02e, one run): ours 0 of 774 failed, 0.2 s without a successful "
    "answer, 20.2 s; delete-first 106 of 777, 2.3 s, 20.2 s; `docker compose up -d` 163 of 620, 3.7 s, 15.3 s.",
    ROLLBACK_HEADING: "On the provider model (01df02e, one run): rollback 20.3 s (0.0 s building), warm rebuild "
    "20.4 s (0.2 s), cold rebuild 28.0 s (6.4 s); 0 failed in each.",
}


def run(*command: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=check, timeout=1800, env=env)


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = next(
        line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    engine = run(DOCKER, "version", "--format", "{{.Server.Version}}").stdout.strip()
    gib = int(memory) // 1024 // 1024
    return f"{os.cpu_count()} cores ({cpu}), {gib} GiB, Docker {engine}, Python {platform.python_version()}"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def replace_section(heading: str, section: str) -> None:
    """Print `section` and put it in RESULTS.md in place of the one under `heading` (or at the end)."""
    print(section)
    current = RESULTS.read_text()
    if heading in current:
        before, _, after = current.partition(heading)
        rest = after.split("\n## ", 1)
        tail = f"\n## {rest[1]}" if len(rest) > 1 else ""
        RESULTS.write_text(f"{before}{section}{tail}")
    else:
        RESULTS.write_text(f"{current.rstrip()}\n\n{section}")


@functools.cache
def commit() -> str:
    """The commit the measured code is at, and whether the work tree differed from it: read once,
    when the run starts (`main`), since the code it measures is the code it imported then."""
    head = run("git", "rev-parse", "--short", "HEAD", cwd=PROJECT_DIR, check=False).stdout.strip() or "no commit"
    # Changes to the code, not to this run's own output (a section written before the next is measured).
    dirty = run(
        "git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/RESULTS.md", cwd=PROJECT_DIR,
        check=False,
    ).stdout.strip()  # fmt: skip
    return f"{head} with uncommitted changes" if dirty else head


def origin(command: str, runs: int) -> str:
    """The line that opens a section: when, from what code, by what command, how many runs, where."""
    counted = "one run" if runs == 1 else f"medians of {runs} runs"
    return (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit {commit()} by `{command}` ({counted}), "
        f"on {machine()}."
    )
