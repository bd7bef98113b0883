"""The Pulumi CLI is pinned once: tools/pulumi-cli/go.mod (scripts/toolchain builds it from there);
.pulumi-version, which the workflows hand to pulumi/actions, must name the same release."""

from __future__ import annotations

import re

from infra.identity import PROJECT_DIR


def required(go_mod: str, module: str) -> str:
    found = re.search(rf"^\s*(?:require\s+)?{re.escape(module)} v(\S+)", (PROJECT_DIR / go_mod).read_text(), re.M)
    assert found, f"{go_mod} requires no {module}"
    return found.group(1)


def test_the_workflows_cli_is_the_one_scripts_toolchain_builds() -> None:
    cli = required("tools/pulumi-cli/go.mod", "github.com/pulumi/pulumi/pkg/v3")
    assert (PROJECT_DIR / ".pulumi-version").read_text().strip() == cli


def test_the_cli_and_its_sdk_module_are_the_same_release() -> None:
    go_mod = "tools/pulumi-cli/go.mod"
    assert required(go_mod, "github.com/pulumi/pulumi/sdk/v3") == required(go_mod, "github.com/pulumi/pulumi/pkg/v3")
