"""Restore a dump of the backup service into a stack's Postgres.

    scripts/restore prod                                  # the newest good dump
    scripts/restore prod ichrisbirch-20261127T030000Z.dump
    python -m infra.restore prod --docker-host ssh://deploy@db-host

1. The dump must match its checksum and be readable by `pg_restore --list`; otherwise it is
   refused and nothing is touched (exit 2).
2. The writers (the stack's api, app and scheduler containers) are stopped gracefully.
3. `pg_restore --clean` runs in one transaction: a failure leaves the database as it was.
4. The migrations run again (the stack's migrate container), so the schema is the current one.
5. The writers start again, and the restore ends once they are healthy. They start again even
   when step 3 or 4 failed (exit 1).

It runs inside the stack's backup container (which holds the dumps, the tools and the database
password), through the Docker CLI on the stack's `dockerHost`. One engine only: on swarm, scale the
writer services to 0 and run the backup service's `restore` mode by hand (README).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import yaml

from infra.config import Identity, StackSettings
from infra.simulate import PROJECT_DIR

WRITERS = ("api", "app", "scheduler")
BACKUP_MODE = 'exec sh -c "$BACKUP_SCRIPT" backup "$@"'  # the backup service's script, one mode


class RestoreRefused(Exception):
    """The dump failed its checks (or there is none): nothing was touched."""


class RestoreFailed(Exception):
    """The restore or the migrations failed; the writers were started again."""


@dataclass(frozen=True)
class StackEngine:
    """The Docker engine a stack runs on, through the Docker CLI."""

    stack: str
    docker_host: str

    @classmethod
    def of(cls, stack: str, docker_host: str | None = None) -> StackEngine:
        """`docker_host`, or the one in Pulumi.<stack>.yaml, or the program's default."""
        if docker_host is None:
            stack_file = PROJECT_DIR / f"Pulumi.{stack}.yaml"
            config = (yaml.safe_load(stack_file.read_text()) or {}).get("config", {}) if stack_file.exists() else {}
            docker_host = str(config.get("ichrisbirch:dockerHost", StackSettings.model_fields["docker_host"].default))
        return cls(stack, docker_host)

    @property
    def identity(self) -> Identity:
        return Identity(self.stack)

    def docker(self, *args: str, check: bool = False, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "-H", self.docker_host, *args], capture_output=True, text=True, timeout=timeout, check=check
        )

    def backup(self, mode: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run one mode of the backup service's script in its container."""
        return self.docker("exec", self.identity.container("backup"), "sh", "-c", BACKUP_MODE, "sh", mode, *args)

    def running_writers(self) -> list[str]:
        found = self.docker(
            "ps",
            "--filter",
            f"label=ichrisbirch.stack={self.stack}",
            "--format",
            '{{.Names}} {{.Label "ichrisbirch.service"}}',
        )
        return sorted(
            name for name, service in (line.split() for line in found.stdout.splitlines()) if service in WRITERS
        )

    def wait_healthy(self, containers: list[str], timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        pending = list(containers)
        while pending:
            states = {c: self.docker("inspect", "-f", "{{json .State}}", c).stdout for c in pending}
            pending = [c for c, state in states.items() if _health(state) != "healthy"]
            if pending and time.monotonic() > deadline:
                raise RestoreFailed(f"not healthy within {timeout:.0f} s: {', '.join(pending)}")
            time.sleep(1)


def _health(state_json: str) -> str:
    try:
        state = json.loads(state_json)
    except json.JSONDecodeError:
        return "missing"
    return str((state.get("Health") or {}).get("Status") or ("running" if state.get("Running") else "stopped"))


def restore(engine: StackEngine, dump: str | None = None, say: Callable[[str], None] = print) -> str:
    """Restore `dump` (default: the newest good one) into the stack's Postgres; return its name."""
    listed = engine.backup("list")
    if listed.returncode != 0:
        raise RestoreRefused(
            f"cannot list the dumps of stack {engine.stack} in {engine.identity.container('backup')}: "
            f"{listed.stderr.strip() or listed.stdout.strip()}"
        )
    dumps = listed.stdout.split()
    if dump is None:
        if not dumps:
            raise RestoreRefused(f"stack {engine.stack} has no dump yet in {engine.identity.volume('backups')}")
        dump = dumps[0]
    verified = engine.backup("verify", dump)
    if verified.returncode != 0:
        raise RestoreRefused(f"{dump}: {verified.stderr.strip()} (nothing was changed)")
    say(f"restore: {dump} verified (checksum, pg_restore --list)")

    writers = engine.running_writers()
    say(f"restore: stopping the writers: {', '.join(writers) or 'none running'}")
    if writers:
        engine.docker("stop", *writers, check=True)
    try:
        restored = engine.backup("restore", dump)
        if restored.returncode != 0:
            raise RestoreFailed(f"{dump} was not restored; the database is as it was: {restored.stderr.strip()}")
        say(f"restore: {dump} restored")
        migrated = engine.docker("start", "-a", engine.identity.container("migrate"))
        if migrated.returncode != 0:
            raise RestoreFailed(f"the migrations failed after restoring {dump}: {migrated.stdout}{migrated.stderr}")
        say("restore: migrations applied")
    finally:
        if writers:
            engine.docker("start", *writers, check=True)
            engine.wait_healthy(writers)
            say(f"restore: the writers are back and healthy: {', '.join(writers)}")
    return dump


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/restore", description=__doc__.split("\n\n")[0])
    parser.add_argument("stack", help="the stack (dev, test, prod, ...)")
    parser.add_argument("dump", nargs="?", help="a dump's file name (default: the newest good one)")
    parser.add_argument("--docker-host", help="the stack's Docker engine (default: dockerHost of Pulumi.<stack>.yaml)")
    args = parser.parse_args(argv)
    engine = StackEngine.of(args.stack, args.docker_host)
    try:
        restore(engine, args.dump)
    except RestoreRefused as refused:
        print(f"restore refused: {refused}", file=sys.stderr)
        return 2
    except RestoreFailed as failed:
        print(f"restore failed: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
