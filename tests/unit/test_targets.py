"""The `--target` patterns of the operator commands select what each names, and nothing else: read
against the URNs the program registers under mocks, on one engine and on a swarm, by the rule
Pulumi's engine matches them with (`**` any run of characters, `*` any within one segment)."""

from __future__ import annotations

import re

import pytest

from infra import targets
from infra.config import load_settings
from infra.identity import PROJECT_DIR
from infra.services import services
from proof.mocks import committed_config
from tests.conftest import RunStack

SWARM = {"orchestrator": "swarm", "imageRegistry": "registry.example.com/team", "dataNodeHost": "ssh://data"}


def matches(pattern: str, urn: str) -> bool:
    """pkg/resource/deploy/deployment.go, UrnTargets.getMatcher."""
    segments = ["[^:]*".join(re.escape(part) for part in piece.split("*")) for piece in pattern.split("**")]
    return re.fullmatch(".*".join(segments), urn) is not None


def selected(patterns: list[str], urns: list[str]) -> set[str]:
    return {urn.rsplit("::", 1)[1] for urn in urns if any(matches(p, urn) for p in patterns)}


@pytest.mark.parametrize("stack", ["test", "prod"])
def test_maintenance_selects_the_router_and_its_configuration_alone(run_stack: RunStack, stack: str) -> None:
    urns = [r.urn for r in run_stack(stack).resources]
    assert selected(targets.maintenance(stack), urns) == {"router", "router-haproxy-cfg"}
    swarm = [r.urn for r in run_stack("prod", **SWARM).resources]
    assert selected(targets.maintenance("prod"), swarm) == {"router", "icb-prod-router-haproxy-cfg"}


@pytest.mark.parametrize("stack", ["dev", "test", "prod"])
def test_a_release_selects_the_image_and_every_container_that_runs_it(run_stack: RunStack, stack: str) -> None:
    run = run_stack(stack)
    runs_the_image = {
        spec.name
        for spec in services(load_settings(stack, *committed_config(stack)), PROJECT_DIR)
        if spec.image == "app"
    }
    assert runs_the_image <= set(targets.APPLICATION), "a service runs the application image but is not targeted"
    assert selected(targets.release(), [r.urn for r in run.resources]) == {"app-image", *runs_the_image}


def test_the_options_are_what_pulumi_up_takes() -> None:
    assert targets.options(["**::a", "**::b"]) == ["--target", "**::a", "--target", "**::b"]
    assert targets.main(["maintenance"]) == 2
