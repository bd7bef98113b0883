"""Where a later `up` spends its time: a no-change `up` of prod by the real CLI with its own
OpenTelemetry trace (`pulumi up --otel-traces file://...`, OTLP JSON, one export per line), its
spans grouped by name: how long each kind of work covered of the `up`'s wall time (overlapping spans
of one name counted once) and how often it ran. Beside it, in the same run: the same `up` through the
Automation API (as the suite runs it) and Compose's `docker compose up -d` with nothing to do."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.later_ups import measure_compose_unchanged
from bench.page import ANATOMY_HEADING, median
from proof.harness.stacks import deploy
from proof.harness.standins import Standins

SHOWN = 14  # the span names that cover the most time


@dataclass(frozen=True)
class Span:
    name: str
    service: str  # which process reported it (the CLI, a plugin, the language host)
    start: float  # seconds since the epoch
    end: float


def spans_of(trace: Path) -> list[Span]:
    """Every span of an OTLP JSON trace file."""
    found = []
    for line in trace.read_text().splitlines():
        for resource_spans in json.loads(line).get("resourceSpans", []):
            attributes = resource_spans.get("resource", {}).get("attributes", [])
            service = next(
                (a["value"].get("stringValue", "?") for a in attributes if a.get("key") == "service.name"), "?"
            )
            for scope in resource_spans.get("scopeSpans", []):
                for span in scope.get("spans", []):
                    start, end = int(span["startTimeUnixNano"]) / 1e9, int(span["endTimeUnixNano"]) / 1e9
                    found.append(Span(span["name"], service, start, end))
    return found


def covered(intervals: list[tuple[float, float]]) -> float:
    """Seconds covered by the union of the intervals."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


@dataclass(frozen=True)
class Anatomy:
    """One no-change `up`: its wall time, and per span name (with its process) the time covered and the count."""

    wall: float
    traced: float  # from the first span's start to the last one's end
    by_name: dict[tuple[str, str], tuple[float, int]]


def anatomy_of(trace: Path, wall: float) -> Anatomy:
    spans = spans_of(trace)
    groups: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for span in spans:
        groups.setdefault((span.name, span.service), []).append((span.start, span.end))
    traced = max(s.end for s in spans) - min(s.start for s in spans) if spans else 0.0
    return Anatomy(wall, traced, {key: (covered(found), len(found)) for key, found in groups.items()})


@dataclass(frozen=True)
class Unchanged:
    """The no-change `up`s of one run of the section: traced by the CLI, through the Automation API,
    Compose's; and the resources the state holds before and after."""

    traced: list[Anatomy]
    automation: list[float]
    compose: list[float]
    resources: tuple[int, int]


def measure_anatomy(standins: Standins, runs: int) -> Unchanged:
    """prod deployed once, then `runs` no-change `up`s by the CLI, each traced, and `runs` through the
    Automation API; then Compose's, `runs` times."""
    traced, automation = [], []
    with deploy("prod", standins) as deployed, tempfile.TemporaryDirectory(prefix="icb-trace-") as tmp:
        deployed.up()  # the first later `up` warms what the engine caches
        before = len(deployed.project.resources())
        for run in range(runs):
            trace = Path(tmp) / f"up-{run}.json"
            started = time.perf_counter()
            done = deployed.project.cli("up", "--yes", "--skip-preview", f"--otel-traces=file://{trace}")
            wall = time.perf_counter() - started
            assert done.returncode == 0, done.stderr[-2000:]
            traced.append(anatomy_of(trace, wall))
            print(f"no-change up {run + 1}: {wall:.2f} s, {len(traced[-1].by_name)} kinds of span", file=sys.stderr)
            started = time.perf_counter()
            deployed.up()
            automation.append(time.perf_counter() - started)
        after = len(deployed.project.resources())
    return Unchanged(traced, automation, measure_compose_unchanged(runs, standins), (before, after))


def render_anatomy(measured: Unchanged, origin: str) -> str:
    runs = measured.traced
    names = {key for run in runs for key in run.by_name}

    def typical(key: tuple[str, str]) -> tuple[float, int]:
        seconds = median([run.by_name.get(key, (0.0, 0))[0] for run in runs])
        return seconds, int(median([float(run.by_name.get(key, (0.0, 0))[1]) for run in runs]))

    ranked = sorted(names, key=lambda key: -typical(key)[0])[:SHOWN]
    wall = median([run.wall for run in runs])
    automation, compose = median(measured.automation), median(measured.compose)
    rows = [
        f"| `{name}` | {service} | {seconds:.2f} s | {seconds / wall:.0%} | {count} |"
        for name, service in ranked
        for seconds, count in [typical((name, service))]
    ]
    return "\n".join(
        [
            ANATOMY_HEADING,
            "",
            origin,
            "",
            "A prod `up` with nothing changed, by the CLI itself as an operator runs it, beside the same `up` "
            "through the Automation API (as the suite and the other sections run it: after the `up` it runs "
            "`pulumi stack output` and `pulumi stack history`, two more processes that each read the state and "
            "derive the passphrase's key) and the same prod services under Compose with nothing to do, in this "
            "same run. The state holds "
            f"{measured.resources[0]} resources before and {measured.resources[1]} after: written whole.",
            "",
            "| a prod `up` with nothing changed | wall | to Compose's |",
            "| --- | --- | --- |",
            f"| `pulumi up --yes --skip-preview` | {wall:.2f} s | {wall / compose:.2f}× |",
            f"| the same through the Automation API | {automation:.2f} s | {automation / compose:.2f}× |",
            f"| `docker compose up -d` | {compose:.2f} s | 1 |",
            "",
            f"The CLI's `up`, traced with `--otel-traces file://...`: its wall time {wall:.2f} s, of which the trace "
            f"covers {median([run.traced for run in runs]):.2f} s (the rest is the CLI's own start and exit). Per kind "
            f"of span, the {SHOWN} that cover the most: the time it covers of the `up` (overlapping spans counted "
            "once, so the rows overlap each other) and how many there were:",
            "",
            "| span | reported by | covers | of the `up` | count |",
            "| --- | --- | --- | --- | --- |",
            *rows,
            "",
        ]
    )
