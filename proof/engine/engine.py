"""The Pulumi engine, stood in for: one `pulumi up` (or `refresh`) of the program against the state
the last run left, its steps decided by the engine's rules (`rules.py`) and carried out by one
handler per resource type (`handlers/`).

It is a Pulumi `Mocks`: the SDK registers each resource with it as the program runs, and it answers
with the resource's outputs once its step is done, as the engine's step generator and executor do
(step_generator.go, step_executor.go).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from pulumi.runtime.mocks import MockCallArgs, MockResourceArgs, Mocks

from proof import provider
from proof.engine import rules
from proof.engine.handlers.base import LOCAL_ENGINE, Docker, Handler
from proof.engine.report import DeploymentError, Step, Timings, UpFailed, UpResult
from proof.engine.state import Resource, State, physical_name
from proof.mocks import RecordingMonitor, Registration, Run, run_program, whole_numbers
from proof.provider import NotModelled, reveal


class _UnretrievedProgramError(logging.Filter):
    """When the program fails (a migrate gate), the SDK's asyncio loop logs the same error once for
    every output that depended on it. The run's error already carries it: keep the log readable."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "exception was never retrieved" not in record.getMessage()


logging.getLogger("asyncio").addFilter(_UnretrievedProgramError())


class Engine(Mocks):
    def __init__(self, state_file: Path, handlers: Mapping[str, Handler], workdir: Path) -> None:
        self.store = State(state_file)
        self.handlers = handlers
        self.docker = Docker(workdir)  # what the handlers reach: the engine, the workdir, the timings
        self._monitor: RecordingMonitor | None = None
        self._steps: list[Step] = []
        self._targets: set[str] = set()  # `--replace`
        self._cascaded: dict[str, str] = {}  # URN -> the delete-first replacement that deleted it first
        self._failed: str | None = None  # the first step that failed in this update
        self._replaced_later: list[Resource] = []  # old halves of create-first replacements

    @property
    def resources(self) -> dict[str, Resource]:
        return self.store.resources

    @property
    def timings(self) -> Timings:
        return self.docker.timings

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
        self._steps, self._targets, self._replaced_later = [], set(replace), []
        self._cascaded, self._failed = {}, None
        self.docker.timings = Timings()
        self._monitor = RecordingMonitor(self)
        registered_before = set(self.store.resources)
        run: Run | None = None
        error: BaseException | None = None
        # What an earlier run left pending deletion goes at the end, with this run's deletes, and
        # only if this run succeeds (pulumi/pulumi a3128e50be: pending deletes do not run first).
        pending, self.store.pending_deletes = self.store.pending_deletes, []
        try:
            run = run_program(stack, config, secret_keys, self, program=program, monitor=self._monitor)
            registered = {r.urn for r in self._monitor.run.resources}
            removed = [self.store.resources[u] for u in registered_before - registered]
            self._delete_at_end(removed=removed, replaced=self._replaced_later, pending=pending)
        except Exception as failure:  # noqa: BLE001 (the result carries it; UpFailed re-raises)
            error = failure
            # A create-first replacement marks the old object for deletion as soon as the new one
            # exists (step.go, CreateStep.Apply): after a failure those stay pending, with the rest.
            self.store.pending_deletes = [*pending, *self.store.pending_deletes, *self._replaced_later]
        finally:
            self.store.save()
        result = UpResult(stack, self._steps, run, error, self.timings)
        print(result.preview())  # what `pulumi up` shows; pytest prints it with a failing test
        if error is not None:
            raise UpFailed(result) from error
        return result

    def refresh(self, stack: str) -> UpResult:
        """`pulumi refresh --yes`: every resource read back as its provider's Read does. An object
        gone from the engine leaves state (the next `up` creates it); one changed by hand records its
        drift (the next `up` diffs the program against it). Nothing is created or deleted."""
        self._steps, self.docker.timings = [], Timings()
        try:
            for resource in list(self.store.resources.values()):
                read = self._handler(resource.type).read(resource, self._engine_of(resource.provider))
                if read is None:
                    with self.store.lock:
                        del self.store.resources[resource.urn]
                    self._record(Step("delete", resource.type, resource.name, resource.physical(), note="gone"))
                    continue
                drift = tuple(
                    sorted(k for k in set(read) | set(resource.state) if read.get(k) != resource.state.get(k))
                )
                resource.state = read
                self._record(Step("update" if drift else "same", resource.type, resource.name,
                                  physical_name(read), changed=drift, note="read back" if drift else ""))  # fmt: skip
        finally:
            self.store.save()
        result = UpResult(stack, self._steps, None, None, self.timings)
        print(result.preview())
        return result

    def unprotect(self, *names: str) -> None:
        """`pulumi state unprotect <urn>` for the resources of these logical names: the next update
        may delete or replace them (a program that still protects them protects them again)."""
        with self.store.lock:
            found = [r for r in self.store.resources.values() if r.name in names]
            assert {r.name for r in found} == set(names), f"not in state: {set(names) - {r.name for r in found}}"
            for resource in found:
                resource.protect = False
        self.store.save()

    # --- Mocks: each registration becomes a step ---------------------------------------------

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        raise DeploymentError(f"provider function {args.token} is not modelled by the engine stand-in")

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        assert self._monitor is not None
        registration = self._monitor.current()
        if not args.custom:
            return "", {}  # a component (the program's Deployment): nothing to create
        if registration.unmodelled_options:
            raise DeploymentError(
                f"{registration.type} {registration.name}: the resource option(s) "
                f"{', '.join(registration.unmodelled_options)} are not modelled by the engine stand-in"
            )
        rules.refuse_after_failure(registration, self._failed)
        try:
            return self._step(registration, whole_numbers(dict(args.inputs)))
        except NotModelled as error:
            self._failed = self._failed or f"{registration.name}: {error} is not modelled"
            raise DeploymentError(f"{registration.type} {registration.name}: {error} is not modelled") from None
        except Exception as error:
            self._failed = self._failed or f"{registration.name} failed: {error}"
            raise

    def _step(self, reg: Registration, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """step_generator.go generateSteps: check, diff, and same / update / replace / create."""
        handler = self._handler(reg.type)
        old = self.store.get(reg.urn)
        inputs = rules.with_ignored_changes(old, inputs, reg.ignore_changes)
        named = rules.autoname(reg, inputs, old, self._targets) if handler.autonamed else inputs
        checked = handler.check(reg.type, named, self._engine_of(_provider_urn(reg)))
        if old is None:
            cause = self._cascaded.pop(reg.urn, None)
            if cause is not None:  # its first half happened before `cause` was deleted
                step = Step("replace", reg.type, reg.name, physical_name(checked), replaces=(f"{cause}'s outputs",),
                            delete_first=True, note=f"a dependent of {cause}")  # fmt: skip
                return self._create(reg, checked, step)
            return self._create(reg, checked, Step("create", reg.type, reg.name, physical_name(checked)))
        recorded = old.inputs if handler.diffs_inputs else old.state
        if not handler.diffs_inputs:
            checked = rules.ignored_in_diff(recorded, checked, reg.ignore_changes)
        diff = handler.diff(reg.type, recorded, checked, reg.replace_on_changes)
        diff = rules.forced_replacement(diff, reg, self._targets)
        physical = physical_name(checked)
        if diff.kind == "same":
            if rules.update_after_init_error(old):
                # The bridge forces an update after a failed Create, re-diffs, finds nothing and sends nothing.
                self._record(Step("update", reg.type, reg.name, physical, note="after a failed create: nothing sent"))
                old.init_error = ""
            else:
                self._record(Step("same", reg.type, reg.name, physical))
            self._remember(old, reg)
            return old.id, self._outputs(old)
        if diff.kind == "update":
            return self._update(reg, old, checked, diff)
        rules.refuse_protected_replacement(old, reg, diff.replaces)
        # The inputs before autonaming: only a name the program gives forces delete-first, not Check's.
        delete_first = rules.deletes_first(reg, inputs)
        step = Step("replace", reg.type, reg.name, physical, diff.changed, diff.replaces, delete_first)
        if delete_first:
            self._delete_cascade(old, reg.name)
            self._delete(old)
            return self._create(reg, checked, step)
        try:
            created = self._create(reg, checked, step)
        except Exception:
            if rules.marks_old_pending(old, self.store.get(reg.urn)):
                self.store.pending_deletes.append(old)
            raise
        self._replaced_later.append(old)
        return created

    # --- carrying the steps out ---------------------------------------------------------------

    def _create(self, reg: Registration, inputs: dict[str, Any], step: Step) -> tuple[str, dict[str, Any]]:
        resource = Resource(reg.type, reg.name, reg.urn, "", inputs, {}, reg.dependencies, reg.protect)
        self._remember(resource, reg)
        try:
            resource.id, resource.state = self._handler(reg.type).create(
                resource, reveal(inputs), self._engine_of(resource.provider)
            )
        finally:
            if resource.id:  # the object exists: in state even when a later step of Create failed
                self.store.put(resource)
                self._record(step)
        return resource.id, self._outputs(resource)

    def _update(
        self, reg: Registration, old: Resource, inputs: dict[str, Any], diff: provider.Diff
    ) -> tuple[str, dict[str, Any]]:
        step = Step("update", reg.type, reg.name, physical_name(inputs), diff.changed)
        try:
            old.id, old.state, step.note = self._handler(reg.type).update(
                old, inputs, diff, self._engine_of(old.provider)
            )
        finally:
            self._record(step)
        old.inputs = inputs
        self._remember(old, reg)
        return old.id, self._outputs(old)

    def _delete_at_end(self, *, removed: list[Resource], replaced: list[Resource], pending: list[Resource]) -> None:
        """The deletes of a successful update, after every registration (step_generator.go
        GenerateDeletes): what the program no longer declares, the old halves of create-first
        replacements, and what an earlier update left pending deletion, dependents first."""
        kinds = {id(r): "removed" for r in removed} | {id(r): "replaced" for r in replaced}
        kinds |= {id(r): "pending" for r in pending}
        deleting = [*removed, *replaced, *pending]
        for resource in rules.deletion_order(deleting):
            kind = kinds[id(resource)]
            if resource.protect and kind == "removed":
                raise DeploymentError(f"{resource.type} {resource.name} is protected; it cannot be deleted")
            self._delete(resource, keep_state=kind == "pending", along=rules.deleted_along(resource, deleting))
            if kind == "removed":
                self._record(Step("delete", resource.type, resource.name, physical_name(resource.inputs)))
            elif kind == "pending":
                self._record(Step("delete", resource.type, resource.name, resource.physical(), note="pending"))

    def _delete_cascade(self, replaced: Resource, cause: str) -> None:
        """Before deleting `replaced` for a delete-first replacement, the dependents its replacement
        would replace go first (rules.dependent_replacements), dependents first. Each is created
        again when it registers, and recorded then as one delete-first replacement."""
        assert self._monitor is not None
        with self.store.lock:
            registered = {r.urn for r in self._monitor.run.resources}
            cascade = rules.dependent_replacements(self.store.resources, replaced, registered)
        for dependent in rules.deletion_order(cascade):
            self._delete(dependent, along=rules.deleted_along(dependent, [replaced, *cascade]))
            self._cascaded[dependent.urn] = cause

    def _delete(self, resource: Resource, *, keep_state: bool = False, along: bool = False) -> None:
        if not along:  # a resource deleted_with another goes with it: no call to its provider
            self._handler(resource.type).delete(resource, reveal(resource.inputs), self._engine_of(resource.provider))
        if not keep_state:
            self.store.forget(resource)

    # --- internals --------------------------------------------------------------------------------

    def _engine_of(self, provider_urn: str) -> Docker:
        """The Docker engine a resource's provider talks to: the provider resource's `host` (a
        stack may declare several, one per engine), or the local engine for a default provider."""
        declared = self.store.get(provider_urn) if provider_urn else None
        host = str(reveal(declared.inputs).get("host") or LOCAL_ENGINE) if declared else LOCAL_ENGINE
        return dataclasses.replace(self.docker, base_url=host)

    def _handler(self, type_token: str) -> Handler:
        handler = self.handlers.get(type_token)
        if handler is None:
            raise NotModelled(f"resource type {type_token}")
        return handler

    def _record(self, step: Step) -> None:
        with self.store.lock:
            self._steps.append(step)

    @staticmethod
    def _remember(resource: Resource, reg: Registration) -> None:
        resource.dependencies, resource.protect = reg.dependencies, reg.protect
        resource.property_dependencies, resource.replace_on_changes = reg.property_dependencies, reg.replace_on_changes
        resource.deleted_with, resource.provider = reg.deleted_with, _provider_urn(reg)

    @staticmethod
    def _outputs(resource: Resource) -> dict[str, Any]:
        # The program sees the state; secret inputs that Read does not write stay secret-marked.
        return {**resource.inputs, **resource.state}


def _provider_urn(reg: Registration) -> str:
    """The URN of a registration's provider resource (its reference is "<urn>::<id>")."""
    return reg.provider.rsplit("::", 1)[0]
