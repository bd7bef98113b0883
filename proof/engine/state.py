"""The engine's state between runs: per resource what the provider recorded, kept in a JSON file as
Pulumi keeps a checkpoint, and the objects an earlier update left pending deletion."""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from proof import provider
from proof.order import Node


@dataclass
class Resource:
    """One resource in state: what the provider recorded after the last operation on it."""

    type: str
    name: str
    urn: str
    id: str
    inputs: dict[str, Any]  # the checked inputs of the last run that touched it
    state: dict[str, Any]  # what the provider's state holds (inputs, defaults, what Read wrote)
    dependencies: list[str]
    protect: bool
    init_error: str = ""  # a Create whose object exists but failed after (wait, start)
    # Input -> the resources its value came from, as registered (the delete-first cascade follows them).
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)
    replace_on_changes: list[str] = field(default_factory=list)
    deleted_with: str = ""  # the URN of the resource whose delete takes this one along
    provider: str = ""  # the URN of its provider resource ("" for a provider itself)

    def node(self) -> Node:
        """The resource as the engine's dependency graph sees it (proof.order)."""
        return Node(
            self.urn, self.type, self.name, self.dependencies, self.property_dependencies,
            self.replace_on_changes, self.protect, deleted_with=self.deleted_with, provider=self.provider,
        )  # fmt: skip

    def physical(self) -> str:
        return physical_name(self.state or self.inputs)


def physical_name(inputs: dict[str, Any]) -> str:
    plain = provider.reveal(inputs)
    return str(plain.get("name") or plain.get("imageName") or "")


class State:
    """The resources by URN and the pending deletes, saved after every run (0600: it holds secrets
    as a Pulumi checkpoint does, unencrypted here because it only ever holds test values)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.resources: dict[str, Resource] = {}
        self.pending_deletes: list[Resource] = []
        if path.exists():
            data = json.loads(path.read_text())
            self.resources = {urn: Resource(**entry) for urn, entry in data["resources"].items()}
            self.pending_deletes = [Resource(**entry) for entry in data["pending_deletes"]]

    def get(self, urn: str) -> Resource | None:
        with self.lock:
            return self.resources.get(urn)

    def put(self, resource: Resource) -> None:
        with self.lock:
            self.resources[resource.urn] = resource

    def forget(self, resource: Resource) -> None:
        """Drop `resource` if it is still the URN's current object: the old half of a create-first
        replacement shares its URN with the new one."""
        with self.lock:
            current = self.resources.get(resource.urn)
            if current is not None and current.id == resource.id:
                del self.resources[resource.urn]

    def save(self) -> None:
        self.path.touch(mode=0o600)
        with self.lock:
            data = {
                "resources": {urn: asdict(resource) for urn, resource in self.resources.items()},
                "pending_deletes": [asdict(resource) for resource in self.pending_deletes],
            }
        self.path.write_text(json.dumps(data, indent=1, sort_keys=True, default=str))
