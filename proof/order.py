"""What the Pulumi engine decides around the provider's calls, as pure functions over a state's
resources: shared by the engine stand-in (proof/engine/), which applies them to a
real Docker engine, and `python -m proof.plan --diff`, which predicts an `up` from two plans.

Read from pulumi/pulumi `pkg/resource/deploy/step_generator.go` (function names stay put between
releases; ../shared/docs/engine-semantics.md). The provider's half of each decision (which fields
force a replacement) comes from proof/provider/.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from proof import provider


@dataclass(frozen=True)
class Node:
    """One resource of the last state, as the engine's dependency graph holds it."""

    key: str  # what identifies it in the state (a URN, or a plan's <type>::<name>)
    type: str
    name: str
    dependencies: Sequence[str] = ()  # keys: depends_on and property dependencies alike
    # input -> keys of the resources its value came from (the SDK sends them with each registration)
    property_dependencies: Mapping[str, Sequence[str]] = field(default_factory=dict)
    replace_on_changes: Sequence[str] = ()
    protect: bool = False
    deleted_with: str = ""  # key of the resource whose delete takes this one along (deleted_with option)
    provider: str = ""  # key of its provider resource


class ProtectedDependent(RuntimeError):
    """A delete-first replacement would replace a protected dependent: the update stops."""


def dependencies_first(nodes: Iterable[Node]) -> list[Node]:
    """Each node after every node (among these) it depends on; ties by key."""
    listed = sorted(nodes, key=lambda n: n.key)
    by_key = {n.key: n for n in listed}
    ordered: list[Node] = []
    seen: set[str] = set()

    def visit(node: Node) -> None:
        if node.key in seen:
            return
        seen.add(node.key)
        for key in sorted(node.dependencies):
            if key in by_key:
                visit(by_key[key])
        ordered.append(node)

    for node in listed:
        visit(node)
    return ordered


def dependent_replacements(
    nodes: Mapping[str, Node], replaced: str, registered: Iterable[str] = ()
) -> list[tuple[Node, tuple[str, ...]]]:
    """What the engine replaces along with `replaced` when it replaces it delete-first, each with the
    inputs that force it, in dependency order (step_generator.go, calculateDependentReplacements).

    It walks the transitive dependents of `replaced` in the last state, skipping resources already
    registered in this update. A dependent whose inputs take an output of something being replaced
    (its property dependencies) is diffed with those inputs unknown: if the provider would replace it
    for them (an unknown ForceNew field, `replace_on_changes`), it is replaced too, whatever its own
    replacement mode, and its dependents are checked in turn. A `depends_on` alone never cascades.
    A resource whose provider is being replaced, or that is `deleted_with` one being replaced, is
    replaced too.
    The engine deletes them, dependents first, before `replaced`. A protected dependent stops the
    update (ProtectedDependent, naming both).
    """
    skipped = set(registered)
    replacing = {replaced}
    cascade: list[tuple[Node, tuple[str, ...]]] = []
    for node in dependencies_first(nodes.values()):
        if node.key in replacing or node.key in skipped:
            continue
        forcing = _forcing(node, replacing)
        if not forcing:
            continue
        if node.protect:
            source = nodes[replaced].name if replaced in nodes else replaced
            raise ProtectedDependent(
                f"{node.type} {node.name} is protected and would be replaced with {source} (its "
                f"{', '.join(forcing)} take outputs that {source}'s delete-first replacement makes unknown); "
                "unprotect it first if its data may go"
            )
        replacing.add(node.key)
        cascade.append((node, forcing))
    return cascade


def _forcing(node: Node, replacing: set[str]) -> tuple[str, ...]:
    """Why `node` is replaced along with the resources in `replacing`: the inputs an unknown forces,
    its provider's replacement, or its `deleted_with` resource's; () when it is left alone."""
    if node.provider and node.provider in replacing:
        return ("(its provider is replaced)",)
    if node.deleted_with and node.deleted_with in replacing:
        return ("(deleted with a replaced resource)",)
    unknown = {key for key, sources in node.property_dependencies.items() if replacing & set(sources)}
    return provider.replaced_by_unknowns(node.type, unknown, node.replace_on_changes) if unknown else ()
