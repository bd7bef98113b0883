"""Figures a run measured (image sizes, times to healthy, failed requests), printed at its end:
the suite's terminal summary and the benchmark both read them."""

from __future__ import annotations

FIGURES: list[str] = []


def report(line: str) -> None:
    """A figure to print at the end of the run (image sizes, build times, time to healthy)."""
    FIGURES.append(line)
