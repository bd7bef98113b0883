"""Benchmarks: our app/Dockerfile against two baselines, time to healthy per stack, program under mocks.

    python -m bench.run              # 3 runs each; prints the table and writes bench/RESULTS.md
    python -m bench.run --runs 5
    python -m bench.run --only-swarm # rolling updates on the three-node test swarm beside one engine
    python -m bench.run --only-backup # backup and restore of 100,000 task rows

Needs what the test suite needs (scripts/setup): a running Docker engine and the stand-in images.
Every figure is the median of the runs, and ratios compare figures measured in this same run.
Not a test: it asserts nothing and does not run in CI.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.compose import check_compose_project, compose_stack
from infra.config import load_settings
from infra.identity import PROJECT_DIR
from infra.releases import RELEASE_ENV, StackReleases
from infra.restore import StackEngine, restore
from proof.harness.buildkit import step_states
from proof.harness.cli import engine_host
from proof.harness.load import LoadLoop, LoadReport
from proof.harness.pulumi import RunResult
from proof.harness.stacks import bump_version, changed_all, deploy, program_with, psql
from proof.harness.standins import Standins, copy_app
from proof.harness.swarm import swarm_prod
from proof.mocks import ProgramMocks, committed_config, run_program

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
BACKUP_ROWS = 100_000
ADDED_DEPENDENCY = "six"  # small and pure Python: the rebuild measures the tooling, not a compile


@dataclass(frozen=True)
class Variant:
    name: str
    dockerfile: Path
    target: str | None
    dependency_steps: re.Pattern[str]  # the build steps that install dependencies
    prepare: Callable[[Path], object]  # lays out the build context
    add_dependency: Callable[[Path], None]


def run(*command: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=check, timeout=1800, env=env)


def add_to_pyproject_and_compile(context: Path) -> None:
    """A new runtime dependency, pinned the way this project pins: hashed requirements from pyproject."""
    pyproject = context / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            '    "pydantic-settings>=2.6",\n', f'    "pydantic-settings>=2.6",\n    "{ADDED_DEPENDENCY}",\n'
        )
    )
    run(
        "uv",
        "pip",
        "compile",
        "-q",
        "pyproject.toml",
        "--universal",
        "--python-version",
        "3.11",
        "--generate-hashes",
        "-o",
        "requirements.txt",
        cwd=context,
    )


class Poetry:
    """Poetry 1.8.3 on the host, to lock the seed recipe's project (once per context)."""

    def __init__(self, workdir: Path) -> None:
        self.venv = workdir / "poetry-venv"
        run("uv", "venv", "-q", "--python", "python3", str(self.venv))
        run("uv", "pip", "install", "-q", "--python", str(self.venv / "bin" / "python"), "poetry==1.8.3")
        # Poetry reads PyPI through its JSON API, which the index here does not serve: point it at
        # pip's own index (its simple API), named at run time, so no registry host is written in the repository.
        self.index = run(
            "python3", "-c", "from pip._internal.models.index import PyPI; print(PyPI.simple_url)"
        ).stdout.strip()

    def prepare(self, context: Path) -> None:
        copy_app(context)
        (context / "pyproject.toml").write_text(
            (BENCH / "baselines" / "poetry-pyproject.toml").read_text()
            + f'\n[[tool.poetry.source]]\nname = "index"\nurl = "{self.index}"\npriority = "primary"\n'
        )
        for pins in ("requirements.txt", "requirements-dev.txt"):
            (context / pins).unlink()
        self.lock(context)

    def lock(self, context: Path) -> None:
        run(str(self.venv / "bin" / "poetry"), "lock", "--no-update", cwd=context)

    def add_dependency(self, context: Path) -> None:
        pyproject = context / "pyproject.toml"
        pyproject.write_text(
            pyproject.read_text().replace(
                "[tool.poetry.group.dev.dependencies]",
                f'{ADDED_DEPENDENCY} = "*"\n\n[tool.poetry.group.dev.dependencies]',
            )
        )
        self.lock(context)


