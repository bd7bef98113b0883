"""Later `up`s of a deployed stack: with nothing changed and after a source change, beside Compose's
`docker compose up -d` with nothing to do."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from bench.compose import compose_stack
from bench.page import ON_THE_MODEL, SECOND_UP_HEADING, median
from proof.harness.pulumi import RunResult
from proof.harness.stacks import deploy
from proof.harness.standins import Standins


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
