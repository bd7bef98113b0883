"""The application's services, from the one image: migrate, api, app, scheduler, and the test
suite run inside the test stack; with the environment contract each reads (split by who uses what).
"""

from __future__ import annotations

from pathlib import Path

from infra.ingress import HTTPS_PORT, Route
from infra.profiles import Profile
from infra.settings import StackSettings
from infra.spec import (
    POSTGRES_PORT,
    REDIS_PORT,
    SERVER_GRACEFUL_SECONDS,
    SERVER_STOP_SECONDS,
    Limits,
    SecretName,
    ServiceSpec,
    after_migrations,
    app_hardening,
    app_health,
    published,
    runs,
    source_mounts,
    writable_tmp,
)


def _common_env(s: StackSettings) -> dict[str, str]:
    return {"ENVIRONMENT": s.environment, "LOG_LEVEL": s.log_level}


def _postgres_env(s: StackSettings) -> tuple[dict[str, str], dict[str, SecretName]]:
    env = {
        "POSTGRES_HOST": "postgres",
        "POSTGRES_PORT": str(POSTGRES_PORT),
        "POSTGRES_USERNAME": s.postgres_user,
        "POSTGRES_DB": s.postgres_db,
    }
    return env, {"POSTGRES_PASSWORD": "postgres_password"}


def _redis_env(s: StackSettings) -> tuple[dict[str, str], dict[str, SecretName]]:
    env = {"REDIS_HOST": "redis", "REDIS_PORT": str(REDIS_PORT), "REDIS_DB": str(s.redis_db)}
    return env, {"REDIS_PASSWORD": "redis_password"}


def _flask_env(s: StackSettings) -> tuple[dict[str, str], dict[str, SecretName]]:
    env = {
        "FASTAPI_HOST": "api",
        "FASTAPI_PORT": str(s.api_container_port),
        "FLASK_HOST": "0.0.0.0",
        "FLASK_PORT": str(s.app_container_port),
    }
    return env, {"FLASK_SECRET_KEY": "flask_secret_key"}


def _merge(
    *parts: tuple[dict[str, str], dict[str, SecretName]],
) -> tuple[dict[str, str], dict[str, SecretName]]:
    env: dict[str, str] = {}
    secrets: dict[str, SecretName] = {}
    for plain, secret in parts:
        env.update(plain)
        secrets.update(secret)
    return env, secrets


def migrate(s: StackSettings, profile: Profile, app_dir: Path) -> ServiceSpec:
    env, secrets = _merge((_common_env(s), {}), _postgres_env(s))
    return ServiceSpec(
        name="migrate",
        image="app",
        command=tuple(s.migration_command),
        env=env,
        secret_env=secrets,
        limits=Limits(memory_mb=s.memory_mb, cpus=s.cpus, processes=s.process_limit),
        mounts=source_mounts(profile, app_dir),
        tmpfs=writable_tmp(profile),
        depends_on=("postgres",),
        one_shot=True,
        migrates=True,
        hardening=app_hardening(profile),
        # Beside an ingress, a name of its own per release, made before the old one goes: api,
        # app and scheduler carry its exit gate, so the old release's gate stands until the new
        # migrations have run, and nothing serving is deleted for them.
        create_first=profile.ingress,
    )


def api(s: StackSettings, profile: Profile, app_dir: Path) -> ServiceSpec:
    env, secrets = _merge((_common_env(s), {}), _postgres_env(s), _redis_env(s))
    port = s.api_container_port
    if s.api_command:
        command: tuple[str, ...] = tuple(s.api_command)
    elif profile.production_servers:
        command = (
            "gunicorn",
            "ichrisbirch.wsgi_api:api",
            "--bind",
            f"0.0.0.0:{port}",
            "--worker-class",
            "uvicorn_worker.UvicornWorker",
            "--workers",
            str(s.api_workers),
            # Load the app in the master: a bad environment stops gunicorn instead of a worker boot loop.
            "--preload",
            # On SIGTERM, workers finish their in-flight requests for up to this long.
            "--graceful-timeout",
            str(SERVER_GRACEFUL_SECONDS),
            # No runtime control socket (gunicorn 25.1+): nothing here uses one, and it would be
            # made under the read-only home of a user without one.
            "--no-control-socket",
        )
    else:
        command = ("uvicorn", "ichrisbirch.wsgi_api:api", "--host", "0.0.0.0", "--port", str(port))
        command += ("--timeout-graceful-shutdown", str(SERVER_GRACEFUL_SECONDS))
        if profile.hot_reload:
            command += ("--reload",)
    return ServiceSpec(
        name="api",
        image="app",
        command=command,
        env=env,
        secret_env=secrets,
        limits=Limits(memory_mb=s.memory_mb, cpus=s.cpus, processes=s.process_limit),
        ports=published(s, profile, "api", port, s.api_port),
        replicas=s.api_replicas,
        create_first=profile.ingress,
        route=Route(s.hosts.api, "api", port, s.api_health_path),
        mounts=source_mounts(profile, app_dir),
        tmpfs=writable_tmp(profile),
        health=app_health(s.api_health_command, port, s.api_health_path),
        depends_on=("postgres", "redis", *after_migrations(s)),
        hardening=app_hardening(profile),
        restart=profile.restart,
        stop_grace_seconds=SERVER_STOP_SECONDS,
    )


