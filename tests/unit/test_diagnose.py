"""Why a failed `up` failed (infra/diagnose.py), from what `docker inspect` reports, and that every
operator command that runs `pulumi up` goes through it."""

from __future__ import annotations

import re
from typing import Any

import pytest

from infra import diagnose, ops, targets
from infra.identity import PROJECT_DIR
from infra.stack_state import StackState


def inspected(status: str, health: str | None = None, exit_code: int = 0, probes: int = 0) -> dict[str, Any]:
    state: dict[str, Any] = {"Status": status, "ExitCode": exit_code}
    if health:
        log = [{"ExitCode": 1, "Output": f"api: unhealthy: probe {n}\nanswered 500\n"} for n in range(probes)]
        state["Health"] = {"Status": health, "Log": log}
    return {"Name": "/icb-prod-api-1a2b3c4", "State": state, "Config": {"Labels": {"ichrisbirch.service": "api"}}}


@pytest.mark.parametrize(
    ("container", "said"),
    [
        (inspected("running", "unhealthy", probes=5), "unhealthy"),
        (inspected("running", "starting", probes=2), "still starting, its health check not yet passed"),
        (inspected("restarting"), "restarting"),
        (inspected("exited", exit_code=1), "exited with code 1"),
        (inspected("running", "healthy"), None),
        (inspected("running"), None),  # no health check: running is all it can say
        (inspected("exited"), None),  # a one-shot that succeeded
        (inspected("created"), None),  # a holder of a file, never started
    ],
)
def test_a_container_is_named_only_when_something_is_wrong(container: dict[str, Any], said: str | None) -> None:
    assert diagnose.condition(container) == said


def test_the_last_three_probes_oldest_first_each_on_one_line() -> None:
    probes = diagnose.last_probes(inspected("running", "unhealthy", probes=5))
    assert probes == tuple(f"exit 1: api: unhealthy: probe {n} answered 500" for n in (2, 3, 4))


def test_a_trouble_reads_as_the_operator_sees_it() -> None:
    trouble = diagnose.Trouble(
        "icb-prod-api-1a2b3c4", "api", "unix:///var/run/docker.sock", "unhealthy", ("exit 1: answered 500",),
        "".join(f"line {n}\n" for n in range(30)),
    )  # fmt: skip
    lines = trouble.lines()
    assert lines[:3] == [
        "why: icb-prod-api-1a2b3c4 (service api) is unhealthy; its last 1 health probes:",
        "why:   exit 1: answered 500",
        "why: the last 20 lines of its log:",
    ]
    assert lines[3] == "why:   | line 10" and lines[-1] == "why:   | line 29" and len(lines) == 23


@pytest.mark.parametrize("script", ["scripts/deploy", "scripts/rollback"])
def test_the_operators_pulumi_up_goes_through_the_explanation(script: str) -> None:
    text = (PROJECT_DIR / script).read_text()
    commands = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert any("python -m infra.diagnose up" in line for line in commands), script
    assert not any(re.search(r"(^|\s)pulumi up\b", line) for line in commands), f"{script} runs a bare `pulumi up`"


def test_maintenance_runs_its_up_through_the_explanation_on_the_router_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    config_set: list[tuple[str, ...]] = []
    ups: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(ops, "pulumi", lambda *args, **_: config_set.append(args))

    def up(stack: str, options: list[str]) -> int:
        ups.append((stack, list(options)))
        return 0

    monkeypatch.setattr(diagnose, "up", up)
    assert ops.maintenance(StackState("prod", []), "on", "Back soon") == 0
    assert ("config", "set", "maintenance", "true", "--stack", "prod") in config_set
    ((stack, options),) = ups
    targeted = [options[i + 1] for i, option in enumerate(options) if option == "--target"]
    assert stack == "prod" and targeted == targets.maintenance("prod"), options
    assert {"--yes", "--skip-preview"} <= set(options)
