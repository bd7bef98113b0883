"""Backups on the real engine: the backup service's dumps (checked, checksummed, pruned, shown in
the api's health), its health when the latest dump is overdue, each new dump copied off the host
to an S3-compatible bucket (through an outage of the bucket), and the restore drill: rows
written, backed up, the Postgres volume replaced through the program, restored by
`scripts/restore`, every row compared; a corrupted dump refused with nothing touched.

On dev with backups on (prod's volume is protected: the program refuses to replace it), as a stack
of its own name (`backups`), so that it can run beside test_deploy_dev's `dev`."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from infra.engine import Engine
from infra.identity import PROJECT_DIR
from infra.restore import RestoreRefused, StackEngine, restore
from proof.harness.cli import docker, engine_host, inspect_container, until
from proof.harness.figures import report
from proof.harness.stacks import Deployed, deploy, psql
from proof.harness.standins import Standins
from tests.integration.conftest import Bucket

pytestmark = pytest.mark.docker
DOCKER_HOST = engine_host()  # the suite's engine


@pytest.fixture(scope="module")
def dev(standins: Standins, offsite_bucket: Bucket) -> Iterator[Deployed]:
    settings = {"backups": "true", "backupSchedule": "1h", "backupKeep": "3", **offsite_bucket.settings()}
    with deploy("dev", standins, name="backups", **settings) as deployed:
        yield deployed


def engine_of(deployed: Deployed) -> StackEngine:
    return StackEngine(deployed.stack, Engine(DOCKER_HOST))


def every_row(deployed: Deployed) -> str:
    """Every column of every task, in order: what a restore must bring back exactly."""
    return psql(deployed, "SELECT id, title, completed, created_at, completed_at FROM tasks ORDER BY id")


def seconds_since(timestamp: str) -> float:
    """Seconds since an engine's RFC 3339 time (nanoseconds, `Z`), by this machine's clock."""
    whole, _, fraction = timestamp.rstrip("Z").partition(".")
    at = datetime.fromisoformat(f"{whole}.{(fraction or '0')[:6]}+00:00")
    return (datetime.now(UTC) - at).total_seconds()


def backup_health(deployed: Deployed) -> str:
    return docker("inspect", "-f", "{{.State.Health.Status}}", deployed.container("backup")).stdout.strip()


def dumps(deployed: Deployed) -> list[str]:
    listed = engine_of(deployed).backup("list")
    assert listed.returncode == 0, listed.stderr
    return listed.stdout.split()


def test_each_dump_is_checked_checksummed_pruned_and_shown_in_the_api_health(dev: Deployed) -> None:
    def recorded() -> dict[str, object] | None:
        status, body = dev.http("GET", "api", "/health")
        return json.loads(body)["backup"] if status == 200 else None

    first = until(recorded, 60, "the first dump, in the api's health")
    assert first["file"] in dumps(dev) and int(str(first["bytes"])) > 0
    # Taken when the service started, not a schedule (1 h) later: no older than the container.
    running_for = seconds_since(inspect_container(dev.container("backup"))["State"]["StartedAt"])
    assert float(str(first["age_seconds"])) <= running_for + 1, (first, running_for)
    assert backup_health(dev) == "healthy"
    engine = engine_of(dev)
    for _ in range(3):
        time.sleep(1.1)  # names carry the second they were taken
        taken = engine.backup("once")
        assert taken.returncode == 0, taken.stderr
    kept = dumps(dev)
    assert len(kept) == 3 and first["file"] not in kept, "backupKeep 3: the oldest deleted"
    for name in kept:
        verified = engine.backup("verify", name)
        assert verified.returncode == 0, verified.stderr
    listing = docker("exec", dev.container("backup"), "sh", "-c", 'ls -1 "$BACKUP_DIR"').stdout.split()
    assert sorted(listing) == sorted([*kept, *(f"{n}.sha256" for n in kept), "LATEST"]), "no partial file left"
    status, body = dev.http("GET", "api", "/health")
    assert json.loads(body)["backup"]["file"] == kept[0]


def offsite_health(deployed: Deployed) -> str:
    return docker("inspect", "-f", "{{.State.Health.Status}}", deployed.container("backup-offsite")).stdout.strip()


def local_checksum(deployed: Deployed, name: str) -> str:
    line = docker("exec", deployed.container("backup"), "sh", "-c", f'cat "$BACKUP_DIR/{name}.sha256"').stdout
    return line.split()[0]


def in_bucket(bucket: Bucket, deployed: Deployed, name: str) -> bool | None:
    """`name` and its checksum file are in the bucket, their bytes as on the host."""
    objects = bucket.objects(deployed.stack)
    if name not in objects or f"{name}.sha256" not in objects:
        return None
    assert objects[name] == local_checksum(deployed, name), f"{name} in the bucket differs from the host's"
    checksum = docker("exec", bucket.container, "cat", f"/srv/{bucket.name}/{deployed.stack}/{name}.sha256")
    assert checksum.stdout.split() == [objects[name], name], "the checksum file travels with its dump"
    return True


def test_each_new_good_dump_goes_off_the_host_with_its_checksum_and_nothing_is_deleted_there(
    dev: Deployed, offsite_bucket: Bucket
) -> None:
    # After the first test: four dumps taken, the oldest pruned on the host.
    kept = dumps(dev)
    until(lambda: in_bucket(offsite_bucket, dev, kept[0]), 60, f"{kept[0]} in the bucket")
    assert offsite_health(dev) == "healthy"
    in_the_bucket = [n for n in offsite_bucket.objects(dev.stack) if n.endswith(".dump")]
    assert set(in_the_bucket) - set(kept), "the bucket keeps the first dump, which the host pruned"
    offsite = docker("inspect", dev.container("backup-offsite")).stdout
    mounted = json.loads(offsite)[0]["Mounts"]
    dumps_volume = f"icb-{dev.stack}-backups"
    assert [m["RW"] for m in mounted if m["Name"] == dumps_volume] == [False], "the dumps are read-only to it"
    report(f"off-host copy: {len(in_the_bucket)} dumps in the bucket, {len(kept)} kept on the host")


def test_a_bucket_outage_turns_the_copy_unhealthy_and_the_dump_goes_once_it_is_back(
    dev: Deployed, offsite_bucket: Bucket
) -> None:
    docker("stop", offsite_bucket.container)
    try:
        taken = engine_of(dev).backup("once")
        assert taken.returncode == 0, taken.stderr
        name = dumps(dev)[0]
        logs = ("logs", "--since", "60s", dev.container("backup-offsite"))
        until(lambda: "trying again" in docker(*logs).stdout or None, 60, "a failed copy, retried")
        # Taken longer ago than the copy may take: the service turns unhealthy, naming the dump.
        docker("exec", dev.container("backup"), "sh", "-c", 'touch -d "2 hours ago" "$BACKUP_DIR/LATEST"')
        until(lambda: offsite_health(dev) == "unhealthy" or None, 60, "the copy unhealthy")
        probe = json.loads(docker("inspect", dev.container("backup-offsite")).stdout)[0]["State"]["Health"]["Log"][-1]
        assert f"{name}, taken" in probe["Output"] and "is not in offsite:" in probe["Output"], probe
    finally:
        docker("start", offsite_bucket.container)
    # Backoff 10 s, 20 s, 40 s: within a minute and a half of the bucket's return.
    until(lambda: in_bucket(offsite_bucket, dev, name), 120, f"{name} in the bucket after the outage")
    until(lambda: offsite_health(dev) == "healthy" or None, 60, "the copy healthy again")
    assert engine_of(dev).backup("once").returncode == 0, "a fresh dump for the backup service's own health"


def test_the_backup_service_turns_unhealthy_when_the_latest_dump_is_overdue(dev: Deployed) -> None:
    backup = dev.container("backup")
    docker("exec", backup, "sh", "-c", 'touch -d "2 days ago" "$BACKUP_DIR/LATEST"')
    until(lambda: backup_health(dev) == "unhealthy" or None, 60, "the backup container unhealthy")
    checked = engine_of(dev).backup("check")
    assert checked.returncode == 1 and "latest good dump is" in checked.stderr, checked.stderr
    assert engine_of(dev).backup("once").returncode == 0
    until(lambda: backup_health(dev) == "healthy" or None, 60, "healthy again after a good dump")


def test_a_restore_drill_brings_every_row_back_after_the_volume_is_replaced(dev: Deployed) -> None:
    for i in range(40):
        status, body = dev.http("POST", "api", "/tasks", {"title": f"drill {i}"})
        assert status == 201, body
        if i % 3 == 0:
            dev.http("POST", "api", f"/tasks/{json.loads(body)['id']}/complete")
    before = every_row(dev)
    assert before.count("\n") >= 40
    taken = engine_of(dev).backup("once")
    assert taken.returncode == 0, taken.stderr

    # The data destroyed through the program: the volume replaced, and Postgres with it.
    result = dev.up(replace=("postgres-data",))
    assert result.ops()["postgres-data"] == "replace", result.preview()
    assert result.ops()["postgres"] == "replace", "deleted before its volume, created again after it"
    assert result.ops()["migrate"] == "replace", "the migrations ran again, against the new server"
    assert psql(dev, "SELECT count(*) FROM tasks").strip() == "0", "a new database: the schema, no rows"

    restored = subprocess.run(
        [str(PROJECT_DIR / "scripts" / "restore"), dev.stack, "--docker-host", DOCKER_HOST],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "migrations applied" in restored.stdout and "the writers are back and healthy" in restored.stdout
    assert every_row(dev) == before, "every row, every column, as it was"
    status, body = dev.http("GET", "api", "/tasks")
    assert status == 200 and {t["title"] for t in json.loads(body)} >= {f"drill {i}" for i in range(40)}
    status, body = dev.http("POST", "api", "/tasks", {"title": "after the restore"})
    assert status == 201, "the sequence continues after the restored ids"
    report(f"restore drill: {before.count(chr(10))} rows back after the Postgres volume was replaced")


def test_a_corrupted_dump_is_refused_and_nothing_is_touched(dev: Deployed) -> None:
    before = every_row(dev)
    started = {
        service: docker("inspect", "-f", "{{.State.StartedAt}}", dev.container(service)).stdout
        for service in ("api", "app", "scheduler")
    }
    newest = dumps(dev)[0]
    backup = dev.container("backup")
    # One byte changed in the middle of the newest dump: its checksum no longer matches.
    docker(
        "exec", backup, "sh", "-c", f'printf X | dd of="$BACKUP_DIR/{newest}" bs=1 seek=200 conv=notrunc 2>/dev/null'
    )
    with pytest.raises(RestoreRefused, match="does not match its checksum"):
        restore(engine_of(dev), newest)
    # A file with a matching checksum that is no dump.
    docker(
        "exec",
        backup,
        "sh",
        "-c",
        'cd "$BACKUP_DIR" && echo not-a-dump > bogus.dump && sha256sum bogus.dump > bogus.dump.sha256',
    )
    refused = subprocess.run(
        [str(PROJECT_DIR / "scripts" / "restore"), dev.stack, "bogus.dump", "--docker-host", DOCKER_HOST],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "bogus.dump is not a dump pg_restore can read: refused" in refused.stderr
    assert every_row(dev) == before
    for service, at in started.items():
        now = docker("inspect", "-f", "{{.State.StartedAt}}", dev.container(service)).stdout
        assert now == at, f"{service} was not stopped"