def variants(workdir: Path) -> list[Variant]:
    poetry = Poetry(workdir)
    return [
        Variant(
            "ours (app/Dockerfile)",
            PROJECT_DIR / "app" / "Dockerfile",
            "production",
            re.compile(
                r"pip install --no-cache-dir uv|uv venv|uv pip sync .*requirements|COPY --from=builder /opt/venv"
            ),
            copy_app,
            add_to_pyproject_and_compile,
        ),
        Variant(
            "single-stage pip",
            BENCH / "baselines" / "single-stage.Dockerfile",
            None,
            re.compile(r"pip install --no-cache-dir -r requirements.txt"),
            copy_app,
            add_to_pyproject_and_compile,
        ),
        Variant(
            "seed recipe (Poetry 1.8.3)",
            BENCH / "baselines" / "poetry.Dockerfile",
            "production",
            re.compile(r"pip install \"poetry|poetry install|COPY --from=builder /app/.venv"),
            poetry.prepare,
            poetry.add_dependency,
        ),
    ]


@dataclass
class BuildResult:
    seconds: float
    dependency_steps_run: int
    log: str


def build(variant: Variant, context: Path, tag: str, base: str) -> BuildResult:
    command = [
        DOCKER,
        "build",
        "--progress=plain",
        "-f",
        str(variant.dockerfile),
        "-t",
        tag,
        "--build-arg",
        f"PYTHON_BASE_IMAGE={base}",
    ]
    if variant.target:
        command += ["--target", variant.target]
    started = time.monotonic()
    result = run(*command, str(context), check=False)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(f"{variant.name}: build failed:\n{result.stderr[-3000:]}")
    ran = sum(
        1
        for step, state in step_states(result.stderr).items()
        if state == "RAN" and variant.dependency_steps.search(step)
    )
    return BuildResult(seconds, ran, result.stderr)


def image_size(image: str) -> int:
    return int(json.loads(run(DOCKER, "image", "inspect", image).stdout)[0]["Size"])


@dataclass
class Measured:
    cold: list[float] = field(default_factory=list)
    source: list[float] = field(default_factory=list)
    source_steps: list[int] = field(default_factory=list)
    dependency: list[float] = field(default_factory=list)
    dependency_steps: list[int] = field(default_factory=list)
    size: int = 0


def measure_builds(runs: int, base: str, workdir: Path) -> dict[str, Measured]:
    results: dict[str, Measured] = {}
    for variant in variants(workdir):
        measured = results.setdefault(variant.name, Measured())
        for i in range(runs):
            context = workdir / f"ctx-{len(results)}-{i}"
            variant.prepare(context)
            tag = f"icb-bench:{len(results)}"
            run(DOCKER, "builder", "prune", "-af")  # cold: no layer cache and no cache mounts
            measured.cold.append(build(variant, context, tag, base).seconds)
            source = context / "ichrisbirch" / "tasks.py"
            source.write_text(source.read_text() + f"\n# source change {uuid.uuid4()}\n")
            rebuilt = build(variant, context, tag, base)
            measured.source.append(rebuilt.seconds)
            measured.source_steps.append(rebuilt.dependency_steps_run)
            measured.size = image_size(tag)
            variant.add_dependency(context)
            added = build(variant, context, tag, base)
            measured.dependency.append(added.seconds)
            measured.dependency_steps.append(added.dependency_steps_run)
            print(
                f"  {variant.name} run {i + 1}: cold {measured.cold[-1]:.1f} s, source {rebuilt.seconds:.1f} s, "
                f"dependency {added.seconds:.1f} s",
                file=sys.stderr,
            )
        run(DOCKER, "image", "rm", "-f", f"icb-bench:{len(results)}", check=False)
    return results


@dataclass
class SecondUp:
    """One stack's later `up`s by the real CLI: wall time and containers touched."""

    unchanged: list[float] = field(default_factory=list)
    unchanged_touched: list[int] = field(default_factory=list)
    source: list[float] = field(default_factory=list)
    source_touched: list[int] = field(default_factory=list)
    preview_unchanged: list[float] = field(default_factory=list)  # `pulumi preview --expect-no-changes`


def _containers_touched(result: RunResult) -> int:
    containers = {s.name for s in result.steps if s.type.endswith("container:Container")}
    return sum(1 for name, op in result.ops().items() if name in containers and op != "same")


