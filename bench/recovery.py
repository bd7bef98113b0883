"""Backup and restore of a dev stack's data, and a rollback against a rebuild of the previous source."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.page import BACKUP_HEADING, DOCKER, ON_THE_MODEL, ROLLBACK_HEADING, run
from infra.engine import Engine
from infra.releases import RELEASE_ENV, StackReleases
from infra.restore import StackEngine, restore
from proof.harness.cli import engine_host
from proof.harness.load import LoadLoop, LoadReport, under_load
from proof.harness.pulumi import RunResult
from proof.harness.stacks import api_version, bump_version, deploy, psql
from proof.harness.standins import Standins

BACKUP_ROWS = 100_000


@dataclass
class BackupFigures:
    rows: int
    database_bytes: int
    dump_bytes: int
    backup_seconds: float
    restore_seconds: float


def measure_backup(standins: Standins) -> BackupFigures:
    """dev with backups on and BACKUP_ROWS task rows: one dump, then a restore of it (writers stopped,
    pg_restore, migrations, writers healthy again), as `scripts/restore` does it."""
    print("backup and restore ...", file=sys.stderr)
    with deploy("dev", standins, backups="true", backupSchedule="1h") as deployed:
        psql(
            deployed,
            "INSERT INTO tasks (title, completed) SELECT 'bench task ' || g, g % 3 = 0 "
            f"FROM generate_series(1, {BACKUP_ROWS}) AS g",
        )
        rows = int(psql(deployed, "SELECT count(*) FROM tasks"))
        database_bytes = int(psql(deployed, "SELECT pg_database_size('ichrisbirch')"))
        engine = StackEngine(deployed.stack, Engine(engine_host()))
        started = time.perf_counter()
        engine.backup("once").check_returncode()
        backup_seconds = time.perf_counter() - started
        name = engine.backup("list").stdout.split()[0]
        size = run(DOCKER, "exec", deployed.container("backup"), "sh", "-c", f'stat -c %s "$BACKUP_DIR/{name}"')
        started = time.perf_counter()
        restore(engine, name, say=lambda _: None)
        restore_seconds = time.perf_counter() - started
        assert int(psql(deployed, "SELECT count(*) FROM tasks")) == rows, "every row restored"
    return BackupFigures(rows, database_bytes, int(size.stdout), backup_seconds, restore_seconds)


def render_backup(figures: BackupFigures, origin: str) -> str:
    mb = 1e6
    return "\n".join(
        [
            BACKUP_HEADING,
            "",
            origin,
            "",
            "dev with backups on, through the backup service's own script (`backup once`) and `scripts/restore` "
            "(its module), one run:",
            "",
            "| task rows | database size | dump size (custom format) | backup (dump, pg_restore --list, checksum) "
            "| restore (writers stopped, pg_restore, migrations, writers healthy) |",
            "| --- | --- | --- | --- | --- |",
            f"| {figures.rows} | {figures.database_bytes / mb:.1f} MB | {figures.dump_bytes / mb:.1f} MB | "
            f"{figures.backup_seconds:.1f} s | {figures.restore_seconds:.1f} s |",
            "",
        ]
    )


@dataclass
class Putback:
    """One way back to the previous version: its `up`, how long it took, and the request loop meanwhile."""

    result: RunResult
    seconds: float
    load: LoadReport
    answered: float | None  # seconds from the `up` starting to the version put back first answering
    after_build: float | None = None  # seconds from its image built to it first answering (None: nothing built)


@dataclass
class RollbackFigures:
    rollback: Putback
    rebuild: Putback  # the engine's build cache holding the previous source's layers
    cold_rebuild: Putback  # the build cache emptied first, as on a new builder


def measure_rollback(standins: Standins) -> RollbackFigures:
    """prod at v1, then v2; back to v1 two ways under the request loop: a rollback (the v1 release
    kept on the engine, `up` with ICHRISBIRCH_RELEASE) and, after v2 again, a rebuild of v1's source
    (as reverting the commit and deploying it does; the engine's build cache as it is)."""
    print("a rollback against a rebuild ...", file=sys.stderr)
    with deploy("prod", standins) as prod:
        init = prod.app_dir / "ichrisbirch" / "__init__.py"
        v1_source = init.read_text()
        previous = StackReleases.of(prod.stack, engine_host()).releases()[0].tag
        v1 = api_version(prod)
        bump_version(prod)
        prod.up()

        def timed(change: Callable[[], RunResult]) -> Putback:
            loop = LoadLoop(prod)
            done = under_load(loop, change, settle=2)
            result, load, first = done.result, done.load, done.load.first(v1)
            built = [s.finished for s in result.steps if s.type.endswith(":Image") and s.finished and result.built()]
            after_build = None if first is None or not built else first - (max(built) - loop.started)
            return Putback(result, done.took, load, None if first is None else first - done.began, after_build)

        def rollback() -> RunResult:
            os.environ[RELEASE_ENV] = previous
            try:
                return prod.up()
            finally:
                del os.environ[RELEASE_ENV]

        rolled = timed(rollback)
        prod.up()  # v2 again, built as configured

        def rebuild() -> RunResult:
            init.write_text(v1_source)
            return prod.up()

        rebuilt = timed(rebuild)
        bump_version(prod)
        prod.up()  # a v2 again, so that the cold rebuild has the same way back

        def cold_rebuild() -> RunResult:
            run(DOCKER, "builder", "prune", "--all", "--force")
            return rebuild()

        cold = timed(cold_rebuild)
    return RollbackFigures(rolled, rebuilt, cold)


def render_rollback(figures: RollbackFigures, origin: str) -> str:
    def row(what: str, back: Putback) -> str:
        answered = "-" if back.answered is None else f"{back.answered:.1f} s"
        after_build = "-" if back.after_build is None else f"{back.after_build:.1f} s"
        return (
            f"| {what} | {back.seconds:.1f} s | {back.result.build_seconds():.1f} s | {answered} | {after_build} | "
            f"{len(back.load.failed)} of {len(back.load.outcomes)} |"
        )

    return "\n".join(
        [
            ROLLBACK_HEADING,
            "",
            origin,
            "",
            "prod (the shipped app) at v2, put back to v1 under the request loop: by a rollback (`up` with "
            "ICHRISBIRCH_RELEASE, the v1 release kept on the engine), and by a rebuild of v1's source (as a "
            "revert deploys it), once with the engine's build cache as the earlier builds left it and once "
            "with it emptied first (a new builder: dependencies downloaded and installed again), one run. The "
            "`up` is mostly the create-first rollout (new containers healthy before the old go), the same for all "
            "three; what differs is the build, and that a rollback needs neither the cache nor the package index:",
            "",
            "| back to v1 by | the `up` | of it building | v1 first answering, into the `up` "
            "| after its image was built | requests failed |",
            "| --- | --- | --- | --- | --- | --- |",
            row("rollback", figures.rollback),
            row("rebuild of the previous source, build cache warm", figures.rebuild),
            row("rebuild of the previous source, build cache empty", figures.cold_rebuild),
            "",
            f"The rollback took {figures.rollback.seconds / figures.rebuild.seconds:.2f}× the warm rebuild's `up`. "
            "It runs no migration (`migrate` keeps its image) and starts api, app and scheduler side by side, each "
            "health-gated; a rebuild builds, migrates and starts them one after another. A rebuild is a normal "
            "release: its version first answered "
            + " and ".join(
                f"{b.after_build:.1f} s" for b in (figures.rebuild, figures.cold_rebuild) if b.after_build is not None
            )
            + " after its image was built (the migration, then the new api created and health-gated).",
            "",
            ON_THE_MODEL[ROLLBACK_HEADING],
            "",
        ]
    )
