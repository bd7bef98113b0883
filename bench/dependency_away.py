"""While Postgres is away: a Postgres setting change and a restore of prod under the request loop,
with the router's hold off (`requestHoldSeconds 0`: the anchor, requests answered 503 at once) and
on (the default), in the same run."""

from __future__ import annotations

import functools
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.page import DEPENDENCY_AWAY_HEADING
from infra.restore import StackEngine, restore
from infra.settings import DEFAULT_REQUEST_HOLD_SECONDS
from proof.harness.cli import engine_host
from proof.harness.load import LoadLoop, LoadReport, under_load
from proof.harness.stacks import deploy
from proof.harness.standins import Standins
from proof.harness.swarm import swarm_prod

HOLD_SECONDS = DEFAULT_REQUEST_HOLD_SECONDS
ONE_ENGINE, SWARM = "one engine", "swarm"


@dataclass
class Away:
    """One change under the request loop: how long it took and what the loop saw."""

    seconds: float
    load: LoadReport

    def cells(self) -> str:
        failed = len(self.load.failed)
        return (
            f"{failed} of {len(self.load.outcomes)} | {self.load.longest_without_service():.1f} s | "
            f"{self.load.slowest():.1f} s | {self.seconds:.1f} s"
        )


@dataclass
class AwayFigures:
    setting: dict[int, Away]  # by requestHoldSeconds: a Postgres setting changed (Postgres replaced)
    restore: dict[int, Away]  # by requestHoldSeconds: scripts/restore's steps (writers stopped meanwhile)


def measure_away(prod: Any, engine: StackEngine) -> AwayFigures:
    """On a deployed prod: a Postgres setting and a restore of its newest dump, the hold off, then on."""
    setting: dict[int, Away] = {}
    restored: dict[int, Away] = {}
    taken = engine.backup("once")
    assert taken.returncode == 0, taken.stdout + taken.stderr

    def away(change: Callable[[], object]) -> Away:
        done = under_load(LoadLoop(prod, max_seconds=900, request_timeout=HOLD_SECONDS + 20), change, settle=2)
        return Away(done.took, done.load)

    def quietly(_: str) -> None:
        pass

    for hold, connections in ((0, 150), (HOLD_SECONDS, 160)):
        prod.up(requestHoldSeconds=str(hold))  # the router alone replaced
        parameters = f'["max_connections={connections}"]'
        setting[hold] = away(functools.partial(prod.up, postgresParameters=parameters))
        restored[hold] = away(lambda: restore(engine, say=quietly))
    return AwayFigures(setting, restored)


def measure_dependency_away(standins: Standins) -> dict[str, AwayFigures]:
    """On one engine, then on the three-node test swarm."""
    print("while Postgres is away: the hold off, then on; one engine, then the swarm ...", file=sys.stderr)
    figures = {}
    with deploy("prod", standins) as prod:
        figures[ONE_ENGINE] = measure_away(prod, StackEngine.of(prod.stack, engine_host()))
    with (
        tempfile.TemporaryDirectory(prefix="icb-bench-swarm-") as tmp,
        swarm_prod(standins, Path(tmp)) as on_swarm,
    ):
        figures[SWARM] = measure_away(on_swarm, StackEngine.of("prod", on_swarm.manager))
    return figures


def render_dependency_away(figures: dict[str, AwayFigures], origin: str) -> str:
    def row(where: str, what: str, away: Away) -> str:
        return f"| {where} | {what} | {away.cells()} |"

    rows, summaries = [], []
    for where, measured in figures.items():
        on, off = measured.setting[HOLD_SECONDS], measured.setting[0]
        restore_on, restore_off = measured.restore[HOLD_SECONDS], measured.restore[0]
        rows += [
            row(where, "a Postgres setting, hold off", off),
            row(where, f"a Postgres setting, hold {HOLD_SECONDS} s", on),
            row(where, "scripts/restore, hold off", restore_off),
            row(where, f"scripts/restore, hold {HOLD_SECONDS} s", restore_on),
        ]
        summaries += [
            f"{where}: with the hold, {len(on.load.failed)} requests failed where {len(off.load.failed)} did without"
            f" it (a setting), and {len(restore_on.load.failed)} where {len(restore_off.load.failed)} did (a"
            f" restore); the longest a held request waited was {on.load.slowest():.1f} s and"
            f" {restore_on.load.slowest():.1f} s, {_ratio(on, off)} and {_ratio(restore_on, restore_off)} the"
            " longest stretch without a successful answer with the hold off.",
            "",
        ]
    return "\n".join(
        [
            DEPENDENCY_AWAY_HEADING,
            "",
            origin,
            "",
            "prod (the shipped app) under the request loop through the ingress, while Postgres is away: a Postgres "
            "setting changed (`postgresParameters`; Postgres replaced, delete-first: it has one data volume) and "
            "`scripts/restore` (the writers stopped, the dump restored, migrations, the writers started). Each with "
            f"the router's hold off (`requestHoldSeconds 0`, the anchor) and on (the default, {HOLD_SECONDS} s), "
            "on one engine and on the three-node test swarm (`tests/swarm/up.sh`; there the writers are scaled to 0 "
            "and back, and Postgres's task is stopped, then started), one run:",
            "",
            "| where | what | requests failed | longest without a successful answer | longest a request took |"
            " the change |",
            "| --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
            *summaries,
        ]
    )


def _ratio(on: Away, off: Away) -> str:
    gap = off.load.longest_without_service()
    return f"{on.load.slowest() / gap:.2f}×" if gap else "(no gap without it)"
