"""Restore a dump of the backup service into a stack's Postgres.

    scripts/restore prod                                  # the newest good dump
    scripts/restore prod ichrisbirch-20261127T030000Z.dump
    python -m infra.restore prod --docker-host ssh://deploy@db-host

1. The dump must match its checksum and be readable by `pg_restore --list`; otherwise it is
   refused and nothing is touched (exit 2).
2. The writers (the stack's api and scheduler, which connect to Postgres) are stopped gracefully;
   the app stays up, and the router holds its requests while the api is away.
3. `pg_restore --clean` runs in one transaction: a failure leaves the database as it was.
4. The migrations run again (the stack's migrate container), so the schema is the current one.
5. The writers start again, and the restore ends once they are healthy. They start again even
   when step 3 or 4 failed (exit 1).

It runs the backup service's script where the dumps, the tools and the database password are,
through the Docker CLI on the stack's `dockerHost`:
- one engine: in the stack's backup container; the writers are its containers, stopped and
  started again; the migrations are the migrate container, run again;
- swarm (the stack's backup service exists on that engine): in a one-off job with the backup
  service's image, environment, secrets, volume and placement, on the data node; the writers are
  the services, scaled to 0 and back to their replicas; the api's tasks run the migrations before
  they serve, so scaling the api back up is the migration step.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from infra.engine import Engine
from infra.identity import Identity

# The services that connect to Postgres. The app reaches it only through the api: it keeps running,
# its health says the api is away, and the router holds its requests until the api is back.
WRITERS = ("api", "scheduler")
BACKUP_MODE = 'exec sh -c "$BACKUP_SCRIPT" backup "$@"'  # the backup service's script, one mode


class RestoreRefused(Exception):
    """The dump failed its checks (or there is none): nothing was touched."""


class RestoreFailed(Exception):
    """The restore or the migrations failed; the writers were started again."""


@dataclass(frozen=True)
class StackEngine:
    """The Docker engine a stack's containers run on, through the Docker CLI."""

    stack: str
    engine: Engine

    @classmethod
    def of(cls, stack: str, docker_host: str | None = None) -> StackEngine:
        """`docker_host`, or the one in Pulumi.<stack>.yaml (with its dockerSshOpts), or the
        program's default; a SwarmStack where that engine is a swarm manager with the stack's backup
        service."""
        engine = Engine.configured(stack, docker_host)
        swarm = SwarmStack(stack, engine)
        if swarm.docker("service", "inspect", swarm.identity.container("backup")).returncode == 0:
            return swarm
        return cls(stack, engine)

    @property
    def identity(self) -> Identity:
        return Identity(self.stack)

    def docker(self, *args: str, check: bool = False, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return self.engine.run(*args, timeout=timeout, check=check)

    def backup(self, mode: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run one mode of the backup service's script in its container."""
        return self.docker("exec", self.identity.container("backup"), "sh", "-c", BACKUP_MODE, "sh", mode, *args)

    def stop_writers(self) -> list[str]:
        """Stop the running writers gracefully; return what `start_writers` starts again."""
        writers = self.running_writers()
        if writers:
            self.docker("stop", *writers, check=True)
        return writers

    def migrate(self, writers: list[str]) -> None:
        # Beside an ingress migrate has a name of its own per release: the stack's newest by label.
        found = self.docker(
            "ps", "-a", "--filter", f"label=ichrisbirch.stack={self.stack}",
            "--filter", "label=ichrisbirch.service=migrate", "--format", "{{.Names}}",
        )  # fmt: skip
        names = found.stdout.split()
        if not names:
            raise RestoreFailed(f"no migrate container of the {self.stack} stack: {found.stderr.strip()}")
        migrated = self.docker("start", "-a", names[0])  # `docker ps` lists the newest first
        if migrated.returncode != 0:
            raise RestoreFailed(f"the migrations failed: {migrated.stdout}{migrated.stderr}")

    def start_writers(self, writers: list[str]) -> None:
        if writers:
            self.docker("start", *writers, check=True)
            self.wait_healthy(writers)

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


@dataclass(frozen=True)
class SwarmStack(StackEngine):
    """A stack on a swarm, through its manager's Docker CLI."""

    def backup(self, mode: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run one mode of the backup service's script in a one-off job like the backup service's
        task (its image, environment, secrets, volume and placement); its logs are the output."""
        service = self.identity.container("backup")
        spec = json.loads(self.docker("service", "inspect", service, check=True).stdout)[0]["Spec"]
        task, container = spec["TaskTemplate"], spec["TaskTemplate"]["ContainerSpec"]
        job = f"{service}-{mode}-{time.time_ns() % 10**9}"
        # One task, run once: a failed check is an answer, not something to retry. (Not a
        # replicated-job: Docker 20.10 leaves a finished job's container behind when it is removed.)
        create = ["service", "create", "--detach", "--quiet", "--name", job, "--replicas", "1"]
        create += ["--restart-condition", "none"]
        create += ["--label", f"ichrisbirch.stack={self.stack}", "--label", "ichrisbirch.service=backup-job"]
        create += ["--user", container["User"]] if container.get("User") else []
        create += ["--read-only"] if container.get("ReadOnly") else []
        for entry in container.get("Env") or []:
            create += ["--env", entry]
        for secret in container.get("Secrets") or []:
            file = secret["File"]
            create += ["--secret", f"source={secret['SecretName']},target={file['Name']},uid={file['UID']},"
                                   f"gid={file['GID']},mode=0{file['Mode']:o}"]  # fmt: skip
        for mount in container.get("Mounts") or []:
            if mount["Type"] == "volume":
                create += ["--mount", f"type=volume,source={mount['Source']},target={mount['Target']}"]
            elif mount["Type"] == "tmpfs":
                create += ["--mount", f"type=tmpfs,target={mount['Target']}"]
        for constraint in (task.get("Placement") or {}).get("Constraints") or []:
            create += ["--constraint", constraint]
        for network in task.get("Networks") or []:
            create += ["--network", network["Target"]]
        create += [container["Image"], "sh", "-c", BACKUP_MODE, "sh", mode, *args]
        created = self.docker(*create)
        if created.returncode != 0:
            return created
        try:
            state, error = self._job_outcome(job)
            logs = self.docker("service", "logs", "--raw", job)
            if state == "complete":
                return subprocess.CompletedProcess(create, 0, logs.stdout, logs.stderr)
            code = int(m.group(1)) if (m := re.search(r"exit \((\d+)\)", error)) else 1
            # What the script said, on whichever stream the logs carried it, then the task's error.
            said = f"{logs.stderr}{logs.stdout}".strip()
            return subprocess.CompletedProcess(create, code, logs.stdout, f"{said} ({job}: {error or state})")
        finally:
            self.docker("service", "rm", job)

    def _job_outcome(self, job: str, timeout: float = 600) -> tuple[str, str]:
        """Wait for the job's task to end: ("complete" | "failed" | "rejected", the task's error)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            listed = self.docker("service", "ps", job, "--no-trunc", "--format", "{{.CurrentState}}|{{.Error}}")
            for line in listed.stdout.splitlines():
                state, _, error = line.partition("|")
                word = state.split()[0].lower() if state.split() else ""
                if word in ("complete", "failed", "rejected", "shutdown"):
                    return word, error
            time.sleep(1)
        raise RestoreFailed(f"the job {job} did not end within {timeout:.0f} s")

    def replicas(self, service: str) -> int:
        spec = json.loads(self.docker("service", "inspect", service, check=True).stdout)[0]["Spec"]
        return int(spec["Mode"]["Replicated"]["Replicas"])

    def stop_writers(self) -> list[str]:
        """Scale the writer services to 0 (their tasks stop gracefully); return them as
        `service=replicas`, the scale `start_writers` brings back."""
        writers = [f"{name}={self.replicas(name)}" for name in (self.identity.container(w) for w in WRITERS)]
        self._scale(*(w.split("=")[0] + "=0" for w in writers))
        return writers

    def _scale(self, *scales: str, timeout: float = 300) -> None:
        """`docker service scale`, then wait until each service runs exactly its replicas (running
        means healthy, where it has a health check). Detached: the CLI's own wait adds the service's
        update monitor window (20 s) after the tasks converged."""
        scaled = self.docker("service", "scale", "--detach", *scales)
        if scaled.returncode != 0:
            raise RestoreFailed(f"scaling {' '.join(scales)} failed: {scaled.stderr.strip()}")
        deadline = time.monotonic() + timeout
        for service, replicas in (scale.split("=") for scale in scales):
            while not self._converged(service, int(replicas)):
                if time.monotonic() > deadline:
                    raise RestoreFailed(f"{service} did not run {replicas} tasks within {timeout:.0f} s")
                time.sleep(0.5)

    def _converged(self, service: str, replicas: int) -> bool:
        """Exactly `replicas` tasks of `service` running, and none other still running (stopping)."""
        listed = self.docker("service", "ps", service, "--format", "{{.DesiredState}}|{{.CurrentState}}")
        states = [line.split("|", 1) for line in listed.stdout.splitlines() if "|" in line]
        running = [desired for desired, current in states if current.startswith("Running")]
        return listed.returncode == 0 and running.count("Running") == replicas and len(running) == replicas

    def migrate(self, writers: list[str]) -> None:
        # The api's tasks run the migrations before they serve: they converge only if those pass.
        api = self.identity.container("api")
        try:
            self._scale(next(w for w in writers if w.startswith(f"{api}=")))
        except RestoreFailed as failed:
            tasks = self.docker("service", "ps", api, "--no-trunc", "--format", "{{.CurrentState}} {{.Error}}").stdout
            raise RestoreFailed(f"the api's tasks (migrations first) did not start: {failed}\n{tasks}") from None

    def start_writers(self, writers: list[str]) -> None:
        # In order: the api (migrations) first, then the scheduler, each converged; the api is
        # already back when the migrations passed.
        for writer in writers:
            service, replicas = writer.split("=")
            if self.replicas(service) != int(replicas):
                self._scale(writer)


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

    say(f"restore: stopping the writers: {', '.join(engine.identity.container(w) for w in WRITERS)}")
    writers = engine.stop_writers()
    try:
        restored = engine.backup("restore", dump)
        if restored.returncode != 0:
            raise RestoreFailed(f"{dump} was not restored; the database is as it was: {restored.stderr.strip()}")
        say(f"restore: {dump} restored")
        engine.migrate(writers)
        say("restore: migrations applied")
    finally:
        engine.start_writers(writers)
        say(f"restore: the writers are back and healthy: {', '.join(writers) or 'none was running'}")
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
