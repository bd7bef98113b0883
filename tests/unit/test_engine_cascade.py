"""The engine's delete-first cascade (step_generator.go, calculateDependentReplacements), as the
engine stand-in decides it (proof/engine/rules.py), on a small made-up state that is not the application's."""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet

import pytest

from proof.engine import DeploymentError, Resource
from proof.engine.rules import deletion_order, dependent_replacements
from proof.provider import CONTAINER, IMAGE, NETWORK, VOLUME, replaced_by_unknowns


def urn(name: str) -> str:
    return f"urn:pulumi:s::p::t::{name}"


def resource(
    name: str,
    type_token: str = CONTAINER,
    *,
    takes: dict[str, list[str]] | None = None,  # input -> the resources its value comes from
    after: Sequence[str] = (),  # depends_on only
    protect: bool = False,
    replace_on_changes: Sequence[str] = (),
) -> Resource:
    property_dependencies = {key: [urn(n) for n in names] for key, names in (takes or {}).items()}
    dependencies = sorted({u for urns in property_dependencies.values() for u in urns} | {urn(n) for n in after})
    return Resource(
        type_token, name, urn(name), f"id-{name}", {}, {}, dependencies, protect,
        property_dependencies=property_dependencies, replace_on_changes=list(replace_on_changes),
    )  # fmt: skip


def state(*resources: Resource) -> dict[str, Resource]:
    return {r.urn: r for r in resources}


def cascade(resources: dict[str, Resource], replaced: str, registered: AbstractSet[str] = frozenset()) -> list[str]:
    return [r.name for r in dependent_replacements(resources, resources[urn(replaced)], set(registered))]


def test_a_replace_forcing_input_taken_from_the_replaced_resource_cascades() -> None:
    resources = state(resource("db"), resource("gate", takes={"labels": ["db"]}))
    assert cascade(resources, "db") == ["gate"]


def test_the_cascade_is_transitive_whatever_each_dependents_own_mode() -> None:
    resources = state(
        resource("db"),
        resource("migrate", takes={"labels": ["db"]}),
        resource("api", takes={"labels": ["migrate"]}),  # create-first or not: it goes first
        resource("app", takes={"envs": ["api"]}),
    )
    assert cascade(resources, "db") == ["migrate", "api", "app"]


def test_depends_on_alone_never_cascades() -> None:
    resources = state(resource("db"), resource("api", after=["db"]), resource("app", takes={"envs": ["api"]}))
    assert cascade(resources, "db") == []


def test_an_input_the_provider_updates_in_place_does_not_cascade() -> None:
    # `restart` and `memory` are updated through the engine's API; `wait_timeout` only in state.
    resources = state(
        resource("db"), resource("api", takes={"restart": ["db"], "memory": ["db"], "waitTimeout": ["db"]})
    )
    assert cascade(resources, "db") == []


def test_replace_on_changes_makes_an_updatable_input_cascade() -> None:
    resources = state(
        resource("db"), resource("api", takes={"healthcheck": ["db"]}, replace_on_changes=["healthcheck"])
    )
    assert cascade(resources, "db") == ["api"]


def test_a_resource_already_registered_in_this_update_is_left() -> None:
    resources = state(resource("db"), resource("gate", takes={"labels": ["db"]}))
    assert cascade(resources, "db", registered={urn("gate")}) == []


def test_a_protected_dependent_stops_the_update_naming_both() -> None:
    resources = state(resource("net", NETWORK), resource("data", VOLUME, takes={"labels": ["net"]}, protect=True))
    with pytest.raises(DeploymentError, match=r"Volume data is protected and would be replaced with net \(its labels"):
        cascade(resources, "net")


def test_the_deletes_rundeletion_order() -> None:
    resources = state(
        resource("db"),
        resource("migrate", takes={"labels": ["db"]}),
        resource("api", takes={"labels": ["migrate"]}),
    )
    deleted = deletion_order(dependent_replacements(resources, resources[urn("db")], set()))
    assert [r.name for r in deleted] == ["api", "migrate"]


def test_the_old_and_new_halves_of_one_urn_are_ordered_apart() -> None:
    old, new = resource("api"), resource("api")
    new.id = "id-api-new"
    app = resource("app", after=["api"])
    ordered = deletion_order([old, new, app])
    assert ordered[0] is app and {id(r) for r in ordered[1:]} == {id(old), id(new)}


@pytest.mark.parametrize(
    ("type_token", "unknown", "forcing"),
    [
        (CONTAINER, ["labels", "restart"], ("labels",)),
        (CONTAINER, ["memory"], ()),
        (IMAGE, ["build"], ()),  # the native Image rebuilds in place, never replaces
        ("docker:index/service:Service", ["labels", "taskSpec"], ("taskSpec",)),
        (VOLUME, ["name"], ("name",)),
    ],
)
def test_which_unknown_inputs_force_a_replacement(
    type_token: str, unknown: list[str], forcing: tuple[str, ...]
) -> None:
    assert replaced_by_unknowns(type_token, unknown) == forcing


def test_a_replaced_provider_takes_every_resource_it_manages() -> None:
    """calculateDependentReplacements also adds the resources whose provider is being replaced."""
    managed = resource("api")
    managed.provider = urn("docker")
    other = resource("other")
    resources = state(resource("docker", "pulumi:providers:docker"), managed, other)
    assert cascade(resources, "docker") == ["api"]


def test_a_resource_deleted_with_a_replaced_one_is_replaced_with_it() -> None:
    cache = resource("cache", VOLUME)
    cache.deleted_with = urn("net")
    resources = state(resource("net", NETWORK), cache)
    assert cascade(resources, "net") == ["cache"]
