"""What every handler shares: the Docker engine it talks to, the resource it is called for, and the
provider's calls as methods.

A handler is one resource type as pulumi-docker (or pulumi-tls) handles it: Check, Diff, Create,
Read, Update, Delete. The real Pulumi engine decides which of them runs and when; the plugin
(`proof/provider/plugin.py`) hands each call to its handler, which does what the provider does
inside that call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import docker

from proof import provider
from proof.provider import NotModelled

# Every object the stand-in provider creates carries this label (hidden from Read, so it is no
# diff): what a run left behind can be found by it.
MARKER = ("ichrisbirch.deployer", "itest")
LOCAL_ENGINE = "unix:///var/run/docker.sock"


class ProviderError(RuntimeError):
    """A provider call failed (a build, a pull, a health wait): the engine shows it with the resource."""


@dataclass
class Resource:
    """The resource a call is for, as the engine hands it over: its id, the inputs it was last
    created or updated with, and what the provider recorded (its state)."""

    type: str
    name: str
    urn: str
    id: str
    inputs: dict[str, Any]
    state: dict[str, Any]
    init_error: str = ""  # set by a Create whose object exists but failed after (wait, start)


@dataclass
class Docker:
    """The Docker engine the provider talks to (a provider resource may point it elsewhere), and
    where the program runs (relative build paths start there)."""

    workdir: Path
    base_url: str = LOCAL_ENGINE

    def client(self) -> docker.APIClient:
        # One client per call: the engine calls the provider from several threads at once.
        return docker.APIClient(base_url=self.base_url, timeout=300)


class Handler:
    """One resource type. The defaults are the provider's where it does nothing special: Check passes
    the inputs through, Diff is the bridge's (proof.provider), Read returns the state as it is, an
    update is not modelled, Delete removes nothing."""

    types: ClassVar[tuple[str, ...]] = ()
    autonamed: ClassVar[bool] = False  # Check names it when the program gives no `name`
    diffs_inputs: ClassVar[bool] = False  # diffed against its last inputs, not its state (the native Image)
    known_inputs: ClassVar[frozenset[str] | None] = None  # anything else fails the run by name

    def check(self, type_token: str, inputs: dict[str, Any], engine: Docker) -> dict[str, Any]:
        if self.known_inputs is not None:
            refuse_unknown(type_token.split(":")[-1].lower() + " input", inputs, self.known_inputs)
        return inputs

    def diff(
        self, type_token: str, recorded: Mapping[str, Any], inputs: Mapping[str, Any], replace_on_changes: list[str]
    ) -> provider.Diff:
        return provider.diff_fields(type_token, recorded, inputs, replace_on_changes)

    def create(self, resource: Resource, inputs: dict[str, Any], engine: Docker) -> tuple[str, dict[str, Any]]:
        raise NotModelled(f"creating a {resource.type}")

    def read(self, resource: Resource, engine: Docker) -> dict[str, Any] | None:
        """The state now, or None where the object is gone (the engine answers NotFound)."""
        try:
            return self.read_now(resource, engine)
        except docker.errors.NotFound:
            return None

    def read_now(self, resource: Resource, engine: Docker) -> dict[str, Any]:
        """What Read writes for an object that exists; by default the state as it is."""
        return resource.state

    def update(
        self, old: Resource, inputs: dict[str, Any], diff: provider.Diff, engine: Docker
    ) -> tuple[str, dict[str, Any], str]:
        """(id, state, a note for the step). `inputs` are plain (secrets revealed)."""
        raise NotModelled(f"an in-place update of {old.type} ({', '.join(diff.changed)})")

    def delete(self, resource: Resource, inputs: dict[str, Any], engine: Docker) -> None:
        return None


def refuse_unknown(what: str, given: Mapping[str, Any], known: frozenset[str] | set[str]) -> None:
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise NotModelled(f"{what}(s) {', '.join(unknown)}")


def labels(pairs: list[dict[str, str]]) -> dict[str, str]:
    """The provider's label blocks as the Engine API takes them, with the stand-in's marker."""
    for pair in pairs:
        refuse_unknown("label input", pair, {"label", "value"})
    return {pair["label"]: pair["value"] for pair in pairs} | {MARKER[0]: MARKER[1]}


def label_blocks(given: Mapping[str, str] | None) -> list[dict[str, str]]:
    """Labels as Read writes them, less the stand-in's marker (which the program never declared)."""
    return [{"label": k, "value": v} for k, v in sorted((given or {}).items()) if k != MARKER[0]]


def retry(action: Callable[[], object], busy: str, *, ignore_missing: bool) -> None:
    """Retry a delete the engine refuses while the object is still in use (for up to 30 s)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            action()
            return
        except docker.errors.NotFound:
            if ignore_missing:
                return
            raise
        except docker.errors.APIError as error:
            if busy not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(1)
