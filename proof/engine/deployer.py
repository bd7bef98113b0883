"""The Pulumi engine and the pulumi-docker provider, stood in for on a real Docker engine, run after run.

The Pulumi CLI cannot be installed here. `DockerEngine` is a Pulumi `Mocks` that turns each
registration of the program into what `pulumi up` would do to the real engine, given the state the
previous run left:

- it keeps state between runs (per resource: its checked inputs, the state Read wrote, its id,
  dependencies and options) in a JSON file, as Pulumi keeps a checkpoint;
- on each run it diffs every resource with the provider's rules (`proof.provider`, shared with
  `python -m proof.plan --diff`) and the resource options: `same`, `update` (applied through the
  engine's API as the provider does it, or recorded only, for state-only fields), `replace`
  (delete-first for containers and named resources unless the option says otherwise), `create`,
  and at the end `delete` for what the program no longer declares, dependents first; `protect`
  refuses a delete or replacement;
- after a Create it reads the real object back as the provider's Read does, so a value Docker
  records differently from the input (MemorySwap, durations, cpus) shows up on the next run;
- it prints the run's steps as `pulumi preview` would.
- on a swarm (the provider's host a manager): overlay networks, the image built and pushed by that
  engine, Swarm secrets and configs (autonamed: a new name for a replacement), and Services created
  with the provider's converge wait (removed when they do not converge), updated in place with its
  wait on the update's status (a paused or rolled-back update fails the run, the desired spec
  recorded).

An input it cannot model fails the run naming it. Every object it creates carries the label
`ichrisbirch.deployer=itest` (hidden from Read, so it is no diff); `sweep()` removes exactly those.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import logging
import re
import secrets
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, Literal

import docker
import requests
from pulumi.runtime.mocks import MockCallArgs, MockResourceArgs, Mocks

from infra.config import PROJECT_DIR
from proof import order, provider
from proof.mocks import RecordingMonitor, Registration, Run, run_program, whole_numbers
from proof.order import Node
from proof.provider import (
    CONTAINER,
    CONTAINER_FIELDS,
    CONTAINER_UPDATE_API,
    IMAGE,
    NETWORK,
    PROVIDER,
    REMOTE_IMAGE,
    SECRET,
    SERVICE,
    SERVICE_CONFIG,
    VOLUME,
    NotModelled,
    reveal,
)

MARKER = ("ichrisbirch.deployer", "itest")
BUILDKIT_DOCKER = "/usr/bin/docker"
MIB = 1024 * 1024
# What this stand-in applies to a container. CONTAINER_FIELDS lists what the provider knows; any
# other input fails the run by name rather than being ignored.
CONTAINER_APPLIED = frozenset(
    {
        "name", "image", "command", "entrypoints", "envs", "labels", "networksAdvanced", "ports", "volumes", "tmpfs",
        "healthcheck", "wait", "waitTimeout", "mustRun", "attach", "logs", "restart", "user", "readOnly",
        "capabilities", "securityOpts", "memory", "memorySwap", "cpus", "ulimits", "logDriver", "logOpts",
        "destroyGraceSeconds", "stopTimeout", "start", "removeVolumes", "networkMode", "init", "uploads",
    }
)  # fmt: skip
Operation = Literal["same", "create", "update", "replace", "delete"]


class DeploymentError(RuntimeError):
    pass


class _UnretrievedProgramError(logging.Filter):
    """When the program fails (a migrate gate), the SDK's asyncio loop logs the same error once for
    every output that depended on it. The run's error already carries it: keep the log readable."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "exception was never retrieved" not in record.getMessage()


logging.getLogger("asyncio").addFilter(_UnretrievedProgramError())


@dataclass
class Step:
    op: Operation
    type: str
    name: str
    physical: str = ""
    changed: tuple[str, ...] = ()
    replaces: tuple[str, ...] = ()
    delete_first: bool = False
    note: str = ""

    SYMBOLS = {"same": " ", "create": "+", "update": "~", "replace": "+-", "delete": "-"}

    def line(self) -> str:
        kind = self.type.split(":")[-1]
        text = f"{self.SYMBOLS[self.op]:>2} {kind:<12} {self.name:<16} {self.op}"
        if self.physical:
            text += f" {self.physical}"
        if self.op == "replace":
            text += f" [diff: {', '.join('~' + f for f in self.replaces)}]"
            text += " (delete before replace)" if self.delete_first else " (create before delete)"
        elif self.op == "update":
            text += f" [diff: {', '.join('~' + f for f in self.changed)}]"
        if self.note:
            text += f" ({self.note})"
        return text


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


@dataclass
class Timings:
    """When this run created containers and when they were healthy (the figures the suite prints)."""

    first_created_at: float | None = None
    started: dict[str, float] = field(default_factory=dict)
    healthy: dict[str, float] = field(default_factory=dict)
    build_seconds: float = 0.0


@dataclass
class UpResult:
    stack: str
    steps: list[Step]
    run: Run | None
    error: BaseException | None
    timings: Timings

    def ops(self) -> dict[str, Operation]:
        """Logical resource name -> what this run did to it (an earlier run's leftover that it deleted,
        a step of its own, is not what it did to the resource: see `pending_deleted`)."""
        return {s.name: s.op for s in self.steps if s.note != "pending"}

    def pending_deleted(self) -> set[str]:
        """The resources whose objects an earlier run left pending deletion, deleted by this one."""
        return {s.name for s in self.steps if s.note == "pending"}

    def touched(self, op: Operation) -> set[str]:
        return {s.name for s in self.steps if s.op == op}

    def preview(self) -> str:
        counts: dict[str, int] = {}
        for step in self.steps:
            counts[step.op] = counts.get(step.op, 0) + 1
        summary = ", ".join(f"{n} {op if op != 'same' else 'unchanged'}" for op, n in sorted(counts.items()))
        return f"Update of stack {self.stack}:\n" + "\n".join(s.line() for s in self.steps) + f"\nResources: {summary}"


class UpFailed(DeploymentError):
    def __init__(self, result: UpResult) -> None:
        self.result = result
        super().__init__(f"`up` of {result.stack} failed: {result.error}\n{result.preview()}")


