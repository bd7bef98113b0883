"""How the restore drives a swarm, against a recorded Docker CLI: the one-off job is made like the
backup service's task, runs once, reports the script's exit code and words, and is removed; the
writers go to 0 and back to their replicas, the api first. The writers are the services that
connect to Postgres. (On real engines: the integration tests.)"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field

import pytest

from infra.engine import Engine
from infra.restore import WRITERS, RestoreFailed, RestoreRefused, SwarmStack, restore
from tests.conftest import RunStack
from tests.unit.registrations import containers, env_of

BACKUP_SPEC = {
    "Spec": {
        "Mode": {"Replicated": {"Replicas": 1}},
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "registry:5000/icb-standin/postgres@sha256:" + "a" * 64,
                "Env": ["BACKUP_DIR=/var/lib/postgresql/data", "PGPASSWORD_FILE=/run/secrets/postgres_password"],
                "User": "999:999",
                "ReadOnly": True,
                "Secrets": [
                    {
                        "SecretName": "icb-prod-secret-postgres-password-1a2b",
                        "File": {"Name": "/run/secrets/postgres_password", "UID": "999", "GID": "999", "Mode": 0o400},
                    }
                ],
                "Mounts": [
                    {"Type": "volume", "Source": "icb-prod-backups", "Target": "/var/lib/postgresql/data"},
                    {"Type": "tmpfs", "Target": "/tmp"},
                ],
            },
            "Placement": {"Constraints": ["node.labels.ichrisbirch.data == true"]},
            "Networks": [{"Target": "net-id"}],
        },
    }
}


@dataclass(frozen=True)
class RecordedSwarm(SwarmStack):
    """A SwarmStack whose Docker CLI answers from a script and records every call."""

    calls: list[tuple[str, ...]] = field(default_factory=list)
    replicas_of: dict[str, int] = field(default_factory=lambda: {"api": 2, "app": 2, "scheduler": 1})
    job_states: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # mode -> (state, error, logs)

    def docker(self, *args: str, check: bool = False, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        out, code = "", 0
        if args[:2] == ("service", "inspect"):
            service = args[2].removeprefix("icb-prod-")
            spec = json.loads(json.dumps(BACKUP_SPEC))
            spec["Spec"]["Mode"]["Replicated"]["Replicas"] = self.replicas_of.get(service, 1)
            out = json.dumps([spec])
        elif args[:2] == ("service", "ps") and "-backup-" in args[2]:
            state, error, _ = self.job_states[_mode_of(args[2])]
            out = f"{state} 1 second ago|{error}\n"
        elif args[:2] == ("service", "ps"):  # a writer: its tasks at its scale, and one of the past
            out = "Running|Running 2 seconds ago\n" * self.replicas_of[args[2].removeprefix("icb-prod-")]
            out += "Shutdown|Shutdown 1 minute ago\n"
        elif args[:2] == ("service", "logs"):
            out = self.job_states[_mode_of(args[3])][2]
        elif args[:2] == ("service", "scale"):
            assert args[2] == "--detach", "the CLI's own wait adds the update monitor window"
            for scale in args[3:]:
                service, replicas = scale.removeprefix("icb-prod-").split("=")
                self.replicas_of[service] = int(replicas)
        if check and code:
            raise subprocess.CalledProcessError(code, args)
        return subprocess.CompletedProcess(args, code, out, "")


def _mode_of(job: str) -> str:
    return job.split("-")[3]  # icb-prod-backup-<mode>-<n>


def created_jobs(stack: RecordedSwarm) -> list[tuple[str, ...]]:
    return [c for c in stack.calls if c[:2] == ("service", "create")]


def test_a_job_is_made_like_the_backup_task_runs_once_and_is_removed() -> None:
    stack = RecordedSwarm("prod", Engine("unix:///manager.sock"), job_states={"list": ("Complete", "", "a.dump\n")})
    listed = stack.backup("list")
    assert (listed.returncode, listed.stdout) == (0, "a.dump\n")
    (create,) = created_jobs(stack)
    options = list(zip(create, create[1:], strict=False))
    assert ("--replicas", "1") in options and ("--restart-condition", "none") in options
    assert ("--user", "999:999") in options and "--read-only" in create
    secret = (
        "source=icb-prod-secret-postgres-password-1a2b,target=/run/secrets/postgres_password,uid=999,gid=999,mode=0400"
    )
    assert ("--secret", secret) in options, "the mode in octal, as the CLI reads it"
    assert ("--mount", "type=volume,source=icb-prod-backups,target=/var/lib/postgresql/data") in options
    assert ("--constraint", "node.labels.ichrisbirch.data == true") in options and ("--network", "net-id") in options
    assert create[-6:] == (BACKUP_SPEC["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"], "sh", "-c",  # type: ignore[index]
                           'exec sh -c "$BACKUP_SCRIPT" backup "$@"', "sh", "list")  # fmt: skip
    job = create[create.index("--name") + 1]
    assert stack.calls[-1] == ("service", "rm", job)


def test_a_failed_job_gives_the_scripts_exit_code_and_words() -> None:
    failed = ("Failed", '"task: non-zero exit (1)"', "backup: x.dump does not match its checksum: refused\n")
    stack = RecordedSwarm(
        "prod", Engine("unix:///m.sock"), job_states={"list": ("Complete", "", "x.dump\n"), "verify": failed}
    )
    with pytest.raises(RestoreRefused, match="x.dump does not match its checksum: refused"):
        restore(stack, "x.dump", say=lambda _: None)
    assert not [c for c in stack.calls if c[:2] == ("service", "scale")], "refused: no writer touched"


def test_the_writers_go_to_zero_and_back_to_their_replicas_the_api_first() -> None:
    ok = ("Complete", "", "")
    stack = RecordedSwarm(
        "prod",
        Engine("unix:///m.sock"),
        job_states={"list": ("Complete", "", "new.dump\n"), "verify": ok, "restore": ok},
    )
    assert restore(stack, say=lambda _: None) == "new.dump"
    scales = [c[3:] for c in stack.calls if c[:2] == ("service", "scale")]
    assert scales == [
        ("icb-prod-api=0", "icb-prod-scheduler=0"),  # the app stays: it reaches Postgres only through the api
        ("icb-prod-api=2",),  # its tasks migrate before they serve
        ("icb-prod-scheduler=1",),
    ]


def test_a_failed_restore_still_brings_the_writers_back() -> None:
    failed = ("Failed", "task: non-zero exit (1)", "pg_restore: error: could not execute query\n")
    stack = RecordedSwarm(
        "prod",
        Engine("unix:///m.sock"),
        job_states={"list": ("Complete", "", "d.dump\n"), "verify": ("Complete", "", ""), "restore": failed},
    )
    with pytest.raises(RestoreFailed, match="the database is as it was"):
        restore(stack, say=lambda _: None)
    scales = [c[3:] for c in stack.calls if c[:2] == ("service", "scale")]
    assert scales[-2:] == [("icb-prod-api=2",), ("icb-prod-scheduler=1",)]


def test_the_writers_are_the_services_that_connect_to_postgres(run_stack: RunStack) -> None:
    # A new service given Postgres's address must be stopped by a restore too. (migrate and backup
    # are the restore's own steps.)
    run = run_stack("prod")
    connecting = {name for name, c in containers(run).items() if "POSTGRES_HOST" in env_of(c)}
    assert connecting - {"migrate", "backup"} == set(WRITERS)


@pytest.mark.parametrize(
    ("listed", "converged"),
    [
        ("Running|Running 1 second ago\nRunning|Running 3 seconds ago\nShutdown|Failed 1 minute ago\n", True),
        ("Running|Running 1 second ago\nRunning|Starting 1 second ago\n", False),  # not yet healthy
        ("Running|Running 1 second ago\nRunning|Running 1 second ago\nShutdown|Running 9 seconds ago\n", False),
    ],
)
def test_a_scale_converged_when_exactly_its_tasks_run_and_none_is_still_stopping(listed: str, converged: bool) -> None:
    class Listed(RecordedSwarm):
        def docker(self, *args: str, check: bool = False, timeout: float = 600) -> subprocess.CompletedProcess[str]:
            return subprocess.CompletedProcess(args, 0, listed, "")

    assert Listed("prod", Engine("unix:///m.sock"))._converged("icb-prod-api", 2) is converged
