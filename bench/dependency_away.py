"""While Postgres is away: a Postgres setting change and a restore of prod under the request loop,
with the router's hold off (`requestHoldSeconds 0`: the anchor, requests answered 503 at once) and
on (the default), in the same run."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass

from bench.page import DEPENDENCY_AWAY_HEADING
from infra.restore import StackEngine, restore
from infra.settings import DEFAULT_REQUEST_HOLD_SECONDS
from proof.harness.cli import engine_host
from proof.harness.load import LoadLoop, LoadReport, under_load
from proof.harness.stacks import deploy
from proof.harness.standins import Standins

HOLD_SECONDS = DEFAULT_REQUEST_HOLD_SECONDS


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


def measure_dependency_away(standins: Standins) -> AwayFigures:
    print("while Postgres is away: the hold off, then on ...", file=sys.stderr)
    setting: dict[int, Away] = {}
    restored: dict[int, Away] = {}
    with deploy("prod", standins) as prod:
        engine = StackEngine.of(prod.stack, engine_host())
        taken = engine.backup("once")
        assert taken.returncode == 0, taken.stdout + taken.stderr

        def away(change: Callable[[], object]) -> Away:
            done = under_load(LoadLoop(prod, request_timeout=HOLD_SECONDS + 20), change, settle=2)
            return Away(done.took, done.load)

        def quietly(_: str) -> None:
            pass

        for hold, connections in ((0, 150), (HOLD_SECONDS, 160)):
            prod.up(requestHoldSeconds=str(hold))  # the router alone replaced
            parameters = f'["max_connections={connections}"]'
            setting[hold] = away(functools.partial(prod.up, postgresParameters=parameters))
            restored[hold] = away(lambda: restore(engine, say=quietly))
    return AwayFigures(setting, restored)


def render_dependency_away(figures: AwayFigures, origin: str) -> str:
    on, off = figures.setting[HOLD_SECONDS], figures.setting[0]
    restore_on, restore_off = figures.restore[HOLD_SECONDS], figures.restore[0]

    def row(what: str, away: Away) -> str:
        return f"| {what} | {away.cells()} |"

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
            "one run:",
            "",
            "| what | requests failed | longest without a successful answer | longest a request took | the change |",
            "| --- | --- | --- | --- | --- |",
            row("a Postgres setting, hold off", off),
            row(f"a Postgres setting, hold {HOLD_SECONDS} s", on),
            row("scripts/restore, hold off", restore_off),
            row(f"scripts/restore, hold {HOLD_SECONDS} s", restore_on),
            "",
            f"With the hold, {len(on.load.failed)} requests failed where {len(off.load.failed)} did without it "
            f"(a setting), and {len(restore_on.load.failed)} where {len(restore_off.load.failed)} did (a restore); "
            f"the longest a held request waited was {on.load.slowest():.1f} s and "
            f"{restore_on.load.slowest():.1f} s, {_ratio(on, off)} and {_ratio(restore_on, restore_off)} "
            "the longest stretch without a successful answer with the hold off.",
            "",
        ]
    )


def _ratio(on: Away, off: Away) -> str:
    gap = off.load.longest_without_service()
    return f"{on.load.slowest() / gap:.2f}×" if gap else "(no gap without it)"
