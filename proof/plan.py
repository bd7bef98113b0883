"""Render a stack's plan: every resource the program registers, as stable, sorted YAML.

    python -m proof.plan prod            # print the plan of the committed prod stack config
    python -m proof.plan --write         # rewrite tests/plans/<stack>.yaml for every stack
    python -m proof.plan --diff [BASE]   # what `pulumi up` would do, from the plans at BASE (HEAD)

No engine, backend or credentials are needed: the program runs under Pulumi mocks with the
committed stack file. Secret values are masked; secrets the stack file does not hold (or holds
encrypted) are given placeholders. A pull request that changes infrastructure shows the change
as a diff of tests/plans/.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from pulumi.runtime.mocks import MockCallArgs, MockResourceArgs, Mocks

from infra.config import ENVIRONMENTS, PROJECT, PROJECT_DIR, REQUIRED_SECRETS, key_of
from proof import order, provider
from proof.mocks import SECRET_SIG, SECRET_VALUE_SIG, RecordingMonitor, Run, run_program, stack_config, whole_numbers

PLANS_DIR = PROJECT_DIR / "tests" / "plans"
REGENERATE = "python -m proof.plan --write"
MASK = "[secret]"
PLACEHOLDER = "plan-placeholder-"
PLACEHOLDER_SECRETS = {
    key_of(name): f"{PLACEHOLDER}{key_of(name)}" for name in (*REQUIRED_SECRETS, "registry_password")
}


class PlanMocks(Mocks):
    """Deterministic outputs that change exactly when the real ones would.

    An image's digest follows its build context (as the provider's Check hashes it); a resource's
    id follows the inputs that would replace it; so a reviewer sees a rebuild or a replacement
    reach what depends on it.
    """

    monitor: RecordingMonitor | None = None

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        state = dict(args.inputs)
        ignored = set(self.monitor.current().ignore_changes) if self.monitor else set()
        if args.typ == provider.IMAGE:
            checked = check_image(args.inputs)
            digest = f"sha256:plan-{checked['build']['contextDigest'][:16]}"
            # Pushed, the digest the registry returned, by repository; local, the image id.
            repository = str(args.inputs["imageName"]).rsplit(":", 1)[0]
            state["repoDigest"] = digest if args.inputs.get("skipPush") else f"{repository}@{digest}"
        elif args.typ == provider.REMOTE_IMAGE:
            state["imageId"] = f"sha256:plan-{_digest(args.inputs['name'])}"
            # The digest the engine recorded: the one the reference names, or else the pulled manifest's.
            name = str(args.inputs["name"])
            state["repoDigest"] = name if "@sha256:" in name else f"{name.rsplit(':', 1)[0]}@{state['imageId']}"
        elif args.typ in provider.TLS_TYPES:
            # Stand-in PEMs: what a reviewer needs is which resource feeds which, not key material.
            for output in ("privateKeyPem", "publicKeyPem", "certPem", "certRequestPem"):
                state[output] = f"-----BEGIN PLAN {output}-----{args.name}-----END-----\n"
        elif args.typ == provider.CONTAINER and not args.inputs.get("mustRun", True):
            state.update(exitCode=0, containerLogs="")
        kept = {k: v for k, v in whole_numbers(dict(args.inputs)).items() if k not in ignored}
        resource_id = f"{args.name}-{_replacement_key(args.typ, kept)}"
        if args.typ in (provider.SECRET, provider.SERVICE_CONFIG, provider.CONTAINER) and "name" not in state:
            state["name"] = resource_id  # Pulumi's generated name: new with every replacement
        return resource_id, state

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        raise NotImplementedError(f"the program makes no provider calls (got {args.token})")


def check_image(inputs: dict[str, Any]) -> dict[str, Any]:
    """The Image's inputs as the provider's Check completes them, with portable file modes."""
    return provider.check_image(inputs, PROJECT_DIR, portable_modes=True)


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _replacement_key(type_token: str, inputs: dict[str, Any]) -> str:
    """A hash of the inputs whose change replaces the resource: it changes when the real id would."""
    fields = provider.FIELDS.get(type_token, {})
    forcing = {k: provider.reveal(v) for k, v in inputs.items() if k in fields and fields[k].change == "R"}
    return _digest(forcing)


def _short(urn: str) -> str:
    """urn:pulumi:<stack>::<project>::<parent$type>::<name> -> <type>::<name>."""
    parts = urn.split("::")
    return f"{parts[2].split('$')[-1]}::{'::'.join(parts[3:])}"


def _mask(text: str) -> str:
    """Replace each placeholder secret inside `text` by the mask ("K=plan-placeholder-x" -> "K=[secret]")."""
    for placeholder in PLACEHOLDER_SECRETS.values():
        text = text.replace(placeholder, MASK)
    return re.sub(r"-----BEGIN PLAN privateKeyPem-----.*?-----END-----\n", MASK, text)


def _clean(value: Any) -> Any:
    """Mask secrets, make paths machine-independent, sort maps, keep lists in order.

    A secret-marked value (for example a container's whole `envs`, once one entry is secret)
    is shown with only the secret parts masked, so a reviewer still sees the plain settings.
    """
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == SECRET_VALUE_SIG:
            inner = value.get("value")
            return {"secret": _clean(inner)} if isinstance(inner, (list, str)) else MASK
        return {k: _clean(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, str):
        return _mask(value).replace(str(PROJECT_DIR), "${PROJECT_DIR}")
    return value


def render(stack: str, run: Run) -> str:
    resources = {}
    for r in sorted(run.resources, key=lambda r: (r.type, r.name)):
        # The Image as its provider sees it: with the build context's digest, so a source change shows.
        inputs = check_image(r.inputs) if r.type == provider.IMAGE else r.inputs
        entry: dict[str, Any] = {
            "parent": _short(r.parent) if r.parent else None,
            "dependsOn": sorted(_short(d) for d in r.dependencies),
            "inputs": _clean(inputs),
        }
        if r.provider:
            entry["provider"] = _short(r.provider.rsplit("::", 1)[0])  # a provider reference is <urn>::<id>
        if r.delete_before_replace_defined:
            entry["deleteBeforeReplace"] = r.delete_before_replace
        if r.protect:
            entry["protect"] = True
        if r.replace_on_changes:
            entry["replaceOnChanges"] = r.replace_on_changes
        if r.ignore_changes:
            entry["ignoreChanges"] = r.ignore_changes
        if r.property_dependencies:  # which input took which resource's outputs: the cascade follows these
            entry["propertyDependencies"] = {
                key: sorted(_short(u) for u in urns) for key, urns in sorted(r.property_dependencies.items())
            }
        resources[f"{r.type}::{r.name}"] = entry
    header = (
        f"# Plan of stack '{stack}', rendered under mocks from Pulumi.{stack}.yaml.\n"
        f"# Secrets are masked; absent or encrypted secrets take placeholders. Regenerate: {REGENERATE}\n"
    )
    body = {"stack": stack, "outputs": _clean(run.outputs), "resources": resources}
    return header + yaml.dump(body, Dumper=_PlanDumper, sort_keys=True, default_flow_style=False, width=120)


class _PlanDumper(yaml.SafeDumper):
    """Multi-line strings (rendered configuration files) as readable blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value and not value.endswith(" ") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_PlanDumper.add_representer(str, _represent_str)


def plan(stack: str, overrides: dict[str, str] | None = None) -> str:
    """The plan of the committed stack file, with config `overrides` (key without the project prefix)."""
    config, secret_keys = stack_config(stack, PLACEHOLDER_SECRETS)
    config.update({f"{PROJECT}:{key}": value for key, value in (overrides or {}).items()})
    return render(stack, run_program(stack, config, secret_keys, PlanMocks()))


def plan_path(stack: str) -> Path:
    return PLANS_DIR / f"{stack}.yaml"


# --- what `up` would do: the provider's rules applied to two plans --------------------------------


@dataclass(frozen=True)
class PlannedStep:
    op: str  # create, update, replace, delete
    key: str  # <type>::<name>
    physical: str
    fields: tuple[str, ...] = ()
    delete_first: bool = False
    protected: bool = False
    deletes_first: tuple[str, ...] = ()  # a delete-first replacement: the dependents the engine deletes before it
    dependent_of: str = ""  # replaced because the delete-first replacement of this resource cascades to it

    def line(self) -> str:
        kind, name = self.key.split("::")[0].split("/")[-1].split(":")[-1], self.key.split("::")[-1]
        what = f"{kind} {name}" + (f" ({self.physical})" if self.physical and self.physical != name else "")
        changed = ", ".join(self.fields)
        if self.op == "replace" and self.dependent_of:
            return (
                f"  +- replaces {what}, deleted before {self.dependent_of}: its {changed} take outputs that "
                f"{self.dependent_of}'s delete-first replacement makes unknown"
            )
        if self.op == "replace":
            order = "the old one is deleted first" if self.delete_first else "the new one is created first"
            refused = "; REFUSED: it is protected" if self.protected else ""
            first = f"; deletes first: {', '.join(self.deletes_first)}" if self.deletes_first else ""
            return f"  +- replaces {what} because its {changed} changed ({order}{first}){refused}"
        if self.op == "update":
            return f"  ~  updates {what} in place: {changed}"
        if self.op == "create":
            return f"  +  creates {what}"
        return f"  -  deletes {what}" + ("; REFUSED: it is protected" if self.protected else "")


def diff_plans(old: dict[str, Any] | None, new: dict[str, Any]) -> list[PlannedStep]:
    """The steps an `up` would take from the state `old` left to `new`, by the provider's rules.

    The old state is predicted from the old plan's inputs (`provider.predict_read`): what the
    provider reads back where Docker records a value differently from the input.
    """
    before: dict[str, Any] = (old or {}).get("resources", {})
    after: dict[str, Any] = new.get("resources", {})
    steps = []
    for key in sorted(set(before) | set(after)):
        type_token = key.split("::")[0]
        if not type_token.startswith(("docker:", "pulumi:providers:")):
            continue  # a component (the Deployment): nothing of its own to create or change
        if key not in after:
            entry = before[key]
            steps.append(PlannedStep("delete", key, _physical(entry), protected=bool(entry.get("protect"))))
            continue
        entry = after[key]
        if key not in before:
            steps.append(PlannedStep("create", key, _physical(entry)))
            continue
        if type_token == "pulumi:providers:docker":
            recorded = before[key]["inputs"]
        else:
            recorded = provider.predict_read(type_token, before[key]["inputs"])
        ignored = {k: recorded[k] for k in entry.get("ignoreChanges", ()) if k in recorded}
        diff = provider.diff_fields(
            type_token, recorded, {**entry["inputs"], **ignored}, entry.get("replaceOnChanges", ())
        )
        if diff.kind == "same":
            continue
        option = entry.get("deleteBeforeReplace")
        delete_first = provider.deletes_before_replace(type_token, option, provider.reveal(entry["inputs"]))
        fields = diff.replaces if diff.kind == "replace" else diff.changed
        protected = bool(before[key].get("protect")) and bool(entry.get("protect")) and diff.kind == "replace"
        steps.append(PlannedStep(diff.kind, key, _physical(entry), fields, delete_first, protected))
    return _with_cascades(before, after, steps)


def _node(key: str, entry: dict[str, Any]) -> order.Node:
    type_token, _, name = key.partition("::")
    return order.Node(
        key,
        type_token,
        name,
        tuple(entry.get("dependsOn") or ()),
        {k: tuple(v) for k, v in (entry.get("propertyDependencies") or {}).items()},
        tuple(entry.get("replaceOnChanges") or ()),
        bool(entry.get("protect")),
    )


def _with_cascades(before: dict[str, Any], after: dict[str, Any], steps: list[PlannedStep]) -> list[PlannedStep]:
    """The steps with the engine's delete-first cascades: each delete-first replacement names the
    dependents deleted before it, and each of those becomes a delete-first replacement of its own
    (proof.order.dependent_replacements, over the old plan's resources)."""
    nodes = {key: _node(key, entry) for key, entry in before.items()}
    by_key = {step.key: step for step in steps}
    for step in steps:
        if step.op != "replace" or not step.delete_first or step.key not in nodes:
            continue
        try:
            cascade = order.dependent_replacements(nodes, step.key)
        except order.ProtectedDependent:
            cascade = []  # the step is refused: the engine stops before deleting anything
            by_key[step.key] = replace(by_key[step.key], protected=True)
        names = tuple(node.name for node, _ in reversed(cascade))  # deleted dependents first
        if names:
            by_key[step.key] = replace(by_key[step.key], deletes_first=names)
        for node, forcing in cascade:
            if node.key not in after:
                continue  # the program drops it: deleted either way
            physical = _physical(after[node.key])
            by_key[node.key] = PlannedStep(
                "replace", node.key, physical, forcing, True, dependent_of=step.key.split("::")[-1]
            )
    return list(by_key.values())


def _physical(entry: dict[str, Any]) -> str:
    inputs = entry.get("inputs") or {}
    return str(inputs.get("name") or inputs.get("imageName") or "")


def describe(stack: str, steps: list[PlannedStep], total: int) -> str:
    if not steps:
        return f"{stack}: no changes ({total} resources)"
    counts: dict[str, int] = {}
    for step in steps:
        counts[step.op] = counts.get(step.op, 0) + 1
    summary = ", ".join(f"{n} to {op}" for op, n in sorted(counts.items()))
    order = {"delete": 0, "replace": 1, "update": 2, "create": 3}
    lines = [s.line() for s in sorted(steps, key=lambda s: (order[s.op], s.key))]
    return f"{stack}: {summary}, {total - len(steps)} unchanged\n" + "\n".join(lines)


def committed_plan(stack: str, base: str) -> dict[str, Any] | None:
    """tests/plans/<stack>.yaml as committed at `base`; None where it did not exist."""
    path = plan_path(stack).relative_to(PROJECT_DIR).as_posix()
    shown = subprocess.run(["git", "show", f"{base}:{path}"], cwd=PROJECT_DIR, capture_output=True, text=True)
    if shown.returncode != 0:
        if "does not exist" in shown.stderr or "exists on disk, but not in" in shown.stderr:
            return None
        raise SystemExit(f"git show {base}:{path} failed: {shown.stderr.strip()}")
    return yaml.safe_load(shown.stdout)  # type: ignore[no-any-return]


_PREVIEW_OPS = {"create-replacement": "replace", "delete-replaced": "replace", "replace": "replace"}


def preview_steps(preview: dict[str, Any]) -> dict[str, str]:
    """`pulumi preview --json` steps as <type>::<name> -> create/update/replace/delete (same left out)."""
    ops: dict[str, str] = {}
    for step in preview.get("steps", []):
        urn = step["urn"]
        if urn.split("::")[2].endswith("pulumi:pulumi:Stack") or step["op"] in ("same", "read", "refresh"):
            continue
        key = _short(urn)
        if key.split("::")[0].startswith(("docker:", "pulumi:providers:")):
            ops[key] = _PREVIEW_OPS.get(step["op"], step["op"])
    return ops


def mismatches(predicted: list[PlannedStep], preview: dict[str, Any]) -> list[str]:
    """Where a real preview's steps differ from the prediction, one line each: in kind, then in the
    engine's order (a replacement's halves; a cascade's deletes before the delete they precede)."""
    expected = {step.key: step.op for step in predicted}
    actual = preview_steps(preview)
    found = [
        f"{key}: predicted {expected.get(key, 'no change')}, the preview says {actual.get(key, 'no change')}"
        for key in sorted(set(expected) | set(actual))
        if expected.get(key) != actual.get(key)
    ]
    return found + order_mismatches(predicted, preview)


def order_mismatches(predicted: list[PlannedStep], preview: dict[str, Any]) -> list[str]:
    """The predicted order of replacements against the preview's list of steps: create-replacement
    before delete-replaced for a create-first replacement, after it for a delete-first one, and the
    delete-replaced of each cascaded dependent before that of the resource it was deleted for."""
    position: dict[tuple[str, str], int] = {}
    for index, step in enumerate(preview.get("steps", [])):
        position.setdefault((step["op"], _short(step["urn"])), index)

    def before(first: tuple[str, str], then: tuple[str, str]) -> bool | None:
        if first not in position or then not in position:
            return None  # the preview does not list both halves: nothing to compare
        return position[first] < position[then]

    by_name = {step.key.split("::")[-1]: step.key for step in predicted}
    found = []
    for step in predicted:
        if step.op != "replace":
            continue
        created, deleted = ("create-replacement", step.key), ("delete-replaced", step.key)
        if step.delete_first and before(created, deleted):
            found.append(f"{step.key}: predicted delete-first, the preview creates the replacement first")
        if not step.delete_first and before(deleted, created):
            found.append(f"{step.key}: predicted create-first, the preview deletes the old one first")
        for name in step.deletes_first:
            dependent = by_name.get(name, "")
            if before(("delete-replaced", dependent), deleted) is False:
                found.append(f"{step.key}: predicted to delete {name} first, the preview deletes it after")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m proof.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("stacks", nargs="*", choices=[[], *ENVIRONMENTS], help="stacks to render (default: all)")
    parser.add_argument("--write", action="store_true", help="write tests/plans/<stack>.yaml instead of printing")
    parser.add_argument(
        "--diff",
        nargs="?",
        const="HEAD",
        metavar="BASE",
        help="print what `pulumi up` would do going from the plans committed at BASE (default HEAD) to this tree",
    )
    parser.add_argument(
        "--against-preview",
        metavar="JSON",
        type=Path,
        help="with --diff and one stack: fail unless `pulumi preview --json` output in JSON takes the predicted steps",
    )
    args = parser.parse_args(argv)
    if args.diff:
        failed = False
        for stack in args.stacks or ENVIRONMENTS:
            new = yaml.safe_load(plan(stack))
            predicted = diff_plans(committed_plan(stack, args.diff), new)
            print(describe(stack, predicted, len(new["resources"])))
            if args.against_preview:
                problems = mismatches(predicted, json.loads(args.against_preview.read_text()))
                print("\n".join(problems) if problems else f"{stack}: the preview takes exactly the predicted steps")
                failed = failed or bool(problems)
        return 1 if failed else 0
    for stack in args.stacks or ENVIRONMENTS:
        text = plan(stack)
        if args.write:
            plan_path(stack).write_text(text)
            print(f"wrote {plan_path(stack).relative_to(PROJECT_DIR)}", file=sys.stderr)
        else:
            sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
