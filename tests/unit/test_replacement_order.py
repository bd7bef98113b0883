"""A release must not take a serving container down under the real engine's rules.

When a resource is replaced delete-first, the Pulumi engine first deletes every dependent whose
replace-forcing inputs take its outputs (step_generator.go, calculateDependentReplacements),
whatever the dependent's own replacement mode. So no create-first container (those replaced
without a gap: api, app, router) may have a replace-forcing input that depends on a delete-first
container: the exit gate of a delete-first migrate in api's labels once put every prod release's
api down before its migrations ran. Checked over every stack's registrations, naming resource and
input.

Accepted, and said in docs: the network and the volumes, which are replaced only when their own
settings change; a Postgres replacement, whose cascade runs through migrate's re-run (migrate's
`ran-against` label) to api, scheduler and backup (measured in tests/integration/test_deploy_prod.py).
"""

from __future__ import annotations

import pytest

from proof.mocks import Registration, Run
from proof.provider import CONTAINER, NETWORK, VOLUME, deletes_before_replace, replaced_by_unknowns
from tests.conftest import RunStack

# Replaced only when their own settings change, and then the stack's containers with them.
ACCEPTED_CASCADE_SOURCES = {NETWORK, VOLUME}
# (dependent, delete-first source): the migrations run again against a replaced Postgres. Postgres
# serves nothing through its own replacement, so taking api, scheduler and backup down with it
# (through migrate's gate) turns the api's 503s into the ingress's for that time.
ACCEPTED_CASCADES = {("migrate", "postgres")}


def delete_first(reg: Registration) -> bool:
    option = reg.delete_before_replace if reg.delete_before_replace_defined else None
    return deletes_before_replace(reg.type, option, reg.inputs)


def cascades_into_create_first(run: Run) -> list[str]:
    """Each create-first container's replace-forcing input that takes a delete-first resource's output."""
    by_urn = {r.urn: r for r in run.resources}
    found = []
    for reg in run.resources:
        if reg.type != CONTAINER or delete_first(reg):
            continue
        for key, urns in sorted(reg.property_dependencies.items()):
            for source in (by_urn[u] for u in urns if u in by_urn):
                if not delete_first(source) or source.type in ACCEPTED_CASCADE_SOURCES:
                    continue
                if (reg.name, source.name) in ACCEPTED_CASCADES:
                    continue
                if replaced_by_unknowns(reg.type, [key], reg.replace_on_changes):
                    found.append(f"{reg.name}.{key} takes the output of delete-first {source.name}")
    return found


@pytest.mark.parametrize("stack", ["dev", "test", "prod"])
def test_no_create_first_container_is_replaced_by_a_delete_first_ones_replacement(
    stack: str, run_stack: RunStack
) -> None:
    run = run_stack(stack)
    assert cascades_into_create_first(run) == []


def test_the_check_names_a_gate_on_a_delete_first_one_shot(run_stack: RunStack) -> None:
    """The check can fail: prod as it was, with migrate replaced delete-first under its fixed name."""
    run = run_stack("prod")
    migrate = run.named(CONTAINER, "migrate")
    migrate.delete_before_replace = True
    found = cascades_into_create_first(run)
    assert "api.labels takes the output of delete-first migrate" in found, found


def test_every_create_first_container_records_its_property_dependencies(run_stack: RunStack) -> None:
    run = run_stack("prod")
    api = run.named(CONTAINER, "api")
    assert not delete_first(api)
    labels = {u.rsplit("::", 1)[-1] for u in api.property_dependencies["labels"]}
    assert "migrate" in labels, api.property_dependencies
    assert {u.rsplit("::", 1)[-1] for u in api.property_dependencies["image"]} == {"app-image"}
