"""How the bench reads the CLI's trace of an `up` (bench/anatomy.py): the spans of an OTLP JSON file,
and the time a kind of span covers, overlapping spans counted once."""

from __future__ import annotations

import json
from pathlib import Path

from bench.anatomy import anatomy_of, covered


def export(service: str, *spans: tuple[str, float, float]) -> str:
    """One line as the CLI's file exporter writes it."""
    return json.dumps({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"spans": [
            {"name": name, "startTimeUnixNano": str(int(start * 1e9)), "endTimeUnixNano": str(int(end * 1e9))}
            for name, start, end in spans
        ]}],
    }]})  # fmt: skip


def test_overlapping_spans_are_counted_once_and_gaps_not_at_all() -> None:
    assert covered([(0.0, 1.0), (0.5, 1.5), (3.0, 4.0)]) == 2.5
    assert covered([(1.0, 2.0), (1.2, 1.4)]) == 1.0
    assert covered([]) == 0.0


def test_a_trace_is_grouped_by_span_name_and_process(tmp_path: Path) -> None:
    trace = tmp_path / "up.json"
    lines = [
        export("pulumi-cli", ("Diff", 100.0, 100.2), ("Diff", 100.1, 100.4), ("run-program", 100.0, 101.0)),
        export("pulumi-language-python", ("Diff", 101.5, 102.0)),
    ]
    trace.write_text("\n".join(lines) + "\n")
    anatomy = anatomy_of(trace, wall=2.5)
    seconds, count = anatomy.by_name[("Diff", "pulumi-cli")]
    assert abs(seconds - 0.4) < 1e-6 and count == 2
    assert anatomy.by_name[("Diff", "pulumi-language-python")][1] == 1
    assert abs(anatomy.traced - 2.0) < 1e-6 and anatomy.wall == 2.5
