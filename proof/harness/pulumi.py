"""The real Pulumi CLI, driven through its Automation API, and what a run did as the engine reports it.

Every deployment the suite makes is a copy of the project (its `Pulumi.yaml`, `__main__.py` and
`infra/`) in a folder of its own, with a file backend of its own, run by the CLI that
scripts/toolchain built (`.venv/bin/pulumi`) through the real Python language host. What a run
did (each resource's step, their order, what forced a replacement) is read from the engine's
events, never from a model of the engine.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulumi import automation as auto
from pulumi.automation.events import EngineEvent, OpType, StepEventMetadata

from infra.identity import PROJECT_DIR

VENV = PROJECT_DIR / ".venv"
PULUMI = VENV / "bin" / "pulumi"
PASSPHRASE = "icb-test-passphrase"  # encrypts the test stacks' secrets (only ever test values)
PROGRAM = ("Pulumi.yaml", "__main__.py", "infra")  # what `pulumi up` runs: the program and its settings
REPLACING = {OpType.REPLACE, OpType.CREATE_REPLACEMENT, OpType.DELETE_REPLACED}


class ToolchainMissing(RuntimeError):
    """The CLI or a plugin is not where scripts/toolchain puts it; the message says what to run."""


def pulumi_home() -> Path:
    return Path(os.environ.get("PULUMI_HOME") or VENV / "pulumi-home")


def check_toolchain() -> str:
    """`pulumi version`, once the CLI and Pulumi's docker and tls plugins are in place; else one clear error."""
    install = "scripts/toolchain (ICB_PLUGINS_FROM=DIR where Pulumi's plugin downloads cannot be reached)"
    if not PULUMI.exists():
        raise ToolchainMissing(f"no Pulumi CLI at {PULUMI}: run {install}")
    plugins = pulumi_home() / "plugins"
    for name in ("docker", "tls"):
        if not any(plugins.glob(f"resource-{name}-v*/pulumi-resource-{name}")):
            raise ToolchainMissing(f"no {name} resource plugin in {plugins}: run {install}")
    return subprocess.run([str(PULUMI), "version"], capture_output=True, text=True, check=True).stdout.strip()


# --- what a run did -------------------------------------------------------------------------------


@dataclass
class Step:
    """One step the engine took for a resource, from its events: its op, what changed, when."""

    op: str  # the engine's op: same, create, update, delete, replace, create-replacement, delete-replaced, refresh...
    type: str
    name: str
    urn: str
    keys: tuple[str, ...] = ()  # the properties that force a replacement
    diffs: tuple[str, ...] = ()  # the properties that differ
    started: float = 0.0  # time.monotonic() when the engine began it
    finished: float | None = None
    failed: bool = False
    old: Mapping[str, Any] | None = None  # the state before (refresh: what state held)
    new: Mapping[str, Any] | None = None  # the state after (refresh: what Read found; None when gone)

    def line(self) -> str:
        text = f"{self.op:<18} {self.type.split(':')[-1]:<14} {self.name}"
        if self.keys:
            text += f" [replace: {', '.join(self.keys)}]"
        elif self.diffs:
            text += f" [diff: {', '.join(self.diffs)}]"
        return text + (" FAILED" if self.failed else "")


