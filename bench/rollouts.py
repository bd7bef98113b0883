"""A prod update under the request loop: create-first (ours), delete-first and `docker compose up -d`
on one engine, and rolling updates on the test swarm."""

from __future__ import annotations

import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.compose import compose_stack
from bench.page import ON_THE_MODEL, ROLLOUT_HEADING, SWARM_API_REPLICAS, SWARM_HEADING, median
from proof.harness.load import LoadLoop, LoadReport, under_load
from proof.harness.stacks import bump_version, changed_all, deploy, program_with
from proof.harness.standins import Standins
from proof.harness.swarm import swarm_prod


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
    change()
    done = under_load(LoadLoop(deployed, max_seconds=max_seconds), up, settle=2)
    return Rollout.of(done.load, done.took)


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
