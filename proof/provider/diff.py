"""The bridge's diff of the last state against new inputs: same, update (which fields) or replace
(which fields force it); what unknown inputs force; who deletes before replacing."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from proof.provider.schema import (
    FIELDS,
    IMAGE,
    OUTPUTS,
    PROVIDER,
    PROVIDER_DELETES_BEFORE_REPLACE,
    REMOTE_IMAGE,
    SERVICE,
    Field,
    NotModelled,
)
from proof.provider.secret_values import reveal


@dataclass(frozen=True)
class Diff:
    """What the provider says about one resource: which fields changed and which force a replacement."""

    changed: tuple[str, ...] = ()
    replaces: tuple[str, ...] = ()

    @property
    def kind(self) -> Literal["same", "update", "replace"]:
        if self.replaces:
            return "replace"
        return "update" if self.changed else "same"


def _canonical(value: Any, spec: Field) -> Any:
    """A comparable form of a value of `spec`'s shape (sets unordered, block defaults filled)."""
    if spec.shape == "set":
        return sorted(str(v) for v in value or [])
    if spec.shape == "map":
        return {str(k): str(v) for k, v in (value or {}).items()}
    if spec.shape in ("blocks", "set_of_blocks", "block"):
        blocks = value if isinstance(value, list) else ([value] if value else [])
        filled = []
        for block in blocks:
            full = {**spec.nested_defaults, **{k: v for k, v in block.items() if v is not None}}
            # An absent nested field and its zero value are the same to Terraform (an unset `adds` is []).
            full = {k: v for k, v in full.items() if v not in ([], {}, "", None)}
            # Lists inside a block are sets (aliases, capabilities) except a health check's command.
            filled.append(
                {k: sorted(map(str, v)) if isinstance(v, list) and k != "tests" else v for k, v in full.items()}
            )
        if spec.shape == "set_of_blocks":
            return sorted(filled, key=lambda b: json.dumps(b, sort_keys=True, default=str))
        if spec.shape == "blocks":  # ports: reordering alone is suppressed
            return sorted(filled, key=lambda b: json.dumps(b, sort_keys=True, default=str))
        return filled[0] if filled else None
    if value is None:
        return spec.default if spec.default is not None else ""
    return value


def _zero(spec: Field) -> Any:
    return _canonical(spec.default, spec)


# Optional+Computed Service fields: absent from the inputs, the state's value stands (no diff).
_SERVICE_COMPUTED = frozenset(
    {
        "taskSpec.forceUpdate", "taskSpec.runtime", "taskSpec.containerSpec.stopGracePeriod",
        "endpointSpec", "endpointSpec.ports.publishedPort", "mode",
    }
)  # fmt: skip


def _diff_service(state: Mapping[str, Any], inputs: Mapping[str, Any]) -> Diff:
    """A Service (§6): its name and its network attachments replace it; every other block updates
    in place. The state is what Read flattened (proof/engine/handlers/service_spec.py): an input
    left out equals a zero value in state (SDKv2 reads an unset primitive as its zero value), or any
    value where the field is Optional+Computed; sets compare in any order."""
    old, new = reveal(state), reveal(inputs)
    changed = sorted(k for k in set(old) | set(new) if not _service_equal(old.get(k), new.get(k), k))
    replaces = [k for k in changed if k == "name"]
    old_networks = (old.get("taskSpec") or {}).get("networksAdvanceds")
    new_networks = (new.get("taskSpec") or {}).get("networksAdvanceds")
    if not _service_equal(old_networks, new_networks, "taskSpec.networksAdvanceds"):
        replaces.append("taskSpec.networksAdvanceds")
    return Diff(tuple(changed), tuple(replaces))


def _service_equal(recorded: Any, given: Any, path: str) -> bool:
    if given is None:
        return recorded is None or path in _SERVICE_COMPUTED or _is_zero(recorded)
    if recorded is None:
        return _is_zero(given)
    if isinstance(recorded, dict) and isinstance(given, dict):
        return all(_service_equal(recorded.get(k), given.get(k), f"{path}.{k}") for k in set(recorded) | set(given))
    if isinstance(recorded, list) and isinstance(given, list):
        if len(recorded) != len(given):
            return False
        if path.endswith(("commands", "args", "tests")):  # lists, in order
            return all(_service_equal(r, g, path) for r, g in zip(recorded, given, strict=True))
        unmatched = list(recorded)  # sets: each given element matches one recorded element
        for element in given:
            match = next((r for r in unmatched if _service_equal(r, element, path)), None)
            if match is None:
                return False
            unmatched.remove(match)
        return True
    if path.endswith("maxFailureRatio"):
        return float(recorded) == float(given)
    return bool(recorded == given)


def _is_zero(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_is_zero(v) for v in value.values())
    return value in (None, 0, "", False, [], {}, "0s")