@dataclass
class RunResult:
    """An `up`, `refresh` or `destroy` as the engine reported it: its steps in the order they began,
    its outputs, what the CLI printed, and how long it took."""

    stack: str
    steps: list[Step] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    stdout: str = ""
    seconds: float = 0.0
    error: str = ""

    def of(self, name: str) -> list[Step]:
        return [s for s in self.steps if s.name == name]

    def ops(self) -> dict[str, str]:
        """Resource name -> what the run did to it: same, create, update, replace, delete (refresh:
        same, update when Read found it changed, delete when it was gone), pending (the old object of
        an earlier run's failed replacement, deleted now), or failed (a step of it failed)."""
        result: dict[str, str] = {}
        for name in dict.fromkeys(s.name for s in self.steps):
            ops = {s.op for s in self.of(name)}
            if any(s.failed for s in self.of(name)):
                result[name] = "failed"
            elif ops & {"replace", "create-replacement"}:
                result[name] = "replace"
            elif ops == {"delete-replaced"}:
                result[name] = "pending"
            elif "refresh" in ops and ops - {"refresh"}:
                # This CLI follows each refresh step with the diff it found: same, update or delete.
                result[name] = next(iter(sorted(ops - {"refresh"})))
            elif "refresh" in ops:
                step = self.of(name)[-1]
                result[name] = "delete" if step.new is None else "update" if self.drift(name) else "same"
            else:
                result[name] = next(iter(sorted(ops)))
        return result

    def touched(self, op: str) -> set[str]:
        return {name for name, done in self.ops().items() if done == op}

    def pending_deleted(self) -> set[str]:
        """The resources whose old objects an earlier, failed run left pending deletion, deleted by this
        one: more of their old objects deleted than replacements created."""

        def count(name: str, op: str) -> int:
            return sum(s.op == op for s in self.of(name))

        names = dict.fromkeys(s.name for s in self.steps)
        return {name for name in names if count(name, "delete-replaced") > count(name, "create-replacement")}

    def drift(self, name: str) -> set[str]:
        """A refresh: the properties Read found changed from what state held (the engine's diff where
        it reports one, else the outputs compared)."""
        step = self.of(name)[-1]
        if step.diffs:
            return set(step.diffs)
        old, new = dict(step.old or {}), dict(step.new or {})
        return {k for k in set(old) | set(new) if old.get(k) != new.get(k)}

    def replaced_first_by_delete(self, name: str) -> bool:
        """Whether the engine deleted the old object before it created the new one."""
        order = [s.op for s in self.of(name)]
        return (
            "delete-replaced" in order
            and "create-replacement" in order
            and (order.index("delete-replaced") < order.index("create-replacement"))
        )

    def cascade(self, name: str) -> set[str]:
        """The engine's delete-first cascade for `name`: the other resources whose old objects it
        deleted before creating `name`'s replacement (they are created again after it)."""
        created = next((s.started for s in self.of(name) if s.op == "create-replacement"), None)
        if created is None:
            return set()
        return {s.name for s in self.steps if s.op == "delete-replaced" and s.name != name and s.started < created}

    def replaces(self, name: str) -> set[str]:
        return {key for s in self.of(name) for key in s.keys}

    def order(self, *names: str) -> list[str]:
        """The names in the order the engine began their first step that changed something."""
        begun = [s.name for s in self.steps if s.op not in ("same", "read") and (not names or s.name in names)]
        return list(dict.fromkeys(begun))

    def built(self) -> bool:
        """Whether the run built an image: a create or update of the native Image."""
        return any(s.type.endswith(":Image") and s.op in ("create", "update", "create-replacement") for s in self.steps)

    def build_seconds(self) -> float:
        """Seconds the run spent building images (its native Image steps that built)."""
        return sum(
            (s.finished or s.started) - s.started
            for s in self.steps
            if s.type.endswith(":Image") and s.op in ("create", "update", "create-replacement")
        )

    def span(self, type_suffix: str) -> float:
        """Seconds from the first step of that type beginning to the last one ending: for containers,
        which the provider creates once healthy, the time from the first start to all healthy."""
        steps = [s for s in self.steps if s.type.endswith(type_suffix) and s.finished is not None]
        return (max(s.finished or 0.0 for s in steps) - min(s.started for s in steps)) if steps else 0.0

    def duration(self, name: str) -> float:
        """Seconds from the start of a resource's first step to the end of its last."""
        steps = self.of(name)
        ends = [s.finished for s in steps if s.finished is not None]
        return (max(ends) - min(s.started for s in steps)) if ends else 0.0

    def preview(self) -> str:
        """The run as the engine reported it: its steps, then what the CLI printed."""
        steps = "\n".join(s.line() for s in self.steps)
        return f"{self.stack}: steps from the engine's events\n{steps}\n--- pulumi printed ---\n{self.stdout[-6000:]}"