def app(s: StackSettings, profile: Profile, app_dir: Path) -> ServiceSpec:
    env, secrets = _merge((_common_env(s), {}), _flask_env(s))
    port = s.app_container_port
    if s.app_command:
        command: tuple[str, ...] = tuple(s.app_command)
    elif profile.production_servers:
        command = (
            "gunicorn",
            "ichrisbirch.wsgi_app:app",
            "--bind",
            f"0.0.0.0:{port}",
            "--workers",
            str(s.app_workers),
            "--preload",
            "--graceful-timeout",
            str(SERVER_GRACEFUL_SECONDS),
            "--no-control-socket",
        )
    else:
        command = ("flask", "--app", "ichrisbirch.wsgi_app:app", "run", "--host", "0.0.0.0", "--port", str(port))
        if profile.hot_reload:
            command += ("--debug",)
    return ServiceSpec(
        name="app",
        image="app",
        command=command,
        env=env,
        secret_env=secrets,
        limits=Limits(memory_mb=s.memory_mb, cpus=s.cpus, processes=s.process_limit),
        ports=published(s, profile, "app", port, s.app_port),
        replicas=s.app_replicas,
        create_first=profile.ingress,
        route=Route(s.hosts.app, "app", port, s.app_health_path),
        mounts=source_mounts(profile, app_dir),
        tmpfs=writable_tmp(profile),
        health=app_health(s.app_health_command, port, s.app_health_path),
        depends_on=("api",),
        hardening=app_hardening(profile),
        restart=profile.restart,
        stop_grace_seconds=SERVER_STOP_SECONDS,
    )


def scheduler(s: StackSettings, profile: Profile, app_dir: Path) -> ServiceSpec:
    # Exactly one per stack: two schedulers on one database would run every job twice.
    env, secrets = _merge(
        (_common_env(s), {}), _postgres_env(s), ({"SCHEDULER_HEARTBEAT_SECONDS": str(s.heartbeat_seconds)}, {})
    )
    return ServiceSpec(
        name="scheduler",
        image="app",
        command=tuple(s.scheduler_command),
        env=env,
        secret_env=secrets,
        limits=Limits(memory_mb=s.memory_mb, cpus=s.cpus, processes=s.process_limit),
        mounts=source_mounts(profile, app_dir),
        tmpfs=writable_tmp(profile),
        health=app_health(s.scheduler_health_command),
        # Last in a rollout: one that fails on the api or the app never reaches it.
        depends_on=(*after_migrations(s), "app" if s.app_enabled else "api"),
        # Two may overlap while it is replaced create-first: the leader lock lets one run jobs.
        create_first=profile.ingress,
        hardening=app_hardening(profile),
        restart=profile.restart,
    )


def tests(s: StackSettings, profile: Profile) -> ServiceSpec:
    env, secrets = _merge(
        (_common_env(s), {}),
        _postgres_env(s),
        _redis_env(s),
        _flask_env(s),
        ({"SCHEDULER_HEARTBEAT_SECONDS": str(s.heartbeat_seconds)}, {}),
    )
    if profile.ingress:
        # The deployed stack, through its ingress, as a client outside would see it.
        env["STACK_APP_URL"] = f"https://{s.hosts.app}:{HTTPS_PORT}"
        env["STACK_API_URL"] = f"https://{s.hosts.api}:{HTTPS_PORT}"
        secrets["STACK_CA_CERTIFICATE"] = "internal_ca_certificate"
    return ServiceSpec(
        name="tests",
        image="app",
        command=tuple(s.test_command),
        env=env,
        secret_env=secrets,
        limits=Limits(memory_mb=s.memory_mb, cpus=s.cpus, processes=s.process_limit),
        depends_on=tuple(d for d in ("api", "app", "scheduler", "ingress") if runs(s, profile, d)),
        one_shot=True,
        hardening=app_hardening(profile),
    )
