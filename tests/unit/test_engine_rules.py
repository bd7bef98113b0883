"""Each rule of the engine stand-in (proof/engine/rules.py) on a small program that is not the
application, with in-memory handlers in place of Docker: what runs, in which order, what state keeps.

The handlers log every provider call; the tests read the order of those calls, as the real engine's
would be seen from the provider's side.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pulumi_docker as docker
import pytest

from proof import provider
from proof.engine import rules
from proof.engine.engine import Engine
from proof.engine.handlers.base import Docker, Handler
from proof.engine.report import DeploymentError, UpFailed, UpResult
from proof.engine.state import Resource
from proof.provider import CONTAINER, NETWORK, PROVIDER, VOLUME


class Memory(Handler):
    """A resource type kept in memory: each call logged as "<call> <physical name>"."""

    def __init__(self, log: list[str], failures: dict[str, str]) -> None:
        self.log, self.failures = log, failures

    def create(self, resource: Resource, inputs: dict[str, Any], engine: Docker) -> tuple[str, dict[str, Any]]:
        name = str(inputs.get("name", resource.name))
        self.log.append(f"create {name}")
        failure = self.failures.get(resource.name)
        if failure == "no object":
            raise DeploymentError(f"{name}: refused")
        if failure == "partial":  # the object exists, then its health wait times out
            resource.id, resource.state, resource.init_error = f"id-{name}", dict(inputs), "unhealthy"
            raise DeploymentError(f"{name}: not healthy")
        return f"id-{name}", dict(inputs)

    def update(
        self, old: Resource, inputs: dict[str, Any], diff: provider.Diff, engine: Docker
    ) -> tuple[str, dict[str, Any], str]:
        self.log.append(f"update {old.state.get('name', old.name)}")
        return old.id, {**old.state, **provider.reveal(inputs)}, ""

    def delete(self, resource: Resource, inputs: dict[str, Any], engine: Docker) -> None:
        self.log.append(f"delete {resource.state.get('name', resource.name)}")


class AutonamedMemory(Memory):
    autonamed = True


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        self.log: list[str] = []
        self.failures: dict[str, str] = {}
        handlers: dict[str, Handler] = {
            NETWORK: Memory(self.log, self.failures),
            VOLUME: Memory(self.log, self.failures),
            CONTAINER: AutonamedMemory(self.log, self.failures),
            PROVIDER: Memory([], {}),
        }
        self.engine = Engine(tmp_path / "state.json", handlers, tmp_path)

    def up(self, program: Callable[[], None], replace: tuple[str, ...] = ()) -> UpResult:
        self.log.clear()
        return self.engine.up("dev", {}, set(), program=program, replace=replace)

    def fails(self, program: Callable[[], None]) -> UpResult:
        self.log.clear()
        with pytest.raises(UpFailed) as failure:
            self.engine.up("dev", {}, set(), program=program)
        return failure.value.result

    def state(self, name: str) -> Resource:
        return next(r for r in self.engine.resources.values() if r.name == name)


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def label(value: pulumi.Input[str]) -> list[docker.ContainerLabelArgs]:
    return [docker.ContainerLabelArgs(label="from", value=value)]


def app(
    db_label: str = "v1", *, api_first: bool = True, api_label: str = "a1", protect_api: bool = False
) -> Callable[[], None]:
    """db (a named network: replaced delete-first), api (a container taking db's id in a label),
    worker (after api by depends_on only)."""

    def program() -> None:
        db = docker.Network("db", name="db-net", labels=[docker.NetworkLabelArgs(label="v", value=db_label)])
        api = docker.Container(
            "api", image="img", labels=[*label(db.id), docker.ContainerLabelArgs(label="v", value=api_label)],
            opts=pulumi.ResourceOptions(delete_before_replace=not api_first, protect=protect_api),
        )  # fmt: skip
        docker.Container("worker", image="img", opts=pulumi.ResourceOptions(depends_on=[api]))

    return program


def test_property_dependencies_are_recorded_per_input_and_kept_in_state(h: Harness) -> None:
    h.up(app())
    api, db = h.state("api"), h.state("db")
    assert api.property_dependencies == {"labels": [db.urn]}
    assert h.state("worker").property_dependencies == {} and api.urn in h.state("worker").dependencies


def test_a_delete_first_replacement_deletes_its_dependents_first_whatever_their_mode(h: Harness) -> None:
    """calculateDependentReplacements: api (create-first by its option) goes before db; worker
    (depends_on only) stays."""
    h.up(app())
    api_name = h.state("api").state["name"]
    result = h.up(app(db_label="v2"))
    assert h.log[:3] == [f"delete {api_name}", "delete db-net", "create db-net"], h.log
    assert result.ops()["api"] == "replace" and result.ops()["worker"] == "same"
    assert "worker" not in " ".join(h.log)


def test_a_protected_dependent_stops_the_update_naming_both(h: Harness) -> None:
    h.up(app(protect_api=True))
    result = h.fails(app(db_label="v2", protect_api=True))
    assert "Container api is protected and would be replaced with db" in str(result.error)
    assert h.log == [], "nothing was deleted"


def test_deleted_with_cascades_and_goes_without_a_call_of_its_own(h: Harness) -> None:
    def program(version: str) -> Callable[[], None]:
        def run() -> None:
            net = docker.Network("net", name="net", labels=[docker.NetworkLabelArgs(label="v", value=version)])
            docker.Volume("cache", name="cache", opts=pulumi.ResourceOptions(deleted_with=net))

        return run

    h.up(program("1"))
    assert h.state("cache").deleted_with == h.state("net").urn
    result = h.up(program("2"))
    assert "delete cache" not in h.log and h.log[:2] == ["delete net", "create net"], h.log
    assert result.ops()["cache"] == "replace"  # deleted with net, created again when it registered


def test_pending_deletes_run_at_the_end_of_the_next_update_and_only_if_it_succeeds(h: Harness) -> None:
    h.up(app())
    old = h.state("api").state["name"]
    h.failures["api"] = "partial"
    h.fails(app(api_label="a2"))  # create-first: the new api exists but failed; the old one serves
    assert f"delete {old}" not in h.log
    assert [r.state["name"] for r in h.engine.store.pending_deletes] == [old]
    h.failures["api"] = "no object"
    h.fails(app(api_label="a3"))  # a failed update deletes nothing, pending included
    assert f"delete {old}" not in h.log and len(h.engine.store.pending_deletes) == 1
    h.failures.clear()
    result = h.up(app(api_label="a3"))
    # At the end, after every create (with the failed api of the second run, replaced in this one).
    assert h.log[0].startswith("create api-") and f"delete {old}" in h.log[1:], h.log
    assert result.pending_deleted() == {"api"} and h.engine.store.pending_deletes == []


def test_a_create_that_made_no_object_marks_nothing_pending(h: Harness) -> None:
    h.up(app())
    h.failures["api"] = "no object"
    h.fails(app(api_label="a2"))
    assert h.engine.store.pending_deletes == []
    assert h.state("api").inputs["labels"][1]["value"] == "a1"  # the old api is still the state's


def test_no_step_starts_after_a_failure(h: Harness) -> None:
    def program() -> None:
        first = docker.Volume("first", name="first")
        docker.Volume("second", name="second", opts=pulumi.ResourceOptions(depends_on=[first]))

    h.failures["first"] = "no object"
    result = h.fails(program)
    assert h.log == ["create first"]
    assert "second" not in result.ops()


def test_protect_refuses_a_replacement_only_when_old_and_new_are_protected(h: Harness) -> None:
    def program(version: str, protect: bool) -> Callable[[], None]:
        return lambda: docker.Network(
            "data", name="data", labels=[docker.NetworkLabelArgs(label="v", value=version)],
            opts=pulumi.ResourceOptions(protect=protect),
        )  # fmt: skip

    h.up(program("1", True))
    assert "is protected and would be replaced" in str(h.fails(program("2", True)).error)
    assert h.up(program("2", False)).ops()["data"] == "replace"  # unprotect and replace in one update


def test_an_autonamed_resource_keeps_its_name_on_update_and_gets_a_new_one_on_replacement(h: Harness) -> None:
    def program(memory: int, image: str) -> Callable[[], None]:
        return lambda: docker.Container("c", image=image, memory=memory)

    h.up(program(64, "img"))
    first = h.state("c").state["name"]
    assert first.startswith("c-")
    assert h.up(program(128, "img")).ops()["c"] == "update"
    assert h.state("c").state["name"] == first
    h.up(program(128, "img2"))
    replaced = h.state("c").state["name"]
    assert replaced != first and replaced.startswith("c-")
    h.up(program(128, "img2"), replace=("c",))  # --replace: a new name again
    assert h.state("c").state["name"] not in (first, replaced)


def test_ignore_changes_keeps_the_recorded_value(h: Harness) -> None:
    def program(version: str) -> Callable[[], None]:
        return lambda: docker.Network(
            "n", name="n", labels=[docker.NetworkLabelArgs(label="v", value=version)],
            opts=pulumi.ResourceOptions(ignore_changes=["labels"]),
        )  # fmt: skip

    h.up(program("1"))
    assert h.up(program("2")).ops()["n"] == "same"


def test_after_a_partial_failure_the_next_run_updates_and_sends_nothing(h: Harness) -> None:
    h.failures["v"] = "partial"
    h.fails(lambda: docker.Volume("v", name="v"))
    assert h.state("v").init_error
    h.failures.clear()
    result = h.up(lambda: docker.Volume("v", name="v"))
    assert result.ops()["v"] == "update" and h.log == []
    assert "after a failed create" in result.preview()
    assert not h.state("v").init_error


def test_a_resource_the_program_no_longer_declares_is_deleted_at_the_end_dependents_first(h: Harness) -> None:
    h.up(app())
    api, worker = h.state("api").state["name"], h.state("worker").state["name"]
    h.up(lambda: docker.Volume("other", name="other"))
    assert h.log == ["create other", f"delete {worker}", f"delete {api}", "delete db-net"], h.log


def test_an_ignored_nested_path_takes_the_recorded_value_or_is_left_out() -> None:

    recorded = {"taskSpec": {"placement": {"constraints": ["a"], "platforms": [{"os": "linux"}]}}}
    given = {"taskSpec": {"placement": {"constraints": ["b"]}}, "name": "s"}
    planned = rules.ignored_in_diff(recorded, given, ["taskSpec.placement.platforms"])
    assert planned == {"taskSpec": {"placement": {"constraints": ["b"], "platforms": [{"os": "linux"}]}}, "name": "s"}
    assert given == {"taskSpec": {"placement": {"constraints": ["b"]}}, "name": "s"}, "the inputs are not changed"
    assert rules.ignored_in_diff({}, planned, ["taskSpec.placement.platforms"]) == given
    assert rules.ignored_in_diff({}, given, ["absent.path"]) == given