class RunFailed(AssertionError):
    """`pulumi up` (or refresh, destroy) failed; it carries what the engine did before it stopped."""

    def __init__(self, result: RunResult) -> None:
        self.result = result
        super().__init__(f"`pulumi` on {result.stack} failed:\n{result.error[-4000:]}\n{result.preview()}")


class EventLog:
    """Collects the engine's step events while a run goes (the Automation API calls it from a thread)."""

    def __init__(self, stack: str) -> None:
        self.result = RunResult(stack)
        self._open: dict[tuple[str, str], Step | None] = {}
        self._lock = threading.Lock()

    def __call__(self, event: EngineEvent) -> None:
        now = time.monotonic()
        pre, done, failed = event.resource_pre_event, event.res_outputs_event, event.res_op_failed_event
        with self._lock:
            if pre is not None and self._counts(pre.metadata):
                step = _step(pre.metadata, now)
                self.result.steps.append(step)
                self._open[(step.urn, step.op)] = step
            ended = [(done.metadata, False)] if done is not None else []
            ended += [(failed.metadata, True)] if failed is not None else []
            for metadata, is_failure in ended:
                if not self._counts(metadata):
                    continue
                key = (metadata.urn, str(metadata.op.value))
                begun = self._open.pop(key, None)
                if begun is None:
                    begun = _step(metadata, now)
                    self.result.steps.append(begun)
                begun.finished, begun.failed = now, is_failure
                begun.new = metadata.new.outputs if metadata.new is not None else None

    @staticmethod
    def _counts(metadata: StepEventMetadata) -> bool:
        """Resources that are objects on an engine: not the stack, components or providers."""
        state = metadata.new or metadata.old
        return bool(state is not None and state.custom) and not metadata.type.startswith("pulumi:providers:")


def _step(metadata: StepEventMetadata, now: float) -> Step:
    return Step(
        op=metadata.op.value, type=metadata.type, name=metadata.urn.split("::")[-1], urn=metadata.urn,
        keys=tuple(metadata.keys or ()), diffs=tuple(metadata.diffs or ()), started=now,
        old=metadata.old.outputs if metadata.old is not None else None,
        new=metadata.new.outputs if metadata.new is not None else None,
    )  # fmt: skip


# --- a stack of the program, in a project folder of its own ----------------------------------------


