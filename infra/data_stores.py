"""The data services: Postgres and Redis, and the backups of Postgres (on the host, and off it).
Each function is one service: its image, command, environment, ports, volumes, health check and
dependencies in one place.
"""

from __future__ import annotations

from infra.profiles import Profile
from infra.settings import StackSettings, schedule_seconds
from infra.spec import (
    BACKUP_DIR,
    BACKUP_SCRIPT,
    BACKUP_STOP_SECONDS,
    DATA_NODE,
    OFFSITE_REMOTE,
    OFFSITE_SCRIPT,
    OFFSITE_STOP_SECONDS,
    POSTGRES_DATA,
    POSTGRES_PORT,
    POSTGRES_STOP_SECONDS,
    REDIS_DATA,
    REDIS_PORT,
    REDIS_STOP_SECONDS,
    HealthCheck,
    Limits,
    Mount,
    SecretName,
    ServiceSpec,
    after_migrations,
    data_hardening,
    health,
    published,
    secrets_as_files,
    writable_tmp,
)


def postgres(s: StackSettings, profile: Profile) -> ServiceSpec:
    if profile.persistent_data:
        command: tuple[str, ...] = ("postgres",)
        mounts: tuple[Mount, ...] = (Mount(target=POSTGRES_DATA, volume="postgres-data"),)
        # The server's socket and lock file live in /var/run/postgresql.
        tmpfs: dict[str, str] = writable_tmp(profile, "/var/run/postgresql")
    else:
        # Throwaway data: durability buys nothing and costs seconds per test run.
        command = ("postgres", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
        mounts = ()
        tmpfs = {POSTGRES_DATA: "rw,size=512m"}
    settings = tuple(word for parameter in s.postgres_parameters for word in ("-c", parameter))
    return ServiceSpec(
        name="postgres",
        image="postgres",
        command=command + settings,
        env={"POSTGRES_USER": s.postgres_user, "POSTGRES_DB": s.postgres_db},
        secret_env={"POSTGRES_PASSWORD": "postgres_password"},
        limits=Limits(memory_mb=s.postgres_memory_mb, cpus=s.cpus, processes=s.process_limit),
        ports=published(s, profile, "postgres", POSTGRES_PORT, s.postgres_port),
        mounts=mounts,
        tmpfs=tmpfs,
        # -h 127.0.0.1: without it pg_isready passes during first-time init, before TCP is up.
        health=health("pg_isready", "-h", "127.0.0.1", "-U", s.postgres_user, "-d", s.postgres_db),
        hardening=data_hardening(profile),
        restart=profile.restart,
        # A fast shutdown (the image's SIGINT) writes a checkpoint; killed, it replays WAL on next start.
        stop_grace_seconds=POSTGRES_STOP_SECONDS,
        placement=(DATA_NODE,),  # its volume lives on that node
    )


def redis(s: StackSettings, profile: Profile) -> ServiceSpec:
    persistence = "--appendonly yes" if profile.persistent_data else "--save '' --appendonly no"
    # Through a shell so the password never is on the command line that `docker inspect` and the
    # plan show; the image's entrypoint still drops root for redis-server. REDISCLI_AUTH lets the
    # health check authenticate without a password on its command line.
    command = ("sh", "-c", f'exec docker-entrypoint.sh redis-server --requirepass "$REDIS_PASSWORD" {persistence}')
    secret_env: dict[str, SecretName] = {"REDIS_PASSWORD": "redis_password", "REDISCLI_AUTH": "redis_password"}
    probe = '[ "$(redis-cli ping)" = PONG ]'
    if secrets_as_files(s):
        # The password only in its secret file: written into a config file on tmpfs at start.
        command = (
            "sh",
            "-c",
            'umask 077 && printf "requirepass %s\\n" "$(cat "$REDIS_PASSWORD_FILE")" >/tmp/redis.conf'
            f" && exec docker-entrypoint.sh redis-server /tmp/redis.conf {persistence}",
        )
        secret_env = {"REDIS_PASSWORD": "redis_password"}
        probe = f'REDISCLI_AUTH="$(cat "$REDIS_PASSWORD_FILE")" && export REDISCLI_AUTH && {probe}'
    return ServiceSpec(
        name="redis",
        image="redis",
        command=command,
        env={},
        secret_env=secret_env,
        limits=Limits(memory_mb=s.redis_memory_mb, cpus=s.cpus, processes=s.process_limit),
        ports=published(s, profile, "redis", REDIS_PORT, s.redis_port),
        mounts=(Mount(target=REDIS_DATA, volume="redis-data"),) if profile.persistent_data else (),
        tmpfs=writable_tmp(profile) if profile.persistent_data else {REDIS_DATA: "rw,size=64m"},
        health=HealthCheck(test=("CMD-SHELL", probe)),
        hardening=data_hardening(profile),
        restart=profile.restart,
        # On SIGTERM Redis fsyncs its append-only file (and saves, where snapshots are on) before exiting.
        stop_grace_seconds=REDIS_STOP_SECONDS,
        placement=(DATA_NODE,),
    )


def backup(s: StackSettings, profile: Profile) -> ServiceSpec:
    """pg_dump on the schedule into the backups volume, each dump checked and checksummed
    (infra/backup.sh); unhealthy once the latest good dump is older than the schedule allows."""
    interval = schedule_seconds(s.backup_schedule)
    run = 'exec sh -c "$BACKUP_SCRIPT" backup'  # + a mode: loop, check, once, list, verify, restore
    return ServiceSpec(
        name="backup",
        image="postgres",
        command=("sh", "-c", f"{run} loop"),
        env={
            "BACKUP_SCRIPT": BACKUP_SCRIPT,
            "BACKUP_DIR": BACKUP_DIR,
            "BACKUP_INTERVAL_SECONDS": str(interval),
            # Overdue once a whole interval has passed since the last good dump, plus time to take one.
            "BACKUP_MAX_AGE_SECONDS": str(interval + max(300, interval // 10)),
            "BACKUP_KEEP": str(s.backup_keep),
            "PGHOST": "postgres",
            "PGUSER": s.postgres_user,
            "PGDATABASE": s.postgres_db,
        },
        secret_env={"PGPASSWORD": "postgres_password"},
        limits=Limits(memory_mb=s.redis_memory_mb, cpus=s.cpus, processes=s.process_limit),
        mounts=(Mount(target=BACKUP_DIR, volume="backups"),),
        tmpfs=writable_tmp(profile),
        # A file's age: cheap, and never flaky, so two failures in a row are enough.
        health=HealthCheck(test=("CMD-SHELL", f"{run} check"), interval_seconds=10, retries=2),
        # After the migrations: each dump is recorded in their table backup_runs.
        depends_on=after_migrations(s) or ("postgres",),
        hardening=data_hardening(profile),
        restart=profile.restart,
        stop_grace_seconds=BACKUP_STOP_SECONDS,
        placement=(DATA_NODE,),  # beside Postgres, with its volume
    )


def backup_offsite(s: StackSettings, profile: Profile) -> ServiceSpec:
    """Every good dump and its checksum copied to an S3-compatible bucket (infra/offsite.sh): only
    adds, never overwrites or deletes; unhealthy when the latest dump is not there in time.

    A service of its own, so the bucket's keys are in no container that holds the database's
    password, and the dumps' volume is mounted read-only."""
    interval = schedule_seconds(s.backup_schedule)
    run = 'exec sh -c "$OFFSITE_SCRIPT" offsite'  # + a mode: loop, once, check, list
    remote = f"RCLONE_CONFIG_{OFFSITE_REMOTE.upper()}"
    return ServiceSpec(
        name="backup-offsite",
        image="rclone",
        entrypoint=("sh", "-c"),  # the image's is rclone itself
        command=(f"{run} loop",),
        env={
            "OFFSITE_SCRIPT": OFFSITE_SCRIPT,
            "BACKUP_DIR": BACKUP_DIR,
            "OFFSITE_TARGET": f"{OFFSITE_REMOTE}:{s.backup_offsite_bucket}/{s.backup_offsite_prefix}",
            # Overdue once the latest dump has waited a tenth of the schedule (at least 10 min) for its copy.
            "OFFSITE_GRACE_SECONDS": str(max(600, interval // 10)),
            f"{remote}_TYPE": "s3",
            f"{remote}_PROVIDER": s.backup_offsite_provider,
            f"{remote}_ENDPOINT": s.backup_offsite_endpoint,
            **({f"{remote}_REGION": s.backup_offsite_region} if s.backup_offsite_region else {}),
            # The bucket exists: the keys need no right to create one (nor to delete anything).
            f"{remote}_NO_CHECK_BUCKET": "true",
            # No config file: the remote is these variables; HOME for anything rclone keeps.
            "RCLONE_CONFIG": "/notfound",
            "HOME": "/tmp",
        },
        secret_env={
            f"{remote}_ACCESS_KEY_ID": "backup_offsite_access_key_id",
            f"{remote}_SECRET_ACCESS_KEY": "backup_offsite_secret_access_key",
        },
        limits=Limits(memory_mb=s.redis_memory_mb, cpus=s.cpus, processes=s.process_limit),
        mounts=(Mount(target=BACKUP_DIR, volume="backups", read_only=True),),
        tmpfs=writable_tmp(profile),
        health=HealthCheck(test=("CMD-SHELL", f"{run} check"), interval_seconds=10, retries=2),
        hardening=data_hardening(profile),  # the dumps' owner: it reads them, nothing more
        restart=profile.restart,
        stop_grace_seconds=OFFSITE_STOP_SECONDS,
        placement=(DATA_NODE,),  # beside the backups volume
    )
