"""What a run did, as `pulumi up` prints it: its steps, the figures the suite reports, the result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal

if TYPE_CHECKING:
    from proof.mocks import Run

Operation = Literal["same", "create", "update", "replace", "delete"]


class DeploymentError(RuntimeError):
    """A step failed, or the program asked for something the engine refuses."""


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

    SYMBOLS: ClassVar[dict[str, str]] = {"same": " ", "create": "+", "update": "~", "replace": "+-", "delete": "-"}

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
