"""prod over SSH beside prod on a local engine, in one run: the first deploy, an `up` with nothing
changed and one after a source change, each by the real CLI, on the test run's remote host
(tests/remote: Debian 13, Docker 26, reached through `ssh://`) and on this machine's engine."""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.page import REMOTE_HEADING
from proof.harness.pulumi import RunResult
from proof.harness.remote import remote_prod
from proof.harness.stacks import deploy
from proof.harness.standins import Standins


@dataclass(frozen=True)
class Ups:
    """One prod's three `up`s: wall seconds, and seconds of the first spent building."""

    first: float
    first_building: float
    unchanged: float
    source: float


def _later_ups(first_result: RunResult, up: Callable[[], RunResult], app_dir: Path) -> Ups:
    started = time.perf_counter()
    up()
    unchanged = time.perf_counter() - started
    source = app_dir / "ichrisbirch" / "tasks.py"
    source.write_text(source.read_text() + f"\n# source change {uuid.uuid4()}\n")
    started = time.perf_counter()
    up()
    return Ups(first_result.seconds, first_result.build_seconds(), unchanged, time.perf_counter() - started)


def measure_remote(standins: Standins) -> tuple[Ups, Ups]:
    """(local, over SSH) for prod, one run each, the local one first."""
    print("prod on the local engine ...", file=sys.stderr)
    with deploy("prod", standins) as deployed:
        local = _later_ups(deployed.last, deployed.up, deployed.app_dir)
    print("prod over SSH on the remote host ...", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="icb-bench-remote-") as tmp, remote_prod(standins, Path(tmp)) as prod:
        remote = _later_ups(prod.first, prod.project.up, prod.app_dir)
    return local, remote


def render_remote(figures: tuple[Ups, Ups], origin: str) -> str:
    local, remote = figures

    def row(what: str, here: float, there: float) -> str:
        return f"| {what} | {here:.1f} s | {there:.1f} s | {there / here:.2f}× |"

    return "\n".join(
        [
            REMOTE_HEADING,
            "",
            origin,
            "",
            "prod (the shipped app) deployed by the real CLI on this machine's engine, then on the test run's "
            "remote host through `dockerHost: ssh://deploy@<address>` (tests/remote: Debian 13's Docker 26 in "
            "namespaces of its own on a bridge of this machine, so the network adds little; the image built by "
            "that host's engine from a context sent over SSH). Each `up` over SSH also pays the program's check "
            "that the host answers (one `ssh ... docker version`). The local engine is the suite's (Debian 12's "
            "Docker 20.10), so the ratio holds the two engines' difference too:",
            "",
            "| prod | local engine | over SSH | over SSH / local |",
            "| --- | --- | --- | --- |",
            row("first deploy (the CLI's `up`, to every container healthy)", local.first, remote.first),
            row("of it building the image", local.first_building, remote.first_building),
            row("`up` with nothing changed", local.unchanged, remote.unchanged),
            row("`up` after a source change (build, create-first rollout)", local.source, remote.source),
            "",
        ]
    )