def measure_deployments(runs: int, standins: Standins) -> tuple[dict[str, list[float]], dict[str, SecondUp]]:
    """Time to healthy of a first deploy; then an `up` with nothing changed and one after a source edit."""
    healthy: dict[str, list[float]] = {}
    later: dict[str, SecondUp] = {}
    for stack in ("dev", "test", "prod"):
        for _ in range(runs):
            with deploy(stack, standins) as deployed:
                healthy.setdefault(stack, []).append(deployed.last.span("container:Container"))
                measured = later.setdefault(stack, SecondUp())
                started = time.perf_counter()
                result = deployed.up()
                measured.unchanged.append(time.perf_counter() - started)
                measured.unchanged_touched.append(_containers_touched(result))
                started = time.perf_counter()
                deployed.preview(expect_no_changes=True)
                measured.preview_unchanged.append(time.perf_counter() - started)
                source = deployed.app_dir / "ichrisbirch" / "tasks.py"
                source.write_text(source.read_text() + f"\n# source change {uuid.uuid4()}\n")
                started = time.perf_counter()
                result = deployed.up()
                measured.source.append(time.perf_counter() - started)
                measured.source_touched.append(_containers_touched(result))
    return healthy, later


def measure_compose_unchanged(runs: int, standins: Standins) -> list[float]:
    """The prod services under Compose (bench/compose.py): `docker compose up -d` with nothing to do."""
    timings = []
    for _ in range(runs):
        with compose_stack(standins) as stack:
            started = time.perf_counter()
            stack.up()
            timings.append(time.perf_counter() - started)
    return timings


@dataclass
class Rollout:
    """One prod update v1 -> v2 under the request loop."""

    requests: int
    failed: int
    seconds_without_service: float
    slowest: float
    wall_seconds: float

    @classmethod
    def of(cls, load: LoadReport, wall: float) -> Rollout:
        return cls(len(load.outcomes), len(load.failed), load.longest_without_service(), load.slowest(), wall)

    @classmethod
    def median_of(cls, runs: list[Rollout]) -> Rollout:
        """Each figure's median over the runs (the failed count too: one bad run shows as a spread)."""
        return cls(
            round(median([r.requests for r in runs])),
            round(median([r.failed for r in runs])),
            median([r.seconds_without_service for r in runs]),
            median([r.slowest for r in runs]),
            median([r.wall_seconds for r in runs]),
        )


def update_under_load(
    deployed: Any, change: Callable[[], object], up: Callable[[], object], max_seconds: float = 240
) -> Rollout:
    """`change`, then `up`, timed, under the tests' request loop through `deployed`'s ingress."""
    with LoadLoop(deployed, max_seconds=max_seconds) as loop:
        time.sleep(2)
        change()
        started = time.perf_counter()
        up()
        wall = time.perf_counter() - started
        time.sleep(2)
        return Rollout.of(loop.report(), wall)


