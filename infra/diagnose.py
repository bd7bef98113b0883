"""Why an `up` failed, told to the operator beside Pulumi's own error.

When a container never gets healthy, the docker provider fails the `up` with "container ... failed
to be in healthy state" and nothing of what its health probe answered or what it logged. The
operator's commands (scripts/deploy, scripts/rollback, scripts/ops maintenance) run `pulumi up`
through `up()` here: when it fails, each container of the stack that is not healthy (unhealthy,
still starting, restarting, or exited with an error) is named with its service, its last health
probes (exit code and output) and the tail of its logs.

    python -m infra.diagnose up <stack> [pulumi up options]   # `pulumi up --stack <stack> ...`, explained on failure
    python -m infra.diagnose why <stack>                      # the explanation alone
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from infra.engine import Engine
from infra.identity import PROJECT_DIR
from infra.stack_state import OpsError, StackState

PROBES_SHOWN = 3  # Docker keeps the last five
LOG_LINES = 20


@dataclass(frozen=True)
class Trouble:
    """A container of the stack that is not healthy, as its engine reports it."""

    name: str
    service: str
    host: str
    state: str  # "unhealthy", "starting", "restarting", "exited with code 1", ...
    probes: tuple[str, ...]  # the last health probes, oldest first: "exit 1: <output>"
    logs: str

    def lines(self) -> list[str]:
        head = f"why: {self.name} (service {self.service}) is {self.state}"
        found = [head + (f"; its last {len(self.probes)} health probes:" if self.probes else "")]
        found += [f"why:   {probe}" for probe in self.probes]
        tail = self.logs.rstrip().splitlines()[-LOG_LINES:]
        found.append(f"why: the last {len(tail)} lines of its log:" if tail else "why: its log is empty")
        found += [f"why:   | {line}" for line in tail]
        return found


def engines(stack: str) -> list[Engine]:
    """The engines the stack's containers run on: its providers', as the state records them; before
    there is a state, the one the program would use (the stack's dockerHost, with its dockerSshOpts)."""
    try:
        return sorted(set(StackState.load(stack).engines().values()), key=str)
    except OpsError:
        return [Engine.configured(stack)]


def condition(inspected: dict[str, Any]) -> str | None:
    """What is wrong with a container, from `docker inspect`; None when nothing is."""
    state = inspected["State"]
    health = (state.get("Health") or {}).get("Status")
    if state["Status"] == "restarting":
        return "restarting"
    if state["Status"] in ("exited", "dead") and state.get("ExitCode"):
        return f"exited with code {state['ExitCode']}"
    if state["Status"] == "running" and health == "unhealthy":
        return "unhealthy"
    if state["Status"] == "running" and health == "starting":
        return "still starting, its health check not yet passed"
    return None  # healthy, running without a check, a one-shot that succeeded, a holder never started


def last_probes(inspected: dict[str, Any]) -> tuple[str, ...]:
    """The last health probes, oldest first, each as "exit <code>: <its output on one line>"."""
    log = (inspected["State"].get("Health") or {}).get("Log") or []
    return tuple(
        f"exit {p.get('ExitCode')}: {' '.join(str(p.get('Output') or '').split())[:300]}" for p in log[-PROBES_SHOWN:]
    )


def trouble_of(engine: Engine, inspected: dict[str, Any]) -> Trouble | None:
    what = condition(inspected)
    if what is None:
        return None
    name = str(inspected["Name"]).lstrip("/")
    logs = engine.run("logs", "--tail", str(LOG_LINES), name)
    labels = inspected["Config"].get("Labels") or {}
    service = labels.get("ichrisbirch.service", "?")
    return Trouble(name, service, engine.host, what, last_probes(inspected), logs.stdout + logs.stderr)


def troubles(stack: str) -> list[Trouble]:
    found = []
    for engine in engines(stack):
        listed = engine.run("ps", "-aq", "--filter", f"label=ichrisbirch.stack={stack}")
        ids = listed.stdout.split()
        if listed.returncode != 0 or not ids:
            continue
        for inspected in json.loads(engine.run("container", "inspect", *ids).stdout or "[]"):
            trouble = trouble_of(engine, inspected)
            if trouble:
                found.append(trouble)
    return sorted(found, key=lambda t: (t.service, t.name))


def explain(stack: str) -> list[str]:
    try:
        found = troubles(stack)
    except (OpsError, OSError, ValueError) as error:
        return [f"why: the {stack} stack's containers could not be read: {error}"]
    if not found:
        return [f"why: every container of the {stack} stack is healthy or finished cleanly"]
    return [line for trouble in found for line in trouble.lines()]


def up(stack: str, options: Sequence[str]) -> int:
    """`pulumi up --stack <stack> <options>`, its output the operator's; on failure, why."""
    code = subprocess.call(["pulumi", "up", "--stack", stack, *options], cwd=PROJECT_DIR)
    if code != 0:
        print("\n".join(explain(stack)), file=sys.stderr, flush=True)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) >= 2 and args[0] == "up":
        return up(args[1], args[2:])
    if len(args) == 2 and args[0] == "why":
        print("\n".join(explain(args[1])))
        return 0
    print("usage: python -m infra.diagnose up <stack> [pulumi up options] | why <stack>", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
