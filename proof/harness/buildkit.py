"""Reading BuildKit's plain progress output: which RUN/COPY steps ran and which came from the cache."""

from __future__ import annotations

import re

# "#12 [builder 5/6] COPY ichrisbirch ./ichrisbirch", or "#7 [3/4] RUN ..." in an unnamed stage.
_STEP = re.compile(r"^#(\d+) \[(?:[^\]]+ )?\d+/\d+\] ((?:RUN|COPY) .*)$")
_CACHED = re.compile(r"^#(\d+) CACHED$")


def step_states(log: str) -> dict[str, str]:
    """{step text: "CACHED" | "RAN"} for every RUN and COPY step of a build."""
    names: dict[str, str] = {}
    states: dict[str, str] = {}
    for line in log.splitlines():
        if started := _STEP.match(line):
            names[started.group(1)] = started.group(2)
            states.setdefault(started.group(1), "RAN")
        elif cached := _CACHED.match(line):
            states[cached.group(1)] = "CACHED"
    return {names[n]: state for n, state in states.items() if n in names}
