"""Maintenance (scripts/ops <stack> maintenance on|off): the router alone answers every request with
a 503 page and Retry-After; only a stack with an ingress can be put in it; the page's message is
checked before anything is created."""

from __future__ import annotations

import re

import pytest

from infra.config import ConfigError
from proof.mocks import Run
from tests.conftest import RunStack
from tests.unit.registrations import config_of, containers


def frontend(config: str, name: str) -> list[str]:
    body = config.split(f"frontend {name}\n", 1)[1].split("\n\n", 1)[0]
    return [line.strip() for line in body.splitlines() if line.strip() and not line.strip().startswith("#")]


def inputs_but_router(run: Run) -> dict[str, object]:
    return {name: c.inputs for name, c in containers(run).items() if not name.startswith("router")}


def test_in_maintenance_the_router_answers_everything_with_the_page(run_stack: RunStack) -> None:
    config = config_of(run_stack("prod", maintenance="true", maintenanceMessage="Back at 14:00 <UTC>"), "router")
    lines = frontend(config, "https")
    returned = [line for line in lines if line.startswith("http-request return status 503")]
    assert len(returned) == 1 and "Back at 14:00 &lt;UTC&gt;" in returned[0], lines
    assert lines.index(returned[0]) < min(i for i, line in enumerate(lines) if line.startswith("use_backend")), lines
    assert re.search(r"hdr Retry-After \d+", config), config
    assert "monitor-uri /healthz" in config, "the router's own health stays up: it is serving the page"


def test_the_switch_changes_the_router_alone(run_stack: RunStack) -> None:
    serving, maintenance = run_stack("prod"), run_stack("prod", maintenance="true")
    assert not [line for line in frontend(config_of(serving, "router"), "https") if "http-request return" in line]
    assert config_of(serving, "router") != config_of(maintenance, "router")
    assert inputs_but_router(serving) == inputs_but_router(maintenance)


@pytest.mark.parametrize(
    ("stack", "change", "key", "message"),
    [
        ("dev", {"maintenance": "true"}, "maintenance", "the dev environment runs no ingress"),
        ("prod", {"maintenanceMessage": 'say "hi"'}, "maintenanceMessage", "String should match pattern"),
        ("prod", {"maintenanceMessage": "x" * 201}, "maintenanceMessage", "at most 200 characters"),
    ],
)
def test_a_bad_maintenance_setting_is_refused(
    run_stack: RunStack, stack: str, change: dict[str, str], key: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=rf"stack '{stack}'(.|\n)*ichrisbirch:{key}: .*{re.escape(message)}"):
        run_stack(stack, **change)
