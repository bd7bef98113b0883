"""Secret-marked values as the SDK sends them, and what they hold."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi.runtime import rpc

SECRET_SIG = rpc._special_sig_key  # "4dabf18193072939515e22adb298388d"
SECRET_VALUE_SIG = rpc._special_secret_sig


def reveal(value: Any) -> Any:
    """Unwrap Pulumi's secret markers (the engine hands the provider plain values)."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == SECRET_VALUE_SIG:
            return reveal(value["value"])
        if set(value) == {"secret"}:  # a committed plan's rendering of a secret value
            return reveal(value["secret"])
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def secret_fields(inputs: Mapping[str, Any]) -> set[str]:
    """Top-level inputs that carry a secret: their values are never printed."""

    def has_secret(value: Any) -> bool:
        if isinstance(value, dict):
            return (
                value.get(SECRET_SIG) == SECRET_VALUE_SIG
                or set(value) == {"secret"}
                or any(has_secret(v) for v in value.values())
            )
        if isinstance(value, list):
            return any(has_secret(v) for v in value)
        return False

    return {key for key, value in inputs.items() if has_secret(value)}