def rollout_table(rollouts: dict[str, Rollout]) -> list[str]:
    lines = [
        "| update | requests | failed | longest time without a successful answer | slowest request | "
        "wall time of the update |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in rollouts.items():
        lines.append(
            f"| {name} | {r.requests} | {r.failed} | {r.seconds_without_service:.1f} s | {r.slowest:.1f} s | "
            f"{r.wall_seconds:.1f} s |"
        )
    return lines


def measure_rollout(standins: Standins, *, create_first: bool) -> Rollout:
    """prod v1 -> v2 (a source change) under the request loop; with create_first False, every
    container is replaced delete-first, as before the ingress rollouts."""
    with deploy("prod", standins) as deployed:
        transform = changed_all(create_first=False) if not create_first else (lambda specs: specs)
        program = program_with(transform)
        deployed.up(program=program)  # the variant's own names first, so the measured run is a plain source change
        return update_under_load(deployed, lambda: bump_version(deployed), lambda: deployed.up(program=program))


def render_rollouts(rollouts: dict[str, Rollout], origin: str) -> str:
    lines = [
        ROLLOUT_HEADING,
        "",
        origin,
        "",
        "prod from v1 to v2 (a source change) by `pulumi up` (the real CLI), under the request loop of the tests "
        "(8 threads, 2 of them keeping their connections open, 32 requests a second through the ingress over "
        "HTTPS: GETs of an api and an app page, a POST that writes).",
        "",
        *rollout_table(rollouts),
    ]
    ours = rollouts.get("create-first (ours)")
    if ours:
        others = ", ".join(f"{r.failed} for {name}" for name, r in rollouts.items() if r is not ours)
        lines += [
            "",
            f"Failed requests: {ours.failed} for ours, {others}. Delete-first, behind the same ingress, leaves "
            "a moment with no api or app container: HAProxy has no server to send to, and what it retries "
            "waits. Compose recreates each container stop-first under the same name. Ours creates the new "
            "container, admits it once healthy, and only then stops the old one, whose refused or dropped "
            "connections are retried on the new one.",
            "",
            *rollout_ratios(ours, {name: r for name, r in rollouts.items() if r is not ours}),
        ]
    lines += ["", ON_THE_MODEL[ROLLOUT_HEADING], ""]
    return "\n".join(lines)


def rollout_ratios(ours: Rollout, others: dict[str, Rollout]) -> list[str]:
    """Each baseline against ours: the share of requests failed, and the ratios of time without
    service and wall time (ours fails none, so failures are shares, not ratios)."""
    lines = [
        "| vs ours | requests failed | longest without a successful answer | wall time of the update |",
        "| --- | --- | --- | --- |",
    ]
    for name, other in others.items():
        share = other.failed / other.requests if other.requests else 0.0
        lines.append(
            f"| {name} | {share:.1%} (ours {ours.failed / ours.requests:.1%}) "
            f"| {other.seconds_without_service / ours.seconds_without_service:.2f}x "
            f"| {other.wall_seconds / ours.wall_seconds:.2f}x |"
        )
    return lines


def render_second_up(later: dict[str, SecondUp], compose_unchanged: list[float], origin: str) -> str:
    lines = [
        SECOND_UP_HEADING,
        "",
        origin,
        "",
        "By the real CLI (`pulumi up --yes --skip-preview` through the Automation API, its Python language "
        "host and Pulumi's docker and tls plugins): the wall time of `up` against the state the first deploy left, the "
        "containers it created, replaced or deleted, and `pulumi preview --expect-no-changes`; beside them, "
        "the same prod services under Compose (`bench/compose.py`), `docker compose up -d` with nothing to do.",
        "",
        "| stack | `up` with nothing changed | containers touched | `preview --expect-no-changes` | "
        "`up` after a source-only change | containers touched |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for stack, m in later.items():
        lines.append(
            f"| {stack} | {median(m.unchanged):.2f} s | {median(m.unchanged_touched):.0f} | "
            f"{median(m.preview_unchanged):.2f} s | {median(m.source):.1f} s | {median(m.source_touched):.0f} |"
        )
    if compose_unchanged:
        lines.append(f"| prod under Compose | {median(compose_unchanged):.2f} s | 0 | | | |")
    lines += [
        "",
        "A later `up` runs the program (the language host starts Python, which imports the SDKs), asks the "
        "providers to diff each resource, and writes the checkpoint; Compose compares its project with the "
        "containers' labels. A source-only change rebuilds the image (one source layer) and replaces the "
        "application's containers: delete-first in dev and test, create-first in prod (the old one stopped "
        "once the new one is healthy); Postgres and Redis are left alone.",
        "",
        ON_THE_MODEL[SECOND_UP_HEADING],
        "",
    ]
    return "\n".join(lines)


def measure_mocks(runs: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {}
    for stack in ("dev", "test", "prod"):
        config, secret_keys = committed_config(stack)
        for _ in range(runs):
            started = time.perf_counter()
            run_program(stack, config, secret_keys, ProgramMocks())
            timings.setdefault(stack, []).append(time.perf_counter() - started)
    return timings


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


def render(
    builds: dict[str, Measured],
    base_size: int,
    healthy: dict[str, list[float]],
    later: dict[str, SecondUp],
    mocks: dict[str, list[float]],
    compose_unchanged: list[float],
    origin: str,
    second_up_origin: str,
) -> str:
    ours, single, poetry = (builds[name] for name in builds)
    mb = 1e6

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}x" if b else "n/a"

    lines = [
        "# Benchmark results",
        "",
        HEADER,
        "",
        BUILDS_HEADING,
        "",
        origin,
        "",
        "Base image: the local Python stand-in.",
        "",
        "| | cold build | source-only rebuild | dependency layers re-run | add one dependency | "
        "dependency layers re-run | image size | above base |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, m in builds.items():
        lines.append(
            f"| {name} | {median(m.cold):.1f} s | {median(m.source):.1f} s | {median(m.source_steps):.0f} | "
            f"{median(m.dependency):.1f} s | {median(m.dependency_steps):.0f} | {m.size / mb:.0f} MB | "
            f"{(m.size - base_size) / mb:.0f} MB |"
        )
    source_share = median(ours.source) / median(ours.cold)
    above = (ours.size - base_size) / mb
    lines += [
        "",
        "## Against the targets",
        "",
        "| target | measured | met |",
        "| --- | --- | --- |",
        f"| source-only rebuild ≤ 5% of cold, 0 dependency layers re-run | {100 * source_share:.0f}% of cold, "
        f"{max(ours.source_steps)} layers | {'yes' if source_share <= 0.05 and not max(ours.source_steps) else 'no'} |",
        f"| cold build ≤ 0.5x the Poetry baseline | {ratio(median(ours.cold), median(poetry.cold))} | "
        f"{'yes' if median(ours.cold) <= 0.5 * median(poetry.cold) else 'no'} |",
        f"| image ≤ 0.5x the single-stage image | {ratio(ours.size, single.size)} | "
        f"{'yes' if ours.size <= 0.5 * single.size else 'no'} |",
        f"| image ≤ 80 MB above the base | {above:.0f} MB | {'yes' if above <= 80 else 'no'} |",
    ]
    for stack, values in healthy.items():
        lines.append(
            f"| {stack}: healthy ≤ 20 s after the first container starts | {median(values):.1f} s | "
            f"{'yes' if median(values) <= 20 else 'no'} |"
        )
    for stack, values in mocks.items():
        lines.append(
            f"| {stack}: program under mocks < 1 s | {median(values):.2f} s | {'yes' if median(values) < 1 else 'no'} |"
        )
    lines += [
        "",
        "## Ratios to the baselines (same run)",
        "",
        "| | vs single-stage pip | vs seed recipe (Poetry) |",
        "| --- | --- | --- |",
        f"| cold build | {ratio(median(ours.cold), median(single.cold))} | "
        f"{ratio(median(ours.cold), median(poetry.cold))} |",
        f"| source-only rebuild | {ratio(median(ours.source), median(single.source))} | "
        f"{ratio(median(ours.source), median(poetry.source))} |",
        f"| add one dependency | {ratio(median(ours.dependency), median(single.dependency))} | "
        f"{ratio(median(ours.dependency), median(poetry.dependency))} |",
        f"| image size | {ratio(ours.size, single.size)} | {ratio(ours.size, poetry.size)} |",
        "",
        "## Reading the figures",
        "",
        "- A source-only rebuild of ours re-runs no dependency layer; what remains is BuildKit's fixed cost "
        "(context, export) and building and installing the project's wheel. The seed recipe is faster here "
        "because its production stage copies the source tree and installs nothing: the project is not "
        "installed at all, which our production image does on purpose (non-editable, bytecode compiled).",
        "- The single-stage baseline re-runs its whole `pip install` on any source change, since the source "
        "is copied before it.",
        "- Image size: with `--no-cache-dir` and only wheels, the single-stage image carries the same "
        "dependencies and no build tools either, so the sizes match; the base image is most of every image.",
        "- Time to healthy counts from the first container's start to the last container healthy, with images "
        "built; the health checks probe every 3 s, which sets most of it.",
        "",
        render_second_up(later, compose_unchanged, second_up_origin),
    ]
    return "\n".join(lines)


def measure_compose_rollout(standins: Standins) -> Rollout:
    """The same services under `docker compose up -d`, v1 -> v2, under the same request loop."""
    with compose_stack(standins) as stack:
        source = stack.app_dir / "ichrisbirch" / "__init__.py"

        def change() -> None:
            source.write_text(source.read_text() + f"\n# source change {uuid.uuid4()}\n")

        return update_under_load(stack, change, stack.up)


def measure_rollouts(standins: Standins, runs: int) -> dict[str, Rollout]:
    variants: dict[str, Callable[[], Rollout]] = {
        "create-first (ours)": lambda: measure_rollout(standins, create_first=True),
        "delete-first": lambda: measure_rollout(standins, create_first=False),
        "`docker compose up -d`": lambda: measure_compose_rollout(standins),
    }
    measured: dict[str, list[Rollout]] = {name: [] for name in variants}
    for i in range(runs):
        for name, measure in variants.items():  # interleaved, so a slow spell of the machine hits all
            print(f"prod update under load: {name}, run {i + 1} of {runs} ...", file=sys.stderr)
            measured[name].append(measure())
    return {name: Rollout.median_of(values) for name, values in measured.items()}


def measure_swarm_rollout(standins: Standins, api_replicas: int) -> Rollout:
    """prod with `api_replicas` api tasks on the three-node test swarm, v1 -> v2 under the request loop."""
    with (
        tempfile.TemporaryDirectory(prefix="icb-bench-swarm-") as tmp,
        swarm_prod(standins, Path(tmp), apiReplicas=str(api_replicas)) as prod,
    ):
        return update_under_load(prod, lambda: bump_version(prod), prod.up, max_seconds=900)


def measure_swarm_rollouts(standins: Standins) -> dict[str, Rollout]:
    print("rolling updates on the swarm, beside one engine ...", file=sys.stderr)
    rollouts = {"one engine, create-first (2 api containers)": measure_rollout(standins, create_first=True)}
    for replicas in SWARM_API_REPLICAS:
        rollouts[f"swarm, start-first ({replicas} api tasks)"] = measure_swarm_rollout(standins, replicas)
    return rollouts


def render_swarm_rollouts(rollouts: dict[str, Rollout], origin: str) -> str:
    lines = [
        SWARM_HEADING,
        "",
        origin,
        "",
        "prod from v1 to v2 (a source change), in one run: on one engine (create-first containers), and on the "
        "three-node test swarm (`tests/swarm/up.sh`) with N api tasks (2 app tasks, 2 routers), each under the "
        "request loop of the tests (8 threads, 32 requests a second through the ingress over HTTPS).",
        "",
        *rollout_table(rollouts),
    ]
    single = next(iter(rollouts.values()))
    swarm = list(rollouts.values())[1:]
    ratios = ", ".join(
        f"{r.wall_seconds / single.wall_seconds:.1f}x for {name}" for name, r in list(rollouts.items())[1:]
    )
    added = SWARM_API_REPLICAS[-1] - SWARM_API_REPLICAS[0]
    extra = f"here {added} more api tasks added {swarm[-1].wall_seconds - swarm[0].wall_seconds:.1f} s"
    lines += [
        "",
        f"Wall time against one engine: {ratios}. The swarm replaces one task at a time, each once the one "
        "before runs healthy, for api, app, scheduler and router in turn, and a service's update completes only "
        "when its monitor window (20 s) has passed after its last task: so most of the wall time is a fixed cost "
        f"per service, and each extra task adds its start ({extra}). One engine starts all new containers of a "
        "service at once.",
        "",
    ]
    return "\n".join(lines)


@dataclass
class BackupFigures:
    rows: int
    database_bytes: int
    dump_bytes: int
    backup_seconds: float
    restore_seconds: float


def measure_backup(standins: Standins) -> BackupFigures:
    """dev with backups on and BACKUP_ROWS task rows: one dump, then a restore of it (writers stopped,
    pg_restore, migrations, writers healthy again), as `scripts/restore` does it."""
    print("backup and restore ...", file=sys.stderr)
    with deploy("dev", standins, backups="true", backupSchedule="1h") as deployed:
        psql(
            deployed,
            "INSERT INTO tasks (title, completed) SELECT 'bench task ' || g, g % 3 = 0 "
            f"FROM generate_series(1, {BACKUP_ROWS}) AS g",
        )
        rows = int(psql(deployed, "SELECT count(*) FROM tasks"))
        database_bytes = int(psql(deployed, "SELECT pg_database_size('ichrisbirch')"))
        engine = StackEngine(deployed.stack, engine_host())
        started = time.perf_counter()
        engine.backup("once").check_returncode()
        backup_seconds = time.perf_counter() - started
        name = engine.backup("list").stdout.split()[0]
        size = run(DOCKER, "exec", deployed.container("backup"), "sh", "-c", f'stat -c %s "$BACKUP_DIR/{name}"')
        started = time.perf_counter()
        restore(engine, name, say=lambda _: None)
        restore_seconds = time.perf_counter() - started
        assert int(psql(deployed, "SELECT count(*) FROM tasks")) == rows, "every row restored"
    return BackupFigures(rows, database_bytes, int(size.stdout), backup_seconds, restore_seconds)


def render_backup(figures: BackupFigures, origin: str) -> str:
    mb = 1e6
    return "\n".join(
        [
            BACKUP_HEADING,
            "",
            origin,
            "",
            "dev with backups on, through the backup service's own script (`backup once`) and `scripts/restore` "
            "(its module), one run:",
            "",
            "| task rows | database size | dump size (custom format) | backup (dump, pg_restore --list, checksum) "
            "| restore (writers stopped, pg_restore, migrations, writers healthy) |",
            "| --- | --- | --- | --- | --- |",
            f"| {figures.rows} | {figures.database_bytes / mb:.1f} MB | {figures.dump_bytes / mb:.1f} MB | "
            f"{figures.backup_seconds:.1f} s | {figures.restore_seconds:.1f} s |",
            "",
        ]
    )


@dataclass
class Putback:
    """One way back to the previous version: its `up`, how long it took, and the request loop meanwhile."""

    result: RunResult
    seconds: float
    load: LoadReport


@dataclass
class RollbackFigures:
    rollback: Putback
    rebuild: Putback  # the engine's build cache holding the previous source's layers
    cold_rebuild: Putback  # the build cache emptied first, as on a new builder


def measure_rollback(standins: Standins) -> RollbackFigures:
    """prod at v1, then v2; back to v1 two ways under the request loop: a rollback (the v1 release
    kept on the engine, `up` with ICHRISBIRCH_RELEASE) and, after v2 again, a rebuild of v1's source
    (as reverting the commit and deploying it does; the engine's build cache as it is)."""
    print("a rollback against a rebuild ...", file=sys.stderr)
    with deploy("prod", standins) as prod:
        init = prod.app_dir / "ichrisbirch" / "__init__.py"
        v1_source = init.read_text()
        previous = StackReleases.of(prod.stack, engine_host()).releases()[0].tag
        bump_version(prod)
        prod.up()

        def timed(change: Callable[[], RunResult]) -> Putback:
            with LoadLoop(prod) as loop:
                time.sleep(2)
                started = time.perf_counter()
                result = change()
                seconds = time.perf_counter() - started
                time.sleep(2)
                return Putback(result, seconds, loop.report())

        def rollback() -> RunResult:
            os.environ[RELEASE_ENV] = previous
            try:
                return prod.up()
            finally:
                del os.environ[RELEASE_ENV]

        rolled = timed(rollback)
        prod.up()  # v2 again, built as configured

        def rebuild() -> RunResult:
            init.write_text(v1_source)
            return prod.up()

        rebuilt = timed(rebuild)
        bump_version(prod)
        prod.up()  # a v2 again, so that the cold rebuild has the same way back

        def cold_rebuild() -> RunResult:
            run(DOCKER, "builder", "prune", "--all", "--force")
            return rebuild()

        cold = timed(cold_rebuild)
    return RollbackFigures(rolled, rebuilt, cold)


def render_rollback(figures: RollbackFigures, origin: str) -> str:
    def row(what: str, back: Putback) -> str:
        return (
            f"| {what} | {back.seconds:.1f} s | {back.result.build_seconds():.1f} s | "
            f"{len(back.load.failed)} of {len(back.load.outcomes)} |"
        )

    return "\n".join(
        [
            ROLLBACK_HEADING,
            "",
            origin,
            "",
            "prod (the shipped app) at v2, put back to v1 under the request loop: by a rollback (`up` with "
            "ICHRISBIRCH_RELEASE, the v1 release kept on the engine), and by a rebuild of v1's source (as a "
            "revert deploys it), once with the engine's build cache as the earlier builds left it and once "
            "with it emptied first (a new builder: dependencies downloaded and installed again), one run. The "
            "`up` is mostly the create-first rollout (new containers healthy before the old go), the same for all "
            "three; what differs is the build, and that a rollback needs neither the cache nor the package index:",
            "",
            "| back to v1 by | the `up` | of it building | requests failed |",
            "| --- | --- | --- | --- |",
            row("rollback", figures.rollback),
            row("rebuild of the previous source, build cache warm", figures.rebuild),
            row("rebuild of the previous source, build cache empty", figures.cold_rebuild),
            "",
            ON_THE_MODEL[ROLLBACK_HEADING],
            "",
        ]
    )


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
    return render(builds, image_size(standins.python), healthy, later, mocks, compose_unchanged, here, here)


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
