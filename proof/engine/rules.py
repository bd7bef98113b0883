"""The Pulumi engine's decisions around each provider call, one function per rule.

Each docstring names the pulumi/pulumi function it follows (pkg/resource/deploy/; facts in
../shared/docs/engine-semantics.md); `engine.py` calls them in the order the step generator does,
and tests/unit/test_engine_rules.py checks each on a small program that is not the application.
Where the source could not settle a point the harsher reading is taken and listed in
docs/testing.md.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from proof import order, provider
from proof.engine.report import DeploymentError
from proof.engine.state import Resource
from proof.mocks import Registration


def with_ignored_changes(old: Resource | None, inputs: dict[str, Any], ignore_changes: Sequence[str]) -> dict[str, Any]:
    """step_generator.go processIgnoreChanges: an ignored input (a top-level key or a dotted path
    into nested blocks) takes the value the last run's inputs recorded, or is left out if they had
    none."""
    if old is None:
        return inputs
    return _with_paths(old.inputs, inputs, ignore_changes)


def ignored_in_diff(
    recorded: Mapping[str, Any], inputs: dict[str, Any], ignore_changes: Sequence[str]
) -> dict[str, Any]:
    """The bridge's Diff gets the ignoreChanges paths too (pulumi-terraform-bridge, its diff drops
    them): an attribute the provider's Read put in state (none of the program's inputs) keeps the
    state's value in the planned inputs, so it is neither a diff nor removed by the next update."""
    return _with_paths(recorded, inputs, ignore_changes)


def _with_paths(source: Mapping[str, Any], inputs: dict[str, Any], paths: Sequence[str]) -> dict[str, Any]:
    result = copy.deepcopy(inputs)
    for path in paths:
        keys = path.split(".")
        found: Any = source
        for key in keys:
            found = found.get(key) if isinstance(found, Mapping) else None
        target = result
        for key in keys[:-1]:
            if not isinstance(target.get(key), dict):
                if found is None:
                    break
                target[key] = {}
            target = target[key]
        else:
            if found is None:
                target.pop(keys[-1], None)
            else:
                target[keys[-1]] = copy.deepcopy(found)
    return result


def forced_replacement(diff: provider.Diff, reg: Registration, targets: set[str]) -> provider.Diff:
    """`pulumi up --replace <urn>` (step_generator.go generateSteps, `isTargetedForUpdate` with
    ReplaceTargets): the resource is replaced whatever its diff says."""
    if reg.name in targets or reg.urn in targets:
        return provider.Diff(diff.changed or ("(--replace)",), diff.replaces or ("(--replace)",))
    return diff


def autoname(reg: Registration, inputs: dict[str, Any], old: Resource | None, targets: set[str]) -> dict[str, Any]:
    """The bridge's Check with autonaming (pulumi-terraform-bridge, `name` AutoName): a resource the
    program names keeps that name. Otherwise an update keeps the old name (Check sees the old state),
    and a replacement, forced (`--replace`) or not, gets a fresh `<name>-<random>` (Check runs again
    without the old state), so the new object can exist beside the old one."""
    if "name" in inputs:
        return inputs
    if old is not None and reg.name not in targets and reg.urn not in targets:
        with_old_name = {**inputs, "name": old.state["name"]}
        if provider.diff_fields(reg.type, old.state, with_old_name, reg.replace_on_changes).kind != "replace":
            return with_old_name
    return {**inputs, "name": f"{reg.name}-{secrets.token_hex(4)[:7]}"}


def refuse_protected_replacement(old: Resource, reg: Registration, replaces: Iterable[str]) -> None:
    """step_generator.go generateSteps: a replacement fails when the old state *and* the new
    registration are protected (unprotecting and replacing in one update works)."""
    if old.protect and reg.protect:
        raise DeploymentError(
            f"{reg.type} {reg.name} is protected and would be replaced ({', '.join(replaces)} changed); "
            "unprotect it first (`pulumi state unprotect`) if its data may go"
        )


def deletes_first(reg: Registration, inputs: Mapping[str, Any]) -> bool:
    """step_generator.go generateSteps (`deleteBeforeReplace`): the resource option when given, else
    the provider's answer (pulumi-docker's DeleteBeforeReplace for containers, and the bridge's for a
    resource whose name the program gives: two objects cannot share it)."""
    option = reg.delete_before_replace if reg.delete_before_replace_defined else None
    return provider.deletes_before_replace(reg.type, option, inputs)


def dependent_replacements(
    resources: Mapping[str, Resource], replaced: Resource, registered: set[str]
) -> list[Resource]:
    """step_generator.go calculateDependentReplacements (proof.order.dependent_replacements, shared
    with plan --diff): what goes before `replaced` when it is replaced delete-first. A protected
    dependent stops the update naming both."""
    nodes = {r.urn: r.node() for r in resources.values()}
    try:
        cascade = order.dependent_replacements(nodes, replaced.urn, registered)
    except order.ProtectedDependent as refused:
        raise DeploymentError(str(refused)) from None
    return [resources[node.key] for node, _ in cascade]


def refuse_after_failure(reg: Registration, failed: str | None) -> None:
    """step_executor.go (`executeChain` stops on the first error): after a step fails the executor
    starts no new step; those already running finish."""
    if failed is not None:
        raise DeploymentError(f"{reg.type} {reg.name} not started: {failed}")


def marks_old_pending(old: Resource, current: Resource | None) -> bool:
    """step.go CreateStep.Apply, for the create half of a create-first replacement that failed: a
    partial failure (the new object exists, with init errors) marks the old one pending deletion; a
    create that made no object returns before marking anything."""
    return current is not None and current is not old


def update_after_init_error(old: Resource) -> bool:
    """step_generator.go applyReplaceOnChanges: a resource whose create failed after its object
    existed (init errors) gets an update step on the next run even when nothing changed."""
    return bool(old.init_error)


def deletion_order(resources: Iterable[Resource]) -> list[Resource]:
    """step_generator.go GenerateDeletes (and the cascade's deletes): each object after every object
    in the list that depends on it. Objects, not URNs, are ordered: the old half of a create-first
    replacement shares its URN with the new one. A resource `deleted_with` one that is deleted in the
    same list is left to go with it (its Delete is skipped, as deleteStep does)."""
    listed = sorted(resources, key=lambda r: (r.urn, r.id))
    ordered: list[Resource] = []
    seen: set[int] = set()

    def visit(resource: Resource) -> None:
        if id(resource) in seen:
            return
        seen.add(id(resource))
        for other in listed:
            if other is not resource and resource.urn in other.dependencies:
                visit(other)
        ordered.append(resource)

    for resource in listed:
        visit(resource)
    return ordered


def deleted_along(resource: Resource, deleting: Iterable[Resource]) -> bool:
    """step.go DeleteStep.Apply: a resource whose `deleted_with` target is deleted in the same update
    is removed from state without a call to its provider (the target's delete takes it along)."""
    return bool(resource.deleted_with) and any(r.urn == resource.deleted_with for r in deleting)