class DockerEngine(Mocks):
    def __init__(self, state_file: Path, workdir: Path = PROJECT_DIR) -> None:
        self.state_file = state_file
        self.workdir = workdir  # where `pulumi` would run the program: relative build paths start here
        self.base_url = "unix:///var/run/docker.sock"
        self.resources, self.pending_deletes = self._load()
        self._lock = threading.Lock()
        self._monitor: RecordingMonitor | None = None
        self._steps: list[Step] = []
        self._replace: set[str] = set()
        self._dependents_deleted: dict[str, str] = {}  # URN -> the delete-first replacement that took it
        self._failed: str | None = None
        self._replaced_later: list[Resource] = []
        self.timings = Timings()

    # --- one `pulumi up` ------------------------------------------------------------------------

    def up(
        self,
        stack: str,
        config: Mapping[str, str],
        secret_keys: set[str],
        *,
        replace: Iterable[str] = (),
        program: Callable[[], None] | None = None,
    ) -> UpResult:
        """Run the program against the state the last run left, as `pulumi up --yes [--replace]` would.

        Raises UpFailed (with the steps taken) when the program or a step fails; state keeps what
        was done, and, as with Pulumi, nothing is deleted after a failure.
        """
        self._steps, self._replace, self._replaced_later = [], set(replace), []
        self._dependents_deleted = {}
        self._failed = None  # the first step that failed in this update
        self.timings = Timings()
        self._monitor = RecordingMonitor(self)
        registered_before = set(self.resources)
        run: Run | None = None
        error: BaseException | None = None
        # What an earlier run left pending deletion goes at the end, with this run's deletes, and
        # only if this run succeeds (pulumi/pulumi a3128e50be: pending deletes do not run first).
        pending, self.pending_deletes = self.pending_deletes, []
        try:
            run = run_program(stack, config, secret_keys, self, program=program, monitor=self._monitor)
            registered = {r.urn for r in self._monitor.run.resources}
            removed = [self.resources[u] for u in registered_before - registered]
            self._delete_at_end(removed=removed, replaced=self._replaced_later, pending=pending)
        except Exception as failure:  # noqa: BLE001 (the result carries it; UpFailed re-raises)
            error = failure
            # A create-first replacement marks the old object for deletion as soon as the new one
            # exists (step.go, CreateStep.Apply): after a failure those stay pending, with the rest.
            self.pending_deletes = [*pending, *self.pending_deletes, *self._replaced_later]
        finally:
            self._save()
        result = UpResult(stack, self._steps, run, error, self.timings)
        print(result.preview())  # what `pulumi up` shows; pytest prints it with a failing test
        if error is not None:
            raise UpFailed(result) from error
        return result

    def refresh(self, stack: str) -> UpResult:
        """`pulumi refresh --yes`: every resource read back as the provider's Read does. An object
        gone from the engine leaves state (the next `up` creates it); one changed by hand records its
        drift (the next `up` diffs the program against it). Nothing is created or deleted."""
        self._steps, self.timings = [], Timings()
        try:
            for resource in list(self.resources.values()):
                read = self._read(resource)
                if read is None:
                    with self._lock:
                        del self.resources[resource.urn]
                    self._record(Step("delete", resource.type, resource.name, _physical(resource.state), note="gone"))
                    continue
                drift = tuple(
                    sorted(k for k in set(read) | set(resource.state) if read.get(k) != resource.state.get(k))
                )
                resource.state = read
                self._record(Step("update" if drift else "same", resource.type, resource.name,
                                  _physical(read), changed=drift, note="read back" if drift else ""))  # fmt: skip
        finally:
            self._save()
        result = UpResult(stack, self._steps, None, None, self.timings)
        print(result.preview())
        return result

    def _read(self, resource: Resource) -> dict[str, Any] | None:
        """The provider's Read of one resource: its state now, or None where the object is gone."""
        client = self.client()
        try:
            if resource.type == CONTAINER:
                return self._read_container(resource.id, resource.state)
            if resource.type == NETWORK:
                return {**resource.state, **self._read_network(resource.id)}
            if resource.type == VOLUME:
                client.inspect_volume(resource.id)
                return resource.state
            if resource.type == REMOTE_IMAGE:  # its id is <image id><name>: the image is found by its id
                client.inspect_image(resource.state["imageId"])
                return resource.state
        except docker.errors.NotFound:
            return None
        if resource.type in (IMAGE, PROVIDER) or resource.type in provider.TLS_TYPES:
            return resource.state  # their Read returns the state as it is
        raise DeploymentError(f"refresh: reading back a {resource.type} ({resource.name}) is not modelled")

    # --- Mocks --------------------------------------------------------------------------------

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        raise DeploymentError(f"provider function {args.token} is not modelled by the test deployer")

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        assert self._monitor is not None
        registration = self._monitor.current()
        if not args.custom:
            return "", {}  # a component (the program's Deployment): nothing to create
        if registration.unmodelled_options:
            raise DeploymentError(
                f"{registration.type} {registration.name}: the resource option(s) "
                f"{', '.join(registration.unmodelled_options)} are not modelled by the test deployer"
            )
        if self._failed is not None:
            # After a step fails the engine starts no new step; those already running finish
            # (step_executor.go). What registers later is refused with the failure that stopped it.
            raise DeploymentError(f"{registration.type} {registration.name} not started: {self._failed}")
        try:
            return self._register(registration, whole_numbers(dict(args.inputs)))
        except NotModelled as error:
            self._failed = self._failed or f"{registration.name}: {error} is not modelled"
            raise DeploymentError(f"{registration.type} {registration.name}: {error} is not modelled") from None
        except Exception as error:
            self._failed = self._failed or f"{registration.name} failed: {error}"
            raise

    def _register(self, reg: Registration, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        with self._lock:
            old = self.resources.get(reg.urn)
        if old is not None:  # ignoreChanges: the engine sends the recorded value instead of the new one
            inputs = {**inputs, **{k: old.inputs[k] for k in reg.ignore_changes if k in old.inputs}}
        checked = self._check(reg, inputs)
        if old is None:
            cause = self._dependents_deleted.pop(reg.urn, None)
            if cause is not None:  # its first half happened before `cause` was deleted
                step = Step("replace", reg.type, reg.name, _physical(checked), replaces=(f"{cause}'s outputs",),
                            delete_first=True, note=f"a dependent of {cause}")  # fmt: skip
                return self._create(reg, checked, step)
            return self._create(reg, checked, Step("create", reg.type, reg.name, _physical(checked)))
        recorded = old.inputs if reg.type == IMAGE else old.state  # the native Image diffs its old inputs
        diff = provider.diff_fields(reg.type, recorded, checked, reg.replace_on_changes)
        if reg.name in self._replace or reg.urn in self._replace:
            diff = provider.Diff(diff.changed or ("(--replace)",), diff.replaces or ("(--replace)",))
        physical = _physical(checked)
        if diff.kind == "same":
            if old.init_error:
                # The bridge forces an update after a failed Create, re-diffs, finds nothing and sends nothing.
                self._record(Step("update", reg.type, reg.name, physical, note="after a failed create: nothing sent"))
                old.init_error = ""
            else:
                self._record(Step("same", reg.type, reg.name, physical))
            self._remember(old, reg)
            return old.id, self._outputs(old)
        if diff.kind == "update":
            return self._update(reg, old, checked, diff)
        if old.protect and reg.protect:  # unprotecting and replacing in one update works (step_generator.go)
            raise DeploymentError(
                f"{reg.type} {reg.name} is protected and would be replaced ({', '.join(diff.replaces)} changed); "
                "unprotect it first (`pulumi state unprotect`) if its data may go"
            )
        # An explicit name (in the program's inputs, not one Check generated) forces delete-first.
        delete_first = provider.deletes_before_replace(
            reg.type, reg.delete_before_replace if reg.delete_before_replace_defined else None, inputs
        )
        step = Step("replace", reg.type, reg.name, physical, diff.changed, diff.replaces, delete_first)
        if delete_first:
            self._delete_dependent_replacements(old, reg.name)
            self._delete(old)
            return self._create(reg, checked, step)
        try:
            created = self._create(reg, checked, step)
        except Exception:
            # A partial failure (the new object exists, e.g. a `wait` for health timed out): the new
            # one is in state with its error, the old one stays, serving, marked for deletion. A create
            # that made no object marks nothing (step.go, CreateStep.Apply returns first).
            with self._lock:
                current = self.resources.get(reg.urn)
            if current is not None and current is not old:
                self.pending_deletes.append(old)
            raise
        self._replaced_later.append(old)
        return created

    # --- checks: what the provider's Check does, and what this stand-in refuses -----------------

    def _check(self, reg: Registration, inputs: dict[str, Any]) -> dict[str, Any]:
        if reg.type == IMAGE:
            return provider.check_image(inputs, self.workdir)
        if reg.type in (SECRET, SERVICE_CONFIG, CONTAINER) and "name" not in inputs:
            # Pulumi's autonaming: the old name while nothing replaces it; a new one for a replacement
            # (Check runs again without the old state), so the new object can exist beside the old.
            with self._lock:
                old = self.resources.get(reg.urn)
            # An autonamed resource that is only updated keeps its name; a replacement gets a new one.
            # (`--replace` forces a replacement: Check runs again without the old state, a new name.)
            with_old_name = {**inputs, "name": old.state["name"]} if old is not None else inputs
            forced = reg.name in self._replace or reg.urn in self._replace
            kept = (old is not None and not forced) and (
                provider.diff_fields(reg.type, old.state, with_old_name, reg.replace_on_changes).kind != "replace"
            )
            name = old.state["name"] if kept and old is not None else f"{reg.name}-{secrets.token_hex(4)[:7]}"
            inputs = {**inputs, "name": name}
        if reg.type == CONTAINER:
            unknown = sorted(set(inputs) - CONTAINER_APPLIED - provider.CONTAINER_OUTPUTS)
            if unknown:
                raise NotModelled(f"input(s) {', '.join(unknown)}")
            if (inputs.get("attach") or inputs.get("logs")) and inputs.get("mustRun", True) is not False:
                raise NotModelled("attach/logs with mustRun true (the next `up` would restart it)")
        return inputs

    # --- create, update, delete per type --------------------------------------------------------

    def _create(self, reg: Registration, inputs: dict[str, Any], step: Step) -> tuple[str, dict[str, Any]]:
        handlers: dict[str, Callable[[str, dict[str, Any], Resource], tuple[str, dict[str, Any]]]] = {
            **{type_token: self._create_tls for type_token in provider.TLS_TYPES},
            PROVIDER: self._create_provider,
            NETWORK: self._create_network,
            VOLUME: self._create_volume,
            IMAGE: self._create_image,
            REMOTE_IMAGE: self._create_remote_image,
            CONTAINER: self._create_container,
            SECRET: self._create_secret,
            SERVICE_CONFIG: self._create_secret,
            SERVICE: self._create_service,
        }
        if reg.type not in handlers:
            raise NotModelled(f"resource type {reg.type}")
        plain = reveal(inputs)
        resource = Resource(reg.type, reg.name, reg.urn, "", inputs, {}, reg.dependencies, reg.protect)
        self._remember(resource, reg)
        try:
            resource.id, resource.state = handlers[reg.type](reg.name, plain, resource)
        finally:
            if resource.id:  # the object exists: in state even when a later step of Create failed
                with self._lock:
                    self.resources[reg.urn] = resource
                self._record(step)
        return resource.id, self._outputs(resource)

    def _update(
        self, reg: Registration, old: Resource, inputs: dict[str, Any], diff: provider.Diff
    ) -> tuple[str, dict[str, Any]]:
        plain, note = reveal(inputs), ""
        if reg.type == IMAGE:
            old.id, built = self._create_image(reg.name, plain, old)
            old.state = built
            note = "rebuilt"
        elif reg.type == CONTAINER:
            note = self._update_container(old, plain, diff)
            # Container Update ends without Read: the state becomes the inputs.
            old.state = {**old.state, **_with_defaults(inputs)}
        elif reg.type == REMOTE_IMAGE:
            old.id, old.state = self._create_remote_image(reg.name, plain, old)
        elif reg.type == SERVICE:
            # The desired spec is recorded even when the update then fails to converge (§1: the
            # next run is a no-op); the error reaches the run after that.
            old.inputs, old.state = inputs, dict(plain)
            self._remember(old, reg)
            step = Step("update", reg.type, reg.name, _physical(inputs), diff.changed)
            try:
                self._update_service(old.id, plain)
            finally:
                self._record(step)
            return old.id, self._outputs(old)
        else:
            raise NotModelled(f"an in-place update of {reg.type} ({', '.join(diff.changed)})")
        old.inputs = inputs
        self._remember(old, reg)
        self._record(Step("update", reg.type, reg.name, _physical(inputs), diff.changed, note=note))
        return old.id, self._outputs(old)

    def _delete_at_end(self, *, removed: list[Resource], replaced: list[Resource], pending: list[Resource]) -> None:
        """The deletes of a successful update, after every registration, dependents first
        (step_generator.go GenerateDeletes): resources the program no longer declares, the old
        halves of create-first replacements, and what an earlier update left pending deletion."""
        kinds = {id(r): "removed" for r in removed} | {id(r): "replaced" for r in replaced}
        kinds |= {id(r): "pending" for r in pending}
        for resource in _dependents_first([*removed, *replaced, *pending]):
            kind = kinds[id(resource)]
            if resource.protect and kind == "removed":
                raise DeploymentError(f"{resource.type} {resource.name} is protected; it cannot be deleted")
            self._delete(resource, keep_state=kind == "pending")
            if kind == "removed":
                self._record(Step("delete", resource.type, resource.name, _physical(resource.inputs)))
            elif kind == "pending":
                self._record(Step("delete", resource.type, resource.name, _physical(resource.state), note="pending"))

    def _delete_dependent_replacements(self, replaced: Resource, cause: str) -> None:
        """Before deleting `replaced` for a delete-first replacement, the engine deletes every
        dependent its replacement would replace (dependent_replacements), dependents first. Each is
        created again when it registers, and recorded then as one delete-first replacement."""
        assert self._monitor is not None
        with self._lock:
            registered = {r.urn for r in self._monitor.run.resources}
            cascade = dependent_replacements(self.resources, replaced, registered)
        for dependent in _dependents_first(cascade):
            self._delete(dependent)
            self._dependents_deleted[dependent.urn] = cause

    def _delete(self, resource: Resource, *, keep_state: bool = False) -> None:
        client = self.client()
        plain = reveal(resource.inputs)
        if resource.type == CONTAINER:
            try:
                if not plain.get("attach"):
                    # ContainerStop with destroy_grace_seconds (0 when unset: SIGKILL at once).
                    client.stop(resource.id, timeout=int(plain.get("destroyGraceSeconds") or 0))
                client.remove_container(resource.id, force=True, v=plain.get("removeVolumes", True))
            except docker.errors.NotFound:
                pass
        elif resource.type == NETWORK:
            self._retry(lambda: client.remove_network(resource.id), "has active endpoints", ignore_missing=True)
        elif resource.type == VOLUME:
            self._retry(lambda: client.remove_volume(resource.id, force=True), "in use", ignore_missing=True)
        elif resource.type == SERVICE:
            self._delete_service(client, resource.id, plain)
        elif resource.type == SECRET:
            self._retry(lambda: client.remove_secret(resource.id), "in use", ignore_missing=False)
        elif resource.type == SERVICE_CONFIG:
            self._retry(lambda: client.remove_config(resource.id), "in use", ignore_missing=False)
        elif resource.type == REMOTE_IMAGE and not plain.get("keepLocally"):
            with contextlib.suppress(docker.errors.NotFound):
                client.remove_image(plain["name"], force=bool(plain.get("forceRemove")))
        # Image: the native provider's Delete removes nothing; a provider resource has nothing to delete.
        # Forget it only if it is still the resource's current state: the old half of a create-first
        # replacement shares its URN with the new one.
        with self._lock:
            current = self.resources.get(resource.urn)
            if current is not None and current.id == resource.id and not keep_state:
                del self.resources[resource.urn]

    @staticmethod
    def _delete_service(client: docker.APIClient, service_id: str, inputs: dict[str, Any]) -> None:
        """The provider's deleteService: with a stopGracePeriod, the containers of the service's live
        tasks are listed first (by the service's name); ServiceRemove (an error if it is gone); then
        each of those containers is waited for, up to the grace period, and force-removed with its
        volumes, on the provider's own engine (a container on another node is not there: skipped)."""
        grace = inputs["taskSpec"]["containerSpec"].get("stopGracePeriod")
        containers = []
        if grace:
            for task in client.tasks(filters={"service": inputs["name"]}):
                container = task["Status"].get("ContainerStatus", {}).get("ContainerID", "")
                if container.strip() and task["Status"]["State"] != "shutdown":
                    containers.append(container)
        client.remove_service(service_id)
        for container in containers:
            with contextlib.suppress(docker.errors.NotFound, requests.exceptions.RequestException):
                client.wait(container, timeout=_seconds(grace), condition="removed")
            try:
                client.remove_container(container, force=True, v=True)
            except docker.errors.APIError as error:
                if "No such container" not in str(error) and "already in progress" not in str(error):
                    raise

    @staticmethod
    def _retry(action: Callable[[], object], busy: str, *, ignore_missing: bool) -> None:
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

    # provider ----------------------------------------------------------------------------------

    def _create_provider(self, name: str, inputs: dict[str, Any], _: Resource) -> tuple[str, dict[str, Any]]:
        unknown = sorted(set(inputs) - {"host", "sshOpts", "version"})
        if unknown:
            raise NotModelled(f"provider input(s) {', '.join(unknown)}")
        modelled = package_version("pulumi-docker")
        if inputs.get("version", modelled).split(".")[0] != "5":
            raise NotModelled(f"provider version {inputs['version']} (the model is of pulumi-docker 5.x)")
        host = inputs.get("host", "unix:///var/run/docker.sock")
        if not host.startswith("unix://"):
            raise NotModelled(f"a provider host {host} (this stand-in reaches only a local engine)")
        if inputs.get("sshOpts"):
            raise NotModelled("sshOpts on a unix:// host")
        self.base_url = host
        return "docker-provider", dict(inputs)

    # network and volume --------------------------------------------------------------------------

    def _create_network(self, name: str, inputs: dict[str, Any], _: Resource) -> tuple[str, dict[str, Any]]:
        unknown = sorted(set(inputs) - {"name", "driver", "labels", "attachable", "options"})
        if unknown:
            raise NotModelled(f"network input(s) {', '.join(unknown)}")
        self._started()
        created = self.client().create_network(
            inputs["name"],
            driver=inputs.get("driver", "bridge"),
            labels=_labels(inputs.get("labels", [])),
            attachable=inputs.get("attachable") or None,
            options=inputs.get("options") or None,
        )
        network_id = str(created["Id"])
        return network_id, self._read_network(network_id)

    def _read_network(self, network_id: str) -> dict[str, Any]:
        info = self.client().inspect_network(network_id)
        ipam = info.get("IPAM") or {}
        return {
            "name": info["Name"],
            "labels": _label_blocks(info.get("Labels")),
            "driver": info["Driver"],
            "options": info.get("Options") or {},
            "internal": info["Internal"],
            "attachable": info["Attachable"],
            "ingress": info["Ingress"],
            "ipv6": info["EnableIPv6"],
            "ipamDriver": ipam.get("Driver") or "default",
            "ipamOptions": ipam.get("Options") or {},
            "scope": info["Scope"],
        }

    def _create_volume(self, name: str, inputs: dict[str, Any], _: Resource) -> tuple[str, dict[str, Any]]:
        unknown = sorted(set(inputs) - {"name", "labels"})
        if unknown:
            raise NotModelled(f"volume input(s) {', '.join(unknown)}")
        self._started()
        # As the daemon does: creating a volume whose name exists returns the existing one (adopted;
        # Read then records its labels, and a mismatch replaces it on the next run).
        self.client().create_volume(inputs["name"], labels=_labels(inputs.get("labels", [])))
        info = self.client().inspect_volume(inputs["name"])
        state = {
            "name": info["Name"],
            "labels": _label_blocks(info.get("Labels")),
            "driver": info["Driver"],
            "driverOpts": info.get("Options") or {},
            "mountpoint": info["Mountpoint"],
        }
        return info["Name"], state

    # pulumi-tls: made here as hashicorp/terraform-provider-tls makes them -------------------------

    def _create_tls(self, name: str, inputs: dict[str, Any], resource: Resource) -> tuple[str, dict[str, Any]]:
        unknown = sorted(set(inputs) - set(provider.FIELDS[resource.type]))
        if unknown:
            raise NotModelled(f"input(s) {', '.join(unknown)}")
        return tls_resource(resource.type, inputs)

    # images ----------------------------------------------------------------------------------------

    def _create_image(self, name: str, inputs: dict[str, Any], _: Resource) -> tuple[str, dict[str, Any]]:
        unknown = sorted(set(inputs) - {"imageName", "build", "skipPush", "buildOnPreview", "registry"})
        if unknown:
            raise NotModelled(f"image input(s) {', '.join(unknown)}")
        if inputs.get("registry"):
            raise NotModelled("registry credentials (the test registry needs no login)")
        build = inputs["build"]
        allowed = {"context", "dockerfile", "target", "args", "builderVersion", "platform", "contextDigest"}
        unknown = sorted(set(build) - allowed)
        if unknown:
            raise NotModelled(f"image build input(s) {', '.join(unknown)}")
        if build.get("builderVersion", "BuilderBuildKit") != "BuilderBuildKit":
            raise NotModelled(f"builderVersion {build.get('builderVersion')}")
        context = provider.resolve_path(self.workdir, build["context"])
        dockerfile = provider.resolve_path(self.workdir, build["dockerfile"])
        # On the engine the provider talks to (a swarm's manager builds, and pushes, its own image).
        command = [BUILDKIT_DOCKER, "-H", self.base_url, "build", "-f", str(dockerfile), "-t", inputs["imageName"]]
        command += ["--platform", build["platform"]] if build.get("platform") else []
        command += ["--target", build["target"]] if build.get("target") else []
        for key, value in sorted((build.get("args") or {}).items()):
            command += ["--build-arg", f"{key}={value}"]
        started = time.monotonic()
        result = subprocess.run(
            [*command, str(context)],
            capture_output=True,
            text=True,
            timeout=1200,
            env={"DOCKER_BUILDKIT": "1", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
        )
        self.timings.build_seconds += time.monotonic() - started
        if result.returncode != 0:
            raise DeploymentError(f"image {name}: build failed:\n{result.stderr[-3000:]}")
        image_id = self.client().inspect_image(inputs["imageName"])["Id"]
        repo_digest = image_id  # with skipPush: the local image id
        if not inputs.get("skipPush"):
            pushed = subprocess.run(
                [BUILDKIT_DOCKER, "-H", self.base_url, "push", inputs["imageName"]],
                capture_output=True,
                text=True,
                timeout=600,
            )
            found = re.search(r"digest: (sha256:[0-9a-f]{64})", pushed.stdout)
            if pushed.returncode != 0 or not found:
                raise DeploymentError(f"image {name}: push failed:\n{pushed.stdout[-2000:]}{pushed.stderr[-2000:]}")
            repo_digest = f"{inputs['imageName'].rsplit(':', 1)[0]}@{found.group(1)}"
        state = {
            **inputs,
            "repoDigest": repo_digest,
            "baseImageName": inputs["imageName"],
            "registryServer": "",
            "context": str(context),
            "dockerfile": str(dockerfile.relative_to(context))
            if dockerfile.is_relative_to(context)
            else str(dockerfile),
            "platform": build.get("platform", ""),
        }
        return inputs["imageName"], state  # the Image's id is its name and never changes

    def _create_remote_image(self, name: str, inputs: dict[str, Any], _: Resource) -> tuple[str, dict[str, Any]]:
        unknown = sorted(set(inputs) - {"name", "keepLocally", "forceRemove"})
        if unknown:
            raise NotModelled(f"remote image input(s) {', '.join(unknown)}")
        client = self.client()
        try:
            info = client.inspect_image(inputs["name"])
        except docker.errors.ImageNotFound:
            try:  # as the provider does: pull what the engine does not have
                client.pull(inputs["name"])
                info = client.inspect_image(inputs["name"])
            except docker.errors.APIError as error:
                raise DeploymentError(f"remote image {name}: {inputs['name']} could not be pulled: {error}") from None
        digests = info.get("RepoDigests") or []
        state = {**inputs, "imageId": info["Id"], "repoDigest": digests[0] if digests else info["Id"]}
        return f"{info['Id']}{inputs['name']}", state

    # swarm: secrets, configs, services (provider-semantics.md §6) ------------------------------------

    def _create_secret(self, name: str, inputs: dict[str, Any], resource: Resource) -> tuple[str, dict[str, Any]]:
        unknown = sorted(set(inputs) - set(provider.FIELDS[resource.type]))
        if unknown:
            raise NotModelled(f"input(s) {', '.join(unknown)}")
        self._started()
        data = base64.b64decode(inputs["data"])
        labels = _labels(inputs.get("labels", []))
        client = self.client()
        if resource.type == SECRET:
            created = client.create_secret(inputs["name"], data, labels=labels)
        else:
            created = client.create_config(inputs["name"], data, labels=labels)
        # Read writes back only the name (Secret); the inputs stay as they were given.
        return str(created["ID"]), dict(inputs)

    def _create_service(self, name: str, inputs: dict[str, Any], _: Resource) -> tuple[str, dict[str, Any]]:
        unknown = sorted(set(inputs) - SERVICE_APPLIED)
        if unknown:
            raise NotModelled(f"service input(s) {', '.join(unknown)}")
        self._started()
        client = self.client()
        spec = _service_spec(inputs)
        response = client._post_json(client._url("/services/create"), data=spec)  # noqa: SLF001 (raw API, as the provider sends it)
        service_id = str(client._result(response, True)["ID"])  # noqa: SLF001
        if "convergeConfig" in inputs:
            try:
                self._converge(service_id, inputs)
            except DeploymentError:
                # As the provider does: a service that did not converge is removed, nothing recorded.
                with contextlib.suppress(docker.errors.NotFound):
                    client.remove_service(service_id)
                raise
        with self._lock:
            self.timings.healthy[inputs["name"]] = time.monotonic()
        # The daemon keeps the spec as sent (images are given by digest, so it adds no pin).
        return service_id, dict(inputs)

    def _update_service(self, service_id: str, inputs: dict[str, Any]) -> None:
        """ServiceUpdate with the full spec; with convergeConfig, the provider's wait on UpdateStatus."""
        client = self.client()
        version = client.inspect_service(service_id)["Version"]["Index"]
        response = client._post_json(  # noqa: SLF001 (raw API, as the provider sends it)
            client._url("/services/{0}/update", service_id),  # noqa: SLF001
            params={"version": version},
            data=_service_spec(inputs),
        )
        client._result(response, True)  # noqa: SLF001
        if "convergeConfig" not in inputs:
            return
        converge = inputs["convergeConfig"]
        time.sleep(_seconds(converge.get("delay", "7s")))
        deadline = time.monotonic() + _seconds(converge.get("timeout", "3m"))
        while True:
            status = client.inspect_service(service_id).get("UpdateStatus")
            state = status["State"] if status else None
            message = (status or {}).get("Message", "")
            if state is None:  # no update status: converged once the replicas run
                if len(_running_tasks(client, service_id)[0]) == inputs["mode"]["replicated"]["replicas"]:
                    return
            elif state == "completed":
                return
            elif state == "paused":
                raise DeploymentError(f"service {inputs['name']}: service update paused: {message}")
            elif state in ("rollback_completed", "rollback_paused"):
                raise DeploymentError(
                    f"service {inputs['name']}: update failed and was rolled back ({state}): {message}"
                )
            if time.monotonic() > deadline:
                raise DeploymentError(f"service {inputs['name']} did not converge: update {state}: {message}")
            time.sleep(5)

    def _converge(self, service_id: str, inputs: dict[str, Any]) -> None:
        """The provider's wait: `delay`, then poll (every 5 s) until the running tasks on nodes that
        are not down equal the replicas, up to `timeout`."""
        converge = inputs["convergeConfig"]
        replicas = inputs["mode"]["replicated"]["replicas"]
        time.sleep(_seconds(converge.get("delay", "7s")))
        deadline = time.monotonic() + _seconds(converge.get("timeout", "3m"))
        client = self.client()
        while True:
            running, tasks = _running_tasks(client, service_id)
            if len(running) == replicas:
                return
            if time.monotonic() > deadline:
                states = sorted(
                    f"{t['Status']['State']}: {t['Status'].get('Err') or t['Status'].get('Message')}" for t in tasks
                )
                raise DeploymentError(
                    f"service {inputs['name']} did not converge: {len(running)} of {replicas} tasks running"
                    f" ({'; '.join(states)})"
                )
            time.sleep(5)

    # containers ----------------------------------------------------------------------------------

    def _create_container(self, name: str, inputs: dict[str, Any], resource: Resource) -> tuple[str, dict[str, Any]]:
        client = self.client()
        client.inspect_image(inputs["image"])  # the provider pulls only what is missing; nothing can be pulled here
        self._started()
        config, host_config = self._container_config(inputs)
        container_id = str(client.create_container(**config, host_config=host_config, use_config_proxy=False)["Id"])
        resource.id = container_id  # from here on the container is in state, even if a later step fails
        networks = inputs.get("networksAdvanced") or []
        if networks:
            try:
                client.disconnect_container_from_network(container_id, "bridge")
            except docker.errors.APIError as error:
                if "not connected" not in str(error):
                    raise
        for network in networks:
            client.connect_container_to_network(container_id, network["name"], aliases=network.get("aliases") or None)
        for upload in inputs.get("uploads") or []:
            # Copied to `/`, as the provider does: Docker refuses it for a read-only root filesystem.
            client.put_archive(container_id, "/", _upload_archive(upload))
        physical = inputs["name"]
        if inputs.get("start", True):
            client.start(container_id)
            self.timings.started[physical] = time.monotonic()
        state = _with_defaults(resource.inputs)  # secret-marked, as Pulumi keeps secret inputs in state
        if inputs.get("start", True) and inputs.get("wait"):
            try:
                self._wait_healthy_like_the_provider(container_id, inputs)
            except DeploymentError as error:
                resource.state = state  # a failed `wait` returns before the provider's Read: the planned inputs
                resource.init_error = str(error)
                raise
            self.timings.healthy[physical] = time.monotonic()
        logs = None
        if inputs.get("attach"):
            client.wait(container_id, timeout=600)
            if inputs.get("logs"):
                logs = client.logs(container_id).decode(errors="replace")
        state = self._read_container(container_id, state)
        if logs is not None:
            state["containerLogs"] = logs
        return container_id, state

    def _container_config(self, inputs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """ContainerCreate's config and host config, built as resource_docker_container_funcs.go does."""
        client = self.client()
        ports = inputs.get("ports") or []
        binds = []
        for volume in inputs.get("volumes") or []:
            unknown = sorted(set(volume) - {"containerPath", "volumeName", "hostPath", "readOnly"})
            if unknown:
                raise NotModelled(f"volume input(s) {', '.join(unknown)}")
            source = volume.get("hostPath") or volume.get("volumeName")  # host_path wins, as in the provider
            if not source:
                raise NotModelled("an anonymous volume")
            binds.append(f"{source}:{volume['containerPath']}:{'ro' if volume.get('readOnly') else 'rw'}")
        capabilities = inputs.get("capabilities") or {}
        check = inputs.get("healthcheck")
        healthcheck = None
        if check:
            block = {**CONTAINER_FIELDS["healthcheck"].nested_defaults, **check}
            healthcheck = {
                "Test": block["tests"],
                "Interval": provider.parse_go_duration(block["interval"]),
                "Timeout": provider.parse_go_duration(block["timeout"]),
                "StartPeriod": provider.parse_go_duration(block["startPeriod"]),
                "Retries": int(block["retries"]),
            }
            if provider.parse_go_duration(block["startInterval"]):
                raise NotModelled("healthcheck.startInterval (Docker 20.10 has none)")
        memory = int(inputs.get("memory") or 0)
        host_config = client.create_host_config(
            port_bindings={
                f"{int(p['internal'])}/{p.get('protocol', 'tcp')}": [(p.get("ip", "0.0.0.0"), int(p["external"]))]
                for p in ports
            },
            binds=binds or None,
            tmpfs=inputs.get("tmpfs") or None,
            restart_policy={"Name": inputs.get("restart", "no"), "MaximumRetryCount": 0},
            read_only=bool(inputs.get("readOnly")),
            cap_add=capabilities.get("adds"),
            cap_drop=capabilities.get("drops"),
            security_opt=inputs.get("securityOpts"),
            mem_limit=memory * MIB if memory else None,
            memswap_limit=_swap_bytes(inputs.get("memorySwap")),
            nano_cpus=int(float(inputs["cpus"]) * 1e9) if inputs.get("cpus") else None,
            ulimits=[
                docker.types.Ulimit(name=u["name"], soft=int(u["soft"]), hard=int(u["hard"]))
                for u in inputs.get("ulimits") or []
            ]
            or None,
            log_config=docker.types.LogConfig(
                type=inputs.get("logDriver", "json-file"), config=inputs.get("logOpts") or {}
            ),
            network_mode=inputs.get("networkMode", "bridge"),
            init=bool(inputs.get("init", False)),  # Create sends Init=false when unset
        )
        config = {
            "image": inputs["image"],
            "name": inputs["name"],
            "command": inputs.get("command"),
            "entrypoint": inputs.get("entrypoints") or None,
            "environment": inputs.get("envs") or [],
            "labels": _labels(inputs.get("labels", [])),
            "user": inputs.get("user") or "",
            "healthcheck": healthcheck,
            "ports": [(int(p["internal"]), p.get("protocol", "tcp")) for p in ports],
            "stop_timeout": inputs.get("stopTimeout"),
        }
        return config, host_config

    def _wait_healthy_like_the_provider(self, container_id: str, inputs: dict[str, Any]) -> None:
        """Create's wait (resource_docker_container_funcs.go): inspect every second until healthy or timeout."""
        client = self.client()
        timeout = float(inputs.get("waitTimeout", 60))
        deadline = time.monotonic() + timeout
        while True:
            info = client.inspect_container(container_id)
            health = info["State"].get("Health")
            if health is None:
                raise DeploymentError(f"container {inputs['name']} has no healthcheck to wait for")
            if health["Status"] == "healthy":
                return
            if time.monotonic() > deadline:
                probes = health.get("Log") or []
                last = probes[-1]["Output"].strip() if probes else "no probe ran"
                logs = client.logs(container_id, tail=40).decode(errors="replace")
                raise DeploymentError(
                    f"container {inputs['name']} failed to be in healthy state within {timeout:.0f}s "
                    f"(status {info['State']['Status']}, last probe: {last}):\n{logs}"
                )
            time.sleep(1)

    def _read_container(self, container_id: str, prior: dict[str, Any]) -> dict[str, Any]:
        """resource_docker_container_funcs.go:750-981: what Read writes into state from `docker inspect`."""
        info = self.client().inspect_container(container_id)
        config, host, state = info["Config"], info["HostConfig"], dict(prior)
        running = info["State"]["Running"]
        if (running or state.get("mustRun", True)) and state.get("ports"):
            state["ports"] = _flatten_ports((info.get("NetworkSettings") or {}).get("Ports") or {})
        if not running:
            state["exitCode"] = info["State"]["ExitCode"]
            if state.get("mustRun", True):
                state["mustRun"] = False
        image = str(state.get("image", ""))
        health = config.get("Healthcheck")
        state.update(
            name=info["Name"].lstrip("/"),
            rm=host["AutoRemove"],
            readOnly=host["ReadonlyRootfs"],
            image=info["Image"] if image.startswith("sha256:") else config["Image"],
            hostname=config["Hostname"],
            domainname=config["Domainname"],
            command=config.get("Cmd") or [],
            entrypoints=config.get("Entrypoint") or [],
            user=config.get("User") or "",
            dns=host.get("Dns") or [],
            dnsOpts=host.get("DnsOptions") or [],
            securityOpts=host.get("SecurityOpt") or [],
            dnsSearches=host.get("DnsSearch") or [],
            publishAllPorts=host["PublishAllPorts"],
            restart=host["RestartPolicy"]["Name"],
            maxRetryCount=host["RestartPolicy"]["MaximumRetryCount"],
            init=bool(host.get("Init")),
            workingDir=config.get("WorkingDir") or "",
            runtime=host.get("Runtime") or "",
            platform=info.get("Platform") or "",
            tmpfs=host.get("Tmpfs") or {},
            privileged=host["Privileged"],
            memory=host["Memory"] // MIB,
            memoryReservation=host["MemoryReservation"] // MIB
            if host["MemoryReservation"] > 0
            else host["MemoryReservation"],
            memorySwap=host["MemorySwap"] // MIB if host["MemorySwap"] > 0 else host["MemorySwap"],
            shmSize=host["ShmSize"] // MIB,
            cpuShares=host["CpuShares"],
            cpuSet=host.get("CpusetCpus") or "",
            logDriver=host["LogConfig"]["Type"],
            storageOpts=host.get("StorageOpt") or {},
            networkMode=host["NetworkMode"],
            usernsMode=host.get("UsernsMode") or "",
            sysctls=host.get("Sysctls") or {},
            ipcMode=host.get("IpcMode") or "",
            groupAdds=host.get("GroupAdd") or [],
            tty=config["Tty"],
            stdinOpen=config["OpenStdin"],
            stopSignal=config.get("StopSignal") or "",
            stopTimeout=config.get("StopTimeout") or 0,
        )
        if host.get("CapAdd") or host.get("CapDrop"):
            state["capabilities"] = {"adds": host.get("CapAdd") or [], "drops": host.get("CapDrop") or []}
        if host.get("NanoCpus"):
            state["cpus"] = provider.cpus(str(Decimal(host["NanoCpus"]) / 10**9))
        if prior.get("logOpts"):
            state["logOpts"] = host["LogConfig"].get("Config") or {}
        if prior.get("ulimits"):
            state["ulimits"] = [
                {"name": u["Name"], "soft": u["Soft"], "hard": u["Hard"]} for u in host.get("Ulimits") or []
            ]
        if health:
            state["healthcheck"] = {
                "tests": health.get("Test") or [],
                "interval": provider.go_duration(health.get("Interval", 0)),
                "timeout": provider.go_duration(health.get("Timeout", 0)),
                "startPeriod": provider.go_duration(health.get("StartPeriod", 0)),
                "startInterval": provider.go_duration(health.get("StartInterval", 0)),
                "retries": health.get("Retries", 0),
            }
        if host.get("Mounts"):
            raise NotModelled("mounts read back from the engine")
        return state

    def _update_container(self, old: Resource, inputs: dict[str, Any], diff: provider.Diff) -> str:
        """resource_docker_container_funcs.go:991-1077: start if mustRun turned true, one ContainerUpdate."""
        client = self.client()
        notes = []
        if "mustRun" in diff.changed and inputs.get("mustRun", True) and inputs.get("start", True):
            client.start(old.id)
            notes.append("started")
        if set(diff.changed) & CONTAINER_UPDATE_API:
            memory = int(inputs.get("memory") or 0)
            swap = _swap_bytes(inputs.get("memorySwap"))
            client.update_container(
                old.id,
                cpu_shares=int(inputs.get("cpuShares") or 0) or None,
                mem_limit=memory * MIB if memory else None,
                mem_reservation=int(inputs.get("memoryReservation") or 0) * MIB or None,
                memswap_limit=swap if swap else None,  # sent only when non-zero
                cpuset_cpus=inputs.get("cpuSet") or None,
                restart_policy={"Name": inputs.get("restart", "no"), "MaximumRetryCount": 0},
            )
            notes.append("ContainerUpdate")
        state_only = [f for f in diff.changed if f not in CONTAINER_UPDATE_API and f != "mustRun"]
        if state_only:
            notes.append(f"state only, not applied to the running container: {', '.join(state_only)}")
        return "; ".join(notes)

    # --- operations the tests use ------------------------------------------------------------

    def client(self) -> docker.APIClient:
        # One client per call: the SDK registers independent resources from several threads.
        return docker.APIClient(base_url=self.base_url, timeout=300)

    def wait_healthy(self, container: str, timeout: float) -> None:
        """Poll a container until healthy; fail early, with its logs, when it exits or restarts."""
        deadline = time.monotonic() + timeout
        client = self.client()
        restarts_before = client.inspect_container(container)["RestartCount"]
        while True:
            info = client.inspect_container(container)
            state = info["State"]
            if (state.get("Health") or {}).get("Status") == "healthy":
                return
            if state["Status"] == "exited" or info["RestartCount"] > restarts_before:
                logs = client.logs(container, tail=40).decode(errors="replace")
                raise DeploymentError(f"{container} exited with {state['ExitCode']} before it was healthy:\n{logs}")
            if time.monotonic() > deadline:
                probes = (state.get("Health") or {}).get("Log") or []
                last = probes[-1]["Output"].strip() if probes else "no probe ran"
                raise DeploymentError(f"{container} not healthy within {timeout}s (last probe: {last})")
            time.sleep(0.2)

    def ids(self, type_token: str = CONTAINER) -> dict[str, str]:
        """Logical name -> id of every resource of a type in state."""
        return {r.name: r.id for r in self.resources.values() if r.type == type_token}

    def time_to_healthy(self) -> float:
        t = self.timings
        assert t.first_created_at is not None and t.healthy
        return max(t.healthy.values()) - t.first_created_at

    def time_from_first_container_to_healthy(self) -> float:
        t = self.timings
        return max(t.healthy.values()) - min(t.started.values())

    def sweep(self) -> list[str]:
        """Remove everything this deployer created (and only that), protected or not; forget the state."""
        client = self.client()
        removed = []
        label = f"{MARKER[0]}={MARKER[1]}"
        for container in client.containers(all=True, filters={"label": label}):
            client.remove_container(container["Id"], force=True, v=True)
            removed.append(container["Names"][0].lstrip("/"))
        for volume in client.volumes(filters={"label": label}).get("Volumes") or []:
            client.remove_volume(volume["Name"], force=True)
            removed.append(volume["Name"])
        for network in client.networks(filters={"label": label}):
            client.remove_network(network["Id"])
            removed.append(network["Name"])
        self.resources, self.pending_deletes = {}, []
        self._save()
        return removed

    # --- internals --------------------------------------------------------------------------------

    def _started(self) -> None:
        with self._lock:
            if self.timings.first_created_at is None:
                self.timings.first_created_at = time.monotonic()

    def _record(self, step: Step) -> None:
        with self._lock:
            self._steps.append(step)

    def _remember(self, resource: Resource, reg: Registration) -> None:
        resource.dependencies, resource.protect = reg.dependencies, reg.protect
        resource.property_dependencies, resource.replace_on_changes = reg.property_dependencies, reg.replace_on_changes

    def _outputs(self, resource: Resource) -> dict[str, Any]:
        # The program sees the state; secret inputs that Read does not write stay secret-marked.
        return {**resource.inputs, **resource.state}

    def _load(self) -> tuple[dict[str, Resource], list[Resource]]:
        if not self.state_file.exists():
            return {}, []
        data = json.loads(self.state_file.read_text())
        resources = {urn: Resource(**entry) for urn, entry in data["resources"].items()}
        return resources, [Resource(**entry) for entry in data["pending_deletes"]]

    def _save(self) -> None:
        # Like a Pulumi checkpoint it holds secret values; unlike one it is not encrypted: tests only, 0600.
        self.state_file.touch(mode=0o600)
        with self._lock:
            data = {
                "resources": {urn: asdict(resource) for urn, resource in self.resources.items()},
                "pending_deletes": [asdict(resource) for resource in self.pending_deletes],
            }
        self.state_file.write_text(json.dumps(data, indent=1, sort_keys=True, default=str))


# --- helpers --------------------------------------------------------------------------------------

# What this stand-in applies to a Swarm service (pulumi-docker's names; provider-semantics.md §6).
SERVICE_APPLIED = frozenset(
    {"name", "labels", "taskSpec", "mode", "updateConfig", "rollbackConfig", "endpointSpec", "convergeConfig"}
)


def _running_tasks(client: docker.APIClient, service_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(running tasks on nodes that are not down, all tasks meant to run): what the provider's
    converge and update waits count."""
    down = {n["ID"] for n in client.nodes() if n["Status"]["State"] == "down"}
    tasks = client.tasks(filters={"service": service_id, "desired-state": "running"})
    return [t for t in tasks if t["Status"]["State"] == "running" and t.get("NodeID") not in down], tasks


def _upload_archive(upload: dict[str, Any]) -> bytes:
    """The provider's upload: a one-entry tar of `file`, mode `permissions` (octal), else 0744 when
    executable, else 0644; owned by uid and gid 0."""
    given = [key for key in ("content", "contentBase64", "source") if upload.get(key)]
    if len(given) != 1:
        raise DeploymentError(f"upload {upload.get('file')}: exactly one of content, contentBase64, source")
    if given == ["source"]:
        raise NotModelled("an upload from a source file")
    data = upload["content"].encode() if given == ["content"] else base64.b64decode(upload["contentBase64"])
    info = tarfile.TarInfo(upload["file"])
    info.size = len(data)
    info.mode = (
        int(upload["permissions"], 8) if upload.get("permissions") else 0o744 if upload.get("executable") else 0o644
    )
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _seconds(duration: str) -> float:
    """A Go duration ("1m30s", "500ms") in seconds."""
    return provider.parse_go_duration(duration) / 10**9


_ns = provider.parse_go_duration  # a Go duration in nanoseconds, as the Engine API takes it


def _service_spec(inputs: dict[str, Any]) -> dict[str, Any]:
    """The Engine API's ServiceSpec for a pulumi-docker Service's inputs (what the provider sends)."""
    task, container = inputs["taskSpec"], inputs["taskSpec"]["containerSpec"]
    unknown = sorted(
        set(container)
        - {"image", "commands", "args", "env", "user", "readOnly", "capDrops", "init", "healthcheck", "stopGracePeriod",
           "secrets", "configs", "mounts"}
    )  # fmt: skip
    if unknown:
        raise NotModelled(f"service containerSpec input(s) {', '.join(unknown)}")

    def file_ref(entry: dict[str, Any]) -> dict[str, Any]:
        return {"Name": entry["fileName"], "UID": entry.get("fileUid", "0"), "GID": entry.get("fileGid", "0"),
                "Mode": entry.get("fileMode", 0o444)}  # fmt: skip

    spec_container: dict[str, Any] = {
        "Image": container["image"],
        "Args": container.get("args") or [],
        **({"Command": container["commands"]} if container.get("commands") else {}),
        "Env": [f"{k}={v}" for k, v in sorted((container.get("env") or {}).items())],
        "User": container.get("user", ""),
        "ReadOnly": bool(container.get("readOnly")),
        "Init": container.get("init"),
        "StopGracePeriod": _ns(container.get("stopGracePeriod", "0s")),
        "Secrets": [
            {"File": file_ref(e), "SecretID": e["secretId"], "SecretName": e["secretName"]}
            for e in container.get("secrets") or []
        ],
        "Configs": [
            {"File": file_ref(e), "ConfigID": e["configId"], "ConfigName": e["configName"]}
            for e in container.get("configs") or []
        ],
        "Mounts": [
            {
                "Target": m["target"],
                "Type": m["type"],
                "Source": m.get("source", ""),
                "ReadOnly": bool(m.get("readOnly")),
            }
            | (
                {
                    "TmpfsOptions": {
                        "SizeBytes": m["tmpfsOptions"].get("sizeBytes"),
                        "Mode": m["tmpfsOptions"].get("mode"),
                    }
                }
                if m.get("tmpfsOptions")
                else {}
            )
            for m in container.get("mounts") or []
        ],  # fmt: skip
    }
    if container.get("capDrops"):
        spec_container["CapabilityDrop"] = container["capDrops"]
    if container.get("healthcheck"):
        check = container["healthcheck"]
        spec_container["Healthcheck"] = {
            "Test": check["tests"],
            "Interval": _ns(check.get("interval", "0s")),
            "Timeout": _ns(check.get("timeout", "0s")),
            "Retries": check.get("retries", 0),
            "StartPeriod": _ns(check.get("startPeriod", "0s")),
        }
    resources = task.get("resources") or {}
    limits, reservation = resources.get("limits") or {}, resources.get("reservation") or {}
    restart = task.get("restartPolicy") or {}
    log = task.get("logDriver") or {}

    def rollout(block: dict[str, Any] | None) -> dict[str, Any]:
        block = block or {}
        return {
            "Parallelism": block.get("parallelism", 1), "Delay": _ns(block.get("delay", "0s")),
            "FailureAction": block.get("failureAction", "pause"), "Monitor": _ns(block.get("monitor", "5s")),
            "MaxFailureRatio": float(block.get("maxFailureRatio", "0.0")), "Order": block.get("order", "stop-first"),
        }  # fmt: skip

    endpoint = inputs.get("endpointSpec") or {}
    return {
        "Name": inputs["name"],
        "Labels": _labels(inputs.get("labels", [])),
        "TaskTemplate": {
            "ContainerSpec": spec_container,
            "Resources": {
                "Limits": {"NanoCPUs": limits.get("nanoCpus", 0), "MemoryBytes": limits.get("memoryBytes", 0)},
                "Reservations": {
                    "NanoCPUs": reservation.get("nanoCpus", 0),
                    "MemoryBytes": reservation.get("memoryBytes", 0),
                },
            },
            "RestartPolicy": {
                "Condition": restart.get("condition", "any"),
                "Delay": _ns(restart.get("delay", "5s")),
                "Window": _ns(restart.get("window", "0s")),
            },
            "Placement": {"Constraints": (task.get("placement") or {}).get("constraints") or []},
            "Networks": [
                {"Target": n["id"], "Aliases": n.get("aliases") or []} for n in task.get("networksAdvanceds") or []
            ],
            "LogDriver": {"Name": log.get("name", "json-file"), "Options": log.get("options") or {}},
        },  # fmt: skip
        "Mode": {"Replicated": {"Replicas": inputs["mode"]["replicated"]["replicas"]}},
        "UpdateConfig": rollout(inputs.get("updateConfig")),
        "RollbackConfig": rollout(inputs.get("rollbackConfig")),
        "EndpointSpec": {
            "Mode": endpoint.get("mode", "vip"),
            "Ports": [
                {
                    "Protocol": p.get("protocol", "tcp"),
                    "TargetPort": p["targetPort"],
                    "PublishedPort": p.get("publishedPort"),
                    "PublishMode": p.get("publishMode", "ingress"),
                }
                for p in endpoint.get("ports") or []
            ],
        },  # fmt: skip
    }


def _labels(pairs: list[dict[str, str]]) -> dict[str, str]:
    for pair in pairs:
        unknown = sorted(set(pair) - {"label", "value"})
        if unknown:
            raise NotModelled(f"label input(s) {', '.join(unknown)}")
    return {pair["label"]: pair["value"] for pair in pairs} | {MARKER[0]: MARKER[1]}


def _label_blocks(labels: Mapping[str, str] | None) -> list[dict[str, str]]:
    """Labels as Read writes them, less this deployer's own marker (which the program never declared)."""
    return [{"label": k, "value": v} for k, v in sorted((labels or {}).items()) if k != MARKER[0]]


def _flatten_ports(ports: Mapping[str, Any]) -> list[dict[str, Any]]:
    """resource_docker_container_structures.go:35-59: bindings sorted by internal port."""
    flat = []
    for key, bindings in ports.items():
        internal, _, protocol = key.partition("/")
        for binding in bindings or []:
            flat.append(
                {
                    "internal": int(internal),
                    "external": int(binding["HostPort"]),
                    "ip": binding["HostIp"],
                    "protocol": protocol,
                }
            )
    return sorted(flat, key=lambda p: (p["internal"], p["ip"]))


def _swap_bytes(value: Any) -> int | None:
    if not value:
        return None
    return int(value) * MIB if int(value) > 0 else int(value)


def _with_defaults(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The planned state: the inputs, with the schema's defaults for what they leave out."""
    defaults = {k: f.default for k, f in CONTAINER_FIELDS.items() if f.default is not None}
    return {**defaults, **inputs}


def _physical(inputs: Mapping[str, Any]) -> str:
    plain = reveal(inputs)
    return str(plain.get("name") or plain.get("imageName") or "")


def _dependents_first(resources: Iterable[Resource]) -> list[Resource]:
    """Order for deletion: a resource after every resource (in the list) that depends on it. The old
    half of a replacement shares its URN with the new one: each object is ordered on its own."""
    listed = sorted(resources, key=lambda r: (r.urn, r.id))
    ordered: list[Resource] = []
    seen: set[int] = set()

    def visit(resource: Resource) -> None:
        if id(resource) in seen:
            return
        seen.add(id(resource))
        for other in listed:
            if other is not resource and resource.urn in other.dependencies:
                visit(other)
        ordered.append(resource)

    for resource in listed:
        visit(resource)
    return ordered


def dependent_replacements(
    resources: Mapping[str, Resource], replaced: Resource, registered: set[str]
) -> list[Resource]:
    """What the engine deletes before `replaced` when it replaces it delete-first: the state's
    resources that proof.order.dependent_replacements names (the rule plan --diff uses too)."""
    nodes = {
        r.urn: Node(r.urn, r.type, r.name, r.dependencies, r.property_dependencies, r.replace_on_changes, r.protect)
        for r in resources.values()
    }
    try:
        cascade = order.dependent_replacements(nodes, replaced.urn, registered)
    except order.ProtectedDependent as refused:
        raise DeploymentError(str(refused)) from None
    return [resources[node.key] for node, _ in cascade]


# --- pulumi-tls -------------------------------------------------------------------------------------

_USES = {
    "digital_signature": "digital_signature",
    "key_encipherment": "key_encipherment",
    "cert_signing": "key_cert_sign",
    "crl_signing": "crl_sign",
}


def tls_resource(type_token: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Make the key, request or certificate a pulumi-tls resource makes, with `cryptography`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    pem = serialization.Encoding.PEM

    def load_key(text: str) -> Any:
        return serialization.load_pem_private_key(text.encode(), password=None)

    def subject(block: dict[str, Any] | None) -> x509.Name:
        block = block or {}
        names = [x509.NameAttribute(NameOID.COMMON_NAME, block["commonName"])] if block.get("commonName") else []
        if block.get("organization"):
            names.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, block["organization"]))
        return x509.Name(names)

    def certificate(
        name: x509.Name, issuer: x509.Name, public_key: Any, signer: Any, spec: dict[str, Any], dns: list[str]
    ) -> tuple[str, dict[str, Any]]:
        now = datetime.now(UTC)
        end = now + timedelta(hours=int(spec["validityPeriodHours"]))
        uses = set(spec.get("allowedUses") or [])
        usage = {v: k in uses for k, v in _USES.items()}
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=bool(spec.get("isCaCertificate")), path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    content_commitment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                    **usage,
                ),
                critical=True,
            )  # fmt: skip
        )
        if "server_auth" in uses:
            builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        if dns:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
        cert = builder.sign(signer, hashes.SHA256())
        state = {
            **inputs,
            "certPem": cert.public_bytes(pem).decode(),
            "validityStartTime": now.isoformat(),
            "validityEndTime": end.isoformat(),
            "readyForRenewal": False,
        }
        return str(cert.serial_number), state

    if type_token == provider.PRIVATE_KEY:
        algorithm = inputs.get("algorithm")
        if algorithm == "ECDSA" and inputs.get("ecdsaCurve", "P224") == "P256":
            key: Any = ec.generate_private_key(ec.SECP256R1())
            private = key.private_bytes(
                pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
            )
        elif algorithm == "RSA":
            key = rsa.generate_private_key(public_exponent=65537, key_size=int(inputs.get("rsaBits", 2048)))
            private = key.private_bytes(
                pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
            )
        else:
            raise NotModelled(f"private key {algorithm} {inputs.get('ecdsaCurve', '')}")
        public = key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo)
        state = {**inputs, "privateKeyPem": private.decode(), "publicKeyPem": public.decode()}
        return hashlib.sha1(public).hexdigest(), state  # noqa: S324 (an id, as the provider's)
    if type_token == provider.SELF_SIGNED_CERT:
        key = load_key(inputs["privateKeyPem"])
        name = subject(inputs.get("subject"))
        return certificate(name, name, key.public_key(), key, inputs, inputs.get("dnsNames") or [])
    if type_token == provider.CERT_REQUEST:
        key = load_key(inputs["privateKeyPem"])
        dns = inputs.get("dnsNames") or []
        builder = x509.CertificateSigningRequestBuilder().subject_name(subject(inputs.get("subject")))
        if dns:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
        request = builder.sign(key, hashes.SHA256())
        text = request.public_bytes(pem).decode()
        return hashlib.sha1(text.encode()).hexdigest(), {**inputs, "certRequestPem": text}  # noqa: S324
    request = x509.load_pem_x509_csr(inputs["certRequestPem"].encode())
    ca = x509.load_pem_x509_certificate(inputs["caCertPem"].encode())
    san = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = san.get_values_for_type(x509.DNSName)
    return certificate(
        request.subject, ca.subject, request.public_key(), load_key(inputs["caPrivateKeyPem"]), inputs, dns
    )
