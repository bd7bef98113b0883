"""The rules as a Pulumi policy pack: mandatory for prod resources, advisory for the others.

Which environment a resource belongs to comes from the resource itself (its
ichrisbirch.environment label or icb-<env>- name), so `pulumi preview --policy-pack policy`
enforces prod without per-stack flags that could be forgotten.
"""

from __future__ import annotations

from collections.abc import Callable

from pulumi_policy import (
    EnforcementLevel,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from rules import RULES, STACK_RULES, Resource, Rule, StackRule, display_name, environment

Validate = Callable[[ResourceValidationArgs, Callable[[str, str | None], None]], None]


def _validator(rule: Rule, for_prod: bool) -> Validate:
    def validate(args: ResourceValidationArgs, report_violation: Callable[[str, str | None], None]) -> None:
        stack = args.urn.split("::")[0].removeprefix("urn:pulumi:")  # urn:pulumi:<stack>::<project>::...
        resource = Resource(args.resource_type, args.name, dict(args.props), secrets_visible=False, stack=stack)
        if (environment(resource) == "prod") != for_prod:
            return
        for problem in rule.check(resource):
            report_violation(f"{display_name(resource)}: {problem}", None)

    return validate


def _stack_validator(rule: StackRule) -> Callable[[StackValidationArgs, Callable[[str, str | None], None]], None]:
    def validate(args: StackValidationArgs, report_violation: Callable[[str, str | None], None]) -> None:
        resources = [
            Resource(
                r.resource_type,
                r.name,
                dict(r.props),
                secrets_visible=False,
                stack=r.urn.split("::")[0].removeprefix("urn:pulumi:"),
                protect=bool(r.opts.protect),
            )
            for r in args.resources
        ]
        for problem in rule.check(resources):
            report_violation(problem, None)

    return validate


def policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    pack: list[ResourceValidationPolicy | StackValidationPolicy] = [
        StackValidationPolicy(
            name=rule.name,
            description=f"{rule.description} (prod: mandatory)",
            validate=_stack_validator(rule),
            enforcement_level=EnforcementLevel.MANDATORY,
        )
        for rule in STACK_RULES
    ]
    for rule in RULES:
        pack.append(
            ResourceValidationPolicy(
                name=f"{rule.name}-prod",
                description=f"{rule.description} (prod: mandatory)",
                validate=_validator(rule, for_prod=True),
                enforcement_level=EnforcementLevel.MANDATORY,
            )
        )
        pack.append(
            ResourceValidationPolicy(
                name=rule.name,
                description=f"{rule.description} (dev, test: advisory)",
                validate=_validator(rule, for_prod=False),
                enforcement_level=EnforcementLevel.ADVISORY,
            )
        )
    return pack
