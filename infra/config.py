"""A stack's settings: read from Pulumi config, validated once, every problem reported at once.

Pulumi passes config to the program as strings keyed `<project>:<key>`, with a separate list of
the keys that were stored as secrets. This module turns that into one typed `StackSettings`, or
raises `ConfigError` naming the stack and, for each problem, the key and what is wrong, before
the program registers a single resource.
"""

import difflib
import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from infra.config_rules import CROSS_FIELD_RULES, Problem
from infra.identity import PROJECT, check_stack_name
from infra.settings import LIST_FIELDS, OFFSITE_SECRETS, REQUIRED_SECRETS, SECRET_FIELDS, StackSettings, key_of

_FIELD_BY_KEY = {key_of(name): name for name in StackSettings.model_fields}


class ConfigError(Exception):
    """Invalid stack configuration. `problems` holds (key, what is wrong) pairs."""

    def __init__(self, stack: str, problems: list[tuple[str, str]]) -> None:
        self.stack = stack
        self.problems = problems
        lines = [f"  - {key}: {message}" for key, message in problems]
        super().__init__(
            f"Invalid configuration for stack '{stack}' ({len(problems)} problem"
            f"{'' if len(problems) == 1 else 's'}); nothing was created:\n" + "\n".join(lines)
        )


def _secret_command(stack: str, field_name: str) -> str:
    return f"pulumi config set --secret {key_of(field_name)} <value> --stack {stack}"


def _describe(error: Any) -> str:
    message = str(error["msg"])
    # "Value error, ..." is pydantic's prefix for our own validators; the rest speaks for itself.
    message = message.removeprefix("Value error, ")
    if error["type"] not in ("value_error",) and "input" in error and not isinstance(error["input"], dict):
        message += f" (got {error['input']!r})"
    return message


# --- 1. parsing: raw strings by full key -> values by key ----------------------------------------


def _parse(stack: str, config: Mapping[str, str], secret_keys: set[str]) -> tuple[dict[str, Any], list[Problem]]:
    """The project's keys as the model reads them: unknown keys and secrets in plain text refused,
    JSON lists decoded. Keys of other namespaces (docker:, pulumi:) are left alone."""
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    for full_key, raw in sorted(config.items()):
        namespace, _, key = full_key.partition(":")
        if namespace != PROJECT:
            continue
        field_name = _FIELD_BY_KEY.get(key)
        if field_name is None:
            hint = difflib.get_close_matches(key, _FIELD_BY_KEY, n=1)
            problems.append((full_key, "unknown key" + (f"; did you mean {PROJECT}:{hint[0]}?" if hint else "")))
            continue
        if field_name in SECRET_FIELDS and raw == "":
            continue  # Pulumi.yaml's empty default: not set
        if field_name in SECRET_FIELDS and full_key not in secret_keys:
            message = f"is a secret given in plain text; remove it and run `{_secret_command(stack, field_name)}`"
            problems.append((full_key, message))
            continue
        if field_name in LIST_FIELDS:
            try:
                values[key] = json.loads(raw)
            except json.JSONDecodeError:
                problems.append((full_key, f"must be a JSON list of strings (got {raw!r})"))
                continue
        else:
            values[key] = raw
    return values, problems


# --- 2. fields: each value against its field, and the secrets a stack needs ----------------------


def _validate(stack: str, values: dict[str, Any]) -> tuple[StackSettings | None, list[Problem]]:
    try:
        return StackSettings.model_validate(values), []
    except ValidationError as error:
        problems = []
        for detail in error.errors():
            key = str(detail["loc"][0]) if detail["loc"] else "?"
            if detail["type"] == "missing":
                problems.append(
                    (f"{PROJECT}:{key}", f"is required; run `pulumi config set {key} <value> --stack {stack}`")
                )
            else:
                problems.append((f"{PROJECT}:{key}", _describe(error=detail)))
        return None, problems


def _missing_secrets(stack: str, values: dict[str, Any], refused: set[str]) -> list[Problem]:
    """Checked on the raw keys, so missing secrets are reported even when other values are bad.
    `refused`: keys already reported as plain-text secrets."""
    needed = list(REQUIRED_SECRETS) + (["registry_password"] if values.get("registryUsername") else [])
    if values.get("backupOffsiteEndpoint"):
        needed += OFFSITE_SECRETS
    return [
        (f"{PROJECT}:{key_of(name)}", f"is missing; run `{_secret_command(stack, name)}`")
        for name in needed
        if key_of(name) not in values and f"{PROJECT}:{key_of(name)}" not in refused
    ]


def load_settings(stack: str, config: Mapping[str, str], secret_keys: set[str]) -> StackSettings:
    """Validate the raw Pulumi config of `stack` (keys `<namespace>:<key>`, string values).

    `secret_keys` are the full keys Pulumi marked as secret. Every problem is collected, in three
    passes (parsing, fields, cross-field rules), and raised together as one ConfigError.
    """
    values, problems = _parse(stack, config, secret_keys)
    settings, field_problems = _validate(stack, values)
    refused = {key for key, message in problems if message.startswith("is a secret given in plain text")}
    problems += field_problems + _missing_secrets(stack, values, refused)
    if settings is not None:
        problems += [problem for rule in CROSS_FIELD_RULES for problem in rule(settings)]
    stack_problem = check_stack_name(stack)
    if stack_problem:
        problems.append(("stack", stack_problem))
    if problems:
        raise ConfigError(stack, problems)
    assert settings is not None
    if settings.backup_offsite_endpoint and not settings.backup_offsite_prefix:
        settings = settings.model_copy(update={"backup_offsite_prefix": stack})  # one folder per stack
    return settings
