"""What the suite's workers share within one run. pytest-xdist runs the test modules side by side
(scripts/test), each worker a process of its own: this gives them a folder of the run's own, work done
once for the whole run, and host ports claimed so that no two deployments ask for the same one.

The run's id is made by the process that starts the run and inherited by its workers (the
environment), so one `pytest` without workers works the same way.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from proof.harness.cli import (
    DOCKER,
    TEST_LABEL,
    build_cache_size,
    docker,
    images,
    images_made_since,
    labelled,
    remove_objects,
)
from proof.harness.clients import free_port, port_is_free
from proof.harness.pulumi import ToolchainMissing, check_toolchain

RUN_ID = os.environ.setdefault("ICB_TEST_RUN", uuid.uuid4().hex[:12])
RUN_DIR = Path(tempfile.gettempdir()) / f"icb-run-{RUN_ID}"
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")  # gw0, gw1, ... under pytest-xdist


@contextmanager
def run_lock(name: str) -> Iterator[Path]:
    """Held by one worker of the run at a time; yields the run's folder."""
    RUN_DIR.mkdir(exist_ok=True)
    with (RUN_DIR / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield RUN_DIR
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def once_per_run(name: str, action: Callable[[], None]) -> None:
    """`action` by the first worker that gets here; the others wait for it, then go on."""
    with run_lock(name) as folder:
        done = folder / f"{name}.done"
        if not done.exists():
            action()
            done.touch()


def claim_port(preferred: int | None = None) -> int:
    """A host port no other deployment of this run has claimed and nothing listens on: `preferred`
    (a stack's committed one) when it is both, else one the kernel hands out."""
    with run_lock("ports") as folder:
        ledger = folder / "ports"
        claimed = {int(p) for p in ledger.read_text().split()} if ledger.exists() else set()
        port = preferred if preferred and preferred not in claimed and port_is_free(preferred) else free_port()
        while port in claimed:
            port = free_port()
        with ledger.open("a") as out:
            out.write(f"{port}\n")
        return port


def end_run() -> None:
    shutil.rmtree(RUN_DIR, ignore_errors=True)


# --- the engine before and after the run ----------------------------------------------------------


def engine_problem() -> str | None:
    """Why the Docker tests cannot run here (no toolchain, no client, no engine), or None."""
    try:
        check_toolchain()
    except ToolchainMissing as missing:
        return str(missing)
    if not Path(DOCKER).exists():
        return f"{DOCKER} not found (apt-get install docker.io)"
    try:
        result = docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=20)
    except subprocess.TimeoutExpired:
        return "docker info timed out"
    return None if result.returncode == 0 else f"no Docker engine answers: {result.stderr.strip()}"


MANAGED_LABEL = "ichrisbirch.managed-by=pulumi"  # on every container, network and volume the program makes


def remove_labelled() -> list[tuple[str, str]]:
    """Removes every container, volume and network that carries the suite's own label (what it runs
    beside the stacks: a bucket, builds); returns (kind, id) of each."""
    found = labelled(TEST_LABEL)
    remove_objects(found)
    return found


@dataclass(frozen=True)
class EngineBefore:
    """The engine as the run found it: what it made afterwards is what it must have removed."""

    images: dict[str, set[str]]
    build_cache: str
    managed: frozenset[tuple[str, str]]  # the program's objects already there (a developer's own stacks)

    @classmethod
    def take(cls) -> EngineBefore:
        return cls(images(), build_cache_size(), frozenset(labelled(MANAGED_LABEL)))

    def left_behind(self) -> list[str]:
        """Every container, network and volume the suite labelled or the program made during the run,
        and every image made since (the stand-ins aside), each named; all removed, so the next run
        starts clean either way."""
        stacks = [found for found in labelled(MANAGED_LABEL) if found not in self.managed]
        remove_objects(stacks)
        named = [f"{kind} {item}" for kind, item in [*remove_labelled(), *stacks]]
        made = images_made_since(self.images)
        for image, names in made.items():
            # An untagged one is named by when it was made and what its labels say it is.
            about = docker("image", "inspect", "-f", "{{.Created}} {{json .Config.Labels}}", image, check=False)
            tags = " ".join(sorted(names)) or "<untagged>"
            named.append(f"image {image[7:19]} {tags} ({about.stdout.strip()[:300]})")
        if made:
            docker("rmi", "-f", *made, check=False)
        return named
