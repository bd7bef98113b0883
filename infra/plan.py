"""Render a stack's plan: every resource the program registers, as stable, sorted YAML.

    python -m infra.plan prod            # print the plan of the committed prod stack config
    python -m infra.plan --write         # rewrite tests/plans/<stack>.yaml for every stack

No engine, backend or credentials are needed: the program runs under Pulumi mocks with the
committed stack file. Secret values are masked; secrets the stack file does not hold (or holds
encrypted) are given placeholders. A pull request that changes infrastructure shows the change
as a diff of tests/plans/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from pulumi.runtime.mocks import MockCallArgs, MockResourceArgs, Mocks

from infra.config import ENVIRONMENTS, REQUIRED_SECRETS, key_of
from infra.simulate import PROJECT_DIR, SECRET_SIG, SECRET_VALUE_SIG, Run, run_program, stack_config

PLANS_DIR = PROJECT_DIR / "tests" / "plans"
REGENERATE = "python -m infra.plan --write"
MASK = "[secret]"
PLACEHOLDER = "plan-placeholder-"
PLACEHOLDER_SECRETS = {
    key_of(name): f"{PLACEHOLDER}{key_of(name)}" for name in (*REQUIRED_SECRETS, "registry_password")
}


class PlanMocks(Mocks):
    """Deterministic outputs: each resource echoes its inputs plus the outputs the program reads."""

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        state = dict(args.inputs)
        if args.typ == "docker:index/image:Image":
            state["repoDigest"] = f"sha256:plan-{args.name}"
        elif args.typ == "docker:index/remoteImage:RemoteImage":
            state["imageId"] = f"sha256:plan-{args.name}"
        elif args.typ == "docker:index/container:Container" and not args.inputs.get("mustRun", True):
            state.update(exitCode=0, containerLogs="")
        return f"{args.name}-id", state

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        raise NotImplementedError(f"the program makes no provider calls (got {args.token})")


def _short(urn: str) -> str:
    """urn:pulumi:<stack>::<project>::<parent$type>::<name> -> <type>::<name>."""
    parts = urn.split("::")
    return f"{parts[2].split('$')[-1]}::{'::'.join(parts[3:])}"


def _mask(text: str) -> str:
    """Replace each placeholder secret inside `text` by the mask ("K=plan-placeholder-x" -> "K=[secret]")."""
    for placeholder in PLACEHOLDER_SECRETS.values():
        text = text.replace(placeholder, MASK)
    return text


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
        entry: dict[str, Any] = {
            "parent": _short(r.parent) if r.parent else None,
            "dependsOn": sorted(_short(d) for d in r.dependencies),
            "inputs": _clean(r.inputs),
        }
        if r.provider:
            entry["provider"] = _short(r.provider.rsplit("::", 1)[0])  # a provider reference is <urn>::<id>
        if r.delete_before_replace:
            entry["deleteBeforeReplace"] = True
        if r.protect:
            entry["protect"] = True
        if r.replace_on_changes:
            entry["replaceOnChanges"] = r.replace_on_changes
        resources[f"{r.type}::{r.name}"] = entry
    header = (
        f"# Plan of stack '{stack}', rendered under mocks from Pulumi.{stack}.yaml.\n"
        f"# Secrets are masked; absent or encrypted secrets take placeholders. Regenerate: {REGENERATE}\n"
    )
    body = {"stack": stack, "outputs": _clean(run.outputs), "resources": resources}
    return header + yaml.safe_dump(body, sort_keys=True, default_flow_style=False, width=120)


def plan(stack: str) -> str:
    config, secret_keys = stack_config(stack, PLACEHOLDER_SECRETS)
    return render(stack, run_program(stack, config, secret_keys, PlanMocks()))


def plan_path(stack: str) -> Path:
    return PLANS_DIR / f"{stack}.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("stacks", nargs="*", choices=[[], *ENVIRONMENTS], help="stacks to render (default: all)")
    parser.add_argument("--write", action="store_true", help="write tests/plans/<stack>.yaml instead of printing")
    args = parser.parse_args(argv)
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
