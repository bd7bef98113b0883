"""A Swarm service read back as the provider's Read flattens it (proof/provider/handlers/service_spec.py),
diffed against the program's inputs: every prod service of the swarm stack reads back as declared,
so the second `up` touches nothing, and the diffs the read-back exists to catch are caught.

The daemon's view is made from the program's own inputs: the spec as the provider sends it, with
what the daemon and the Docker client add (ForceUpdate, the runtime, the isolation, the platforms
the registry query writes, the live endpoint). The integration test proves the same on the swarm.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from proof import provider
from proof.mocks import TEST_SECRETS, ProgramMocks, Run, committed_config, run_program
from proof.provider import SERVICE, reveal
from proof.provider.handlers.service_spec import from_engine, to_engine

IGNORED = ["taskSpec.placement.platforms"]


@pytest.fixture(scope="module")
def swarm() -> Run:
    overrides = {
        "orchestrator": "swarm",
        "imageRegistry": "registry.example.com:5000/team",
        "dataNodeHost": "ssh://deploy@data-node",
        "domain": "example.org",
    }
    config, secret_keys = committed_config("prod", overrides, secrets=TEST_SECRETS)
    return run_program("prod", config, secret_keys, ProgramMocks())


def daemon_view(inputs: dict[str, Any]) -> dict[str, Any]:
    """`docker service inspect` of a service created from `inputs`."""
    spec = to_engine(reveal(inputs))
    task = spec["TaskTemplate"]
    task["ForceUpdate"] = 0
    task["Runtime"] = "container"
    task["ContainerSpec"]["Isolation"] = "default"
    task.setdefault("Placement", {})["Platforms"] = [{"Architecture": "amd64", "OS": "linux"}]
    task["RestartPolicy"]["MaxAttempts"] = 0
    endpoint = spec["EndpointSpec"]
    live = {"Spec": {"Mode": endpoint["Mode"]}, "Ports": endpoint["Ports"]}
    return {"ID": "service-id", "Spec": spec, "Endpoint": live}


def read_back(inputs: dict[str, Any]) -> dict[str, Any]:
    return {"convergeConfig": inputs.get("convergeConfig"), **from_engine(daemon_view(inputs))}


def planned(state: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs as the engine and the bridge diff them, with the program's ignore_changes."""
    return provider.with_ignored(state, dict(inputs), IGNORED)


def test_every_service_reads_back_as_the_program_declares_it(swarm: Run) -> None:
    services = swarm.of_type(SERVICE)
    assert len(services) == 8
    for name, registration in services.items():
        assert registration.ignore_changes == IGNORED, name
        state = read_back(registration.inputs)
        assert state["taskSpec"]["placement"]["platforms"] == [{"architecture": "amd64", "os": "linux"}]
        diff = provider.diff_fields(SERVICE, state, planned(state, registration.inputs), [])
        assert diff.kind == "same", f"{name}: {diff.changed}"


def test_without_ignoring_the_platforms_every_service_would_update(swarm: Run) -> None:
    for name, registration in swarm.of_type(SERVICE).items():
        state = read_back(registration.inputs)
        diff = provider.diff_fields(SERVICE, state, registration.inputs, [])
        assert diff.kind == "update" and diff.changed == ("taskSpec",), f"{name}: {diff}"


def test_a_tmpfs_mode_with_more_than_permission_bits_would_show_on_every_up(swarm: Run) -> None:
    """Read writes `Mode.Perm()`: 0o1777 comes back as 0o777, a change the program would never lose."""
    router = swarm.of_type(SERVICE)["router"]
    inputs = copy.deepcopy(reveal(router.inputs))
    tmpfs = [m for m in inputs["taskSpec"]["containerSpec"]["mounts"] if m["type"] == "tmpfs"]
    assert tmpfs and all(m["tmpfsOptions"]["mode"] == 0o777 for m in tmpfs), "the program writes permission bits"
    tmpfs[0]["tmpfsOptions"]["mode"] = 0o1777
    state = read_back(inputs)
    assert state["taskSpec"]["containerSpec"]["mounts"][0]["tmpfsOptions"]["mode"] == 0o777
    assert provider.diff_fields(SERVICE, state, planned(state, inputs), []).kind == "update"


def test_a_network_known_by_name_only_would_replace_the_service(swarm: Run) -> None:
    """Read writes each network's id, never a name: a network given by name differs every time."""
    api = swarm.of_type(SERVICE)["api"]
    inputs = copy.deepcopy(reveal(api.inputs))
    state = read_back(inputs)
    network = inputs["taskSpec"]["networksAdvanceds"][0]
    inputs["taskSpec"]["networksAdvanceds"][0] = {"name": "icb-prod", "aliases": network.get("aliases", [])}
    diff = provider.diff_fields(SERVICE, state, planned(state, inputs), [])
    assert diff.kind == "replace" and "taskSpec.networksAdvanceds" in diff.replaces


def test_a_changed_replica_count_is_an_update_in_place(swarm: Run) -> None:
    api = swarm.of_type(SERVICE)["api"]
    state = read_back(api.inputs)
    inputs = copy.deepcopy(reveal(api.inputs))
    inputs["mode"]["replicated"]["replicas"] += 1
    diff = provider.diff_fields(SERVICE, state, planned(state, inputs), [])
    assert diff.kind == "update" and diff.changed == ("mode",)