class ProjectStack:
    """One stack of a copy of the project, with its own file backend, run by the real CLI."""

    def __init__(
        self, workspace: Path, name: str, stack_file: Path, extra_env: Mapping[str, str] | None = None
    ) -> None:
        self.name = name
        self.dir = workspace / "project"
        self.dir.mkdir(parents=True)
        for entry in PROGRAM:
            source = PROJECT_DIR / entry
            if source.is_dir():
                shutil.copytree(source, self.dir / entry, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, self.dir / entry)
        shutil.copy2(stack_file, self.dir / f"Pulumi.{name}.yaml")
        backend = workspace / "state"
        backend.mkdir()
        self.env = {
            "PULUMI_HOME": str(pulumi_home()),
            "PULUMI_BACKEND_URL": backend.as_uri(),
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PATH": f"{VENV / 'bin'}:{os.environ.get('PATH', '')}",
            **(extra_env or {}),
        }
        # The checkpoint, as the last run left it: only runs and `cli` (state commands) change it.
        self._checkpoint: list[dict[str, Any]] | None = None
        command = auto.PulumiCommand(root=str(VENV), skip_version_check=True)
        self.stack = auto.create_or_select_stack(
            stack_name=name,
            work_dir=str(self.dir),
            opts=auto.LocalWorkspaceOptions(work_dir=str(self.dir), env_vars=self.env, pulumi_command=command),
        )

    # --- config ---------------------------------------------------------------------------------

    def set_config(self, values: Mapping[str, str], secret_keys: Iterable[str] = ()) -> None:
        """Full keys (`ichrisbirch:postgresImage`) -> values; those in `secret_keys` set as secrets. A
        value that is a JSON list or object is set as one (the CLI checks a key's declared type)."""
        if not values:
            return
        secret = set(secret_keys)
        entries: dict[str, dict[str, Any]] = {}
        for key, value in values.items():
            entry: dict[str, Any] = {"value": value, "secret": key in secret}
            if value[:1] in ("[", "{"):
                with contextlib.suppress(ValueError):  # not JSON: a plain string that starts so
                    entry["objectValue"] = json.loads(value)
            entries[key] = entry
        self.stack.set_all_config_json(json.dumps(entries))

    def remove_config(self, *keys: str) -> None:
        if keys:
            self.stack.remove_all_config(list(keys))

    # --- runs -----------------------------------------------------------------------------------

    def up(
        self, *, replace: Iterable[str] = (), program: Callable[[], None] | None = None, **options: Any
    ) -> RunResult:
        """`pulumi up --yes` against the state the last run left; `replace`: resource names."""
        urns = [self.urn(name) for name in replace]
        return self._run(
            lambda log, out: self.stack.up(
                on_event=log, on_output=out, replace=urns or None, program=program, color="never", **options
            )
        )

    def preview(self, **options: Any) -> RunResult:
        return self._run(lambda log, out: self.stack.preview(on_event=log, on_output=out, color="never", **options))

    def refresh(self) -> RunResult:
        return self._run(lambda log, out: self.stack.refresh(on_event=log, on_output=out, color="never"))

    def destroy(self) -> RunResult:
        return self._run(lambda log, out: self.stack.destroy(on_event=log, on_output=out, color="never"))

    def _run(self, action: Callable[[EventLog, Callable[[str], None]], Any]) -> RunResult:
        self._checkpoint = None
        log = EventLog(self.name)
        printed: list[str] = []
        started = time.monotonic()
        try:
            done = action(log, printed.append)
        except auto.CommandError as error:
            log.result.seconds, log.result.stdout = time.monotonic() - started, "\n".join(printed)
            log.result.error = str(error)
            raise RunFailed(log.result) from None
        log.result.seconds, log.result.stdout = time.monotonic() - started, "\n".join(printed)
        outputs = getattr(done, "outputs", None)
        if outputs is not None:
            log.result.outputs = {k: v.value for k, v in outputs.items()}
        return log.result

    def cli(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """The CLI itself in this project (`pulumi state unprotect`, `pulumi stack history`)."""
        self._checkpoint = None
        return subprocess.run(
            [str(PULUMI), *args, "--stack", self.name, "--non-interactive"],
            cwd=self.dir, env={**os.environ, **self.env}, capture_output=True, text=True, check=check, timeout=timeout,
        )  # fmt: skip

    # --- state ----------------------------------------------------------------------------------

    def resources(self) -> list[dict[str, Any]]:
        """The resources in the stack's checkpoint, as the engine wrote it (read once after each run:
        `pulumi stack export` starts the CLI, and the tests ask for containers' names often)."""
        if self._checkpoint is None:
            deployment = self.stack.export_stack().deployment or {}
            self._checkpoint = list(deployment.get("resources") or [])
        return list(self._checkpoint)

    def changed_elsewhere(self) -> None:
        """A command outside this object (`scripts/ops maintenance`) may have run an update."""
        self._checkpoint = None

    def resource(self, name: str, type_token: str | None = None) -> dict[str, Any]:
        found = [r for r in self.resources() if r["urn"].split("::")[-1] == name and r.get("custom")
                 and (type_token is None or r["type"] == type_token) and not r.get("delete")]  # fmt: skip
        assert len(found) == 1, f"{self.name}: {len(found)} resources named {name!r} in state"
        return found[0]

    def urn(self, name: str) -> str:
        return str(self.resource(name)["urn"])

    def outputs(self) -> dict[str, Any]:
        return {k: v.value for k, v in self.stack.outputs().items()}

    def unprotect_all(self) -> None:
        self.cli("state", "unprotect", "--all", "--yes")