def diff_fields(
    type_token: str,
    state: Mapping[str, Any],
    inputs: Mapping[str, Any],
    replace_on_changes: Iterable[str] = (),
) -> Diff:
    """The provider's diff of a resource's recorded state against its new inputs."""
    if type_token == IMAGE:
        return _diff_image(state, inputs)
    if type_token == PROVIDER:
        different = sorted(k for k in set(state) | set(inputs) if reveal(state.get(k)) != reveal(inputs.get(k)))
        if different:
            raise NotModelled(f"a change of the Docker provider's configuration ({', '.join(different)})")
        return Diff()
    if type_token == SERVICE:
        return _diff_service(state, inputs)
    fields = FIELDS.get(type_token)
    if fields is None:
        raise NotModelled(f"resource type {type_token}")
    unknown = sorted(set(inputs) - set(fields) - OUTPUTS[type_token])
    if unknown:
        raise NotModelled(f"{type_token} input(s) {', '.join(unknown)}")
    forced = set(replace_on_changes)
    changed: list[str] = []
    replaces: list[str] = []
    for name, spec in fields.items():
        if name not in inputs and spec.computed:
            continue
        new = _canonical(reveal(inputs.get(name)), spec) if name in inputs else _zero(spec)
        old = _canonical(reveal(state.get(name)), spec) if name in state else _zero(spec)
        if name in ("user", "workingDir") and new == "":
            continue  # DiffSuppressFunc: "" is Docker's default, not a change
        if new == old:
            continue
        changed.append(name)
        if spec.change == "R" or name in forced or "*" in forced:
            replaces.append(name)
    return Diff(tuple(changed), tuple(replaces))


def replaced_by_unknowns(
    type_token: str, unknown: Iterable[str], replace_on_changes: Iterable[str] = ()
) -> tuple[str, ...]:
    """The inputs among `unknown` that make the provider's Diff answer "replace" when they are unknown.

    The engine's delete-first cascade (pulumi/pulumi step_generator.go,
    calculateDependentReplacements) diffs a dependent with the inputs that come from a resource
    being replaced set to unknown. terraform-plugin-sdk plans an unknown value in a ForceNew field
    as RequiresNew; `replace_on_changes` forces it for any field it names. The native Image never
    replaces; a Service replaces for its name and its task spec's networks (an unknown task spec
    holds unknown networks: the harsher reading).
    """
    unknown, forced = sorted(set(unknown)), set(replace_on_changes)
    if type_token == IMAGE:
        return tuple(key for key in unknown if key in forced or "*" in forced)
    if type_token == SERVICE:
        return tuple(k for k in unknown if k in ("name", "taskSpec") or k in forced or "*" in forced)
    if type_token == PROVIDER:
        if unknown:
            raise NotModelled(f"a Docker provider configured from another resource's outputs ({', '.join(unknown)})")
        return ()
    fields = FIELDS.get(type_token)
    if fields is None:
        raise NotModelled(f"resource type {type_token}")
    return tuple(
        key for key in unknown if key in forced or "*" in forced or (key in fields and fields[key].change == "R")
    )


def _diff_image(state: Mapping[str, Any], inputs: Mapping[str, Any]) -> Diff:
    """Native Image (provider.go:271-348): any changed input rebuilds in place; never a replacement."""
    changed = []
    for key in sorted(set(state) | set(inputs)):
        if key in OUTPUTS[IMAGE] and key not in inputs:
            continue
        old, new = reveal(state.get(key)), reveal(inputs.get(key))
        if key == "registry" and isinstance(old, dict) and isinstance(new, dict):
            # A registry change that touches only the credentials is ignored.
            old = {k: v for k, v in old.items() if k not in ("username", "password")}
            new = {k: v for k, v in new.items() if k not in ("username", "password")}
        if key == "build" and isinstance(old, dict) and isinstance(new, dict):
            changed += [f"build.{k}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        elif old != new:
            changed.append(key)
    return Diff(tuple(changed))


def deletes_before_replace(type_token: str, option: bool | None, inputs: Mapping[str, Any]) -> bool:
    """Whether a replacement deletes the old resource first: the option wins when given explicitly."""
    if option is not None:
        return option
    explicit_name = "name" in inputs and type_token != REMOTE_IMAGE
    return type_token in PROVIDER_DELETES_BEFORE_REPLACE or explicit_name


def with_ignored(recorded: Mapping[str, Any], inputs: Mapping[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    """The bridge's Diff with `ignoreChanges` (pulumi-terraform-bridge drops those paths from its
    plan): an ignored attribute (a top-level key or a dotted path into nested blocks) keeps the
    recorded value, so it is neither a diff nor removed by the next update."""
    result = copy.deepcopy(dict(inputs))
    for path in paths:
        keys = path.split(".")
        found: Any = recorded
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
