"""What each stack declares, from its committed stack file, run under Pulumi mocks: the image,
the containers, their commands and environment (the rest: test_program_*.py)."""

from __future__ import annotations

import json
import re

import pytest

from proof.mocks import TEST_SECRETS
from proof.resources import IMAGE, REMOTE_IMAGE
from tests.conftest import RunStack
from tests.unit.registrations import (
    APP_SERVICES,
    COMMON,
    CONTRACT_POSTGRES,
    CONTRACT_REDIS,
    SECRET_VARS,
    as_read,
    containers,
    env_of,
    holders,
    is_secret,
    short,
    unwrap,
)

# --- image ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stack_name", "target"), [("dev", "development"), ("test", "development"), ("prod", "production")]
)
def test_image_is_built_from_the_one_dockerfile_with_the_stack_target(
    run_stack: RunStack, stack_name: str, target: str
) -> None:
    run = run_stack(stack_name, pythonBaseImage="registry.example.com/python:3.12.7-slim")
    (image,) = run.of_type(IMAGE).values()
    build = image.inputs["build"]
    assert build["target"] == target
    assert build["context"] == "app" and build["dockerfile"] == "app/Dockerfile"
    assert build["args"] == {"PYTHON_BASE_IMAGE": "registry.example.com/python:3.12.7-slim"}
    assert build["builderVersion"] == "BuilderBuildKit"
    # A tag per release: what the image is built from, digested (infra/releases.py).
    assert re.fullmatch(rf"ichrisbirch:{stack_name}-[0-9a-f]{{12}}", image.inputs["imageName"]), image.inputs
    assert image.inputs["skipPush"] is True
    assert "registry" not in image.inputs


def test_app_containers_run_the_built_image_by_digest(run_stack: RunStack, stack: str) -> None:
    run = run_stack(stack)
    digest = run.outputs["image_digest"]  # under ProgramMocks: derived from the build context's digest
    assert digest.startswith("sha256:plan-")
    for name in APP_SERVICES:
        assert containers(run)[name].inputs["image"] == digest, name
    postgres_image = containers(run)["postgres"].inputs["image"]
    assert postgres_image.startswith("sha256:plan-") and postgres_image != digest
    remote = run.of_type(REMOTE_IMAGE)
    assert remote["postgres-image"].inputs["name"] == "postgres:16.4-bookworm"
    assert remote["redis-image"].inputs["name"] == "redis:7.4.1-bookworm"


def test_prod_pushes_to_a_configured_registry_with_secret_credentials(run_stack: RunStack) -> None:
    run = run_stack(
        "prod",
        imageRegistry="registry.example.com/team",
        registryUsername="ci",
        secrets={"registryPassword": "hunter2-test"},
    )
    (image,) = run.of_type(IMAGE).values()
    assert re.fullmatch(r"registry\.example\.com/team/ichrisbirch:prod-[0-9a-f]{12}", image.inputs["imageName"])
    assert image.inputs["skipPush"] is False
    assert is_secret(image.inputs["registry"]), "the registry credentials must reach the engine as a secret"
    registry = unwrap(image.inputs["registry"])
    assert registry == {"server": "registry.example.com", "username": "ci", "password": "hunter2-test"}


# --- containers, commands, environment ----------------------------------------------------------


def test_containers_per_stack(run_stack: RunStack, stack: str) -> None:
    run = run_stack(stack)
    expected = {"postgres", "redis", "migrate", "api", "app", "scheduler"}
    expected |= {"router", "ingress"} if stack in ("test", "prod") else set()
    expected |= {"tests"} if stack == "test" else set()
    expected |= {"backup"} if stack == "prod" else set()  # dev's stack file turns backups off
    assert set(containers(run)) == expected
    for name, container in containers(run).items():
        if container.delete_before_replace:
            assert container.inputs["name"] == f"icb-{stack}-{name}"
        elif name == "migrate":  # a create-first one-shot: autonamed, so `up --replace migrate` runs it again
            assert "name" not in container.inputs, container.inputs.get("name")
        else:  # create-first: a name of its own per version, so old and new run side by side
            assert re.fullmatch(rf"icb-{stack}-{name}-[0-9a-f]{{8}}", container.inputs["name"]), name
    scheduler_commands = [c for c in containers(run).values() if "ichrisbirch.wsgi_scheduler" in c.inputs["command"]]
    assert len(scheduler_commands) == 1, "exactly one scheduler per stack"


def test_dev_commands_reload(run_stack: RunStack) -> None:
    run = containers(run_stack("dev"))
    assert run["api"].inputs["command"] == [
        "uvicorn",
        "ichrisbirch.wsgi_api:api",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
        "--timeout-graceful-shutdown",
        "20",
        "--reload",
    ]
    assert run["app"].inputs["command"] == [
        "flask",
        "--app",
        "ichrisbirch.wsgi_app:app",
        "run",
        "--host",
        "0.0.0.0",
        "--port",
        "5000",
        "--debug",
    ]
    assert run["scheduler"].inputs["command"] == ["python", "-m", "ichrisbirch.wsgi_scheduler"]
    assert run["migrate"].inputs["command"] == ["python", "-m", "ichrisbirch.migrate"]


def test_prod_commands_run_gunicorn_with_configured_workers(run_stack: RunStack) -> None:
    default = containers(run_stack("prod"))
    assert default["api"].inputs["command"] == [
        "gunicorn",
        "ichrisbirch.wsgi_api:api",
        "--bind",
        "0.0.0.0:8000",
        "--worker-class",
        "uvicorn_worker.UvicornWorker",
        "--workers",
        "4",
        "--preload",
        "--graceful-timeout",
        "20",
        "--no-control-socket",
    ]
    assert default["app"].inputs["command"][:2] == ["gunicorn", "ichrisbirch.wsgi_app:app"]
    two = containers(run_stack("prod", apiWorkers="2", appWorkers="3"))
    assert two["api"].inputs["command"][-6:-3] == ["--workers", "2", "--preload"]
    assert two["app"].inputs["command"][-6:-3] == ["--workers", "3", "--preload"]


def test_test_stack_runs_the_suite_once_and_exports_its_exit_code(run_stack: RunStack) -> None:
    run = run_stack("test")
    tests = containers(run)["tests"]
    assert tests.inputs["command"][:3] == ["python", "-m", "pytest"]
    assert tests.inputs["mustRun"] is False and tests.inputs["attach"] is True and tests.inputs["logs"] is True
    assert {short(d) for d in tests.dependencies} >= {"api", "app", "scheduler"}
    assert run.outputs["tests_exit_code"] == 0


def test_each_container_gets_only_the_environment_it_uses(run_stack: RunStack, stack: str) -> None:
    run = containers(run_stack(stack))
    assert set(env_of(run["api"])) == as_read(stack, COMMON | CONTRACT_POSTGRES | CONTRACT_REDIS)
    assert set(env_of(run["app"])) == as_read(
        stack, COMMON | {"FASTAPI_HOST", "FASTAPI_PORT", "FLASK_HOST", "FLASK_PORT", "FLASK_SECRET_KEY"}
    )
    assert set(env_of(run["migrate"])) == as_read(stack, COMMON | CONTRACT_POSTGRES)
    assert set(env_of(run["scheduler"])) == as_read(stack, COMMON | CONTRACT_POSTGRES | {"SCHEDULER_HEARTBEAT_SECONDS"})
    assert set(env_of(run["postgres"])) == as_read(stack, {"POSTGRES_USER", "POSTGRES_DB", "POSTGRES_PASSWORD"})
    # With the password in a file, Redis's command reads it, and so does its probe.
    assert set(env_of(run["redis"])) == ({"REDIS_PASSWORD_FILE"} if stack == "prod" else SECRET_VARS & {
        "REDIS_PASSWORD", "REDISCLI_AUTH"
    })  # fmt: skip
    if "backup" in run:
        assert set(env_of(run["backup"])) == as_read(stack, {"PGHOST", "PGUSER", "PGDATABASE", "PGPASSWORD"}) | {
            f"BACKUP_{name}" for name in ("SCRIPT", "DIR", "INTERVAL_SECONDS", "MAX_AGE_SECONDS", "KEEP")
        }
    assert env_of(run["api"])["ENVIRONMENT"] == stack
    assert env_of(run["app"])["FASTAPI_HOST"] == "api"


def test_prod_secrets_are_files_in_volumes_only_their_readers_mount(run_stack: RunStack) -> None:
    run = run_stack("prod")
    held = {name: h for name, h in holders(run).items() if name.startswith("secret-")}
    assert set(held) == {f"secret-{n}" for n in ("postgres-password", "redis-password", "flask-secret-key",
                                                          "router-tls-pem")}  # fmt: skip
    readers: dict[str, set[str]] = {}
    for name, container in containers(run).items():
        assert not any(value in json.dumps(container.inputs) for value in TEST_SECRETS.values()), name
        for volume in container.inputs.get("volumes") or []:
            if volume["volumeName"].startswith("icb-prod-secret-"):
                assert volume["readOnly"] is True and volume["containerPath"].startswith("/run/secrets/"), name
                readers.setdefault(volume["volumeName"], set()).add(name)
        for entry in env_of(container):
            assert entry not in SECRET_VARS, f"{name} has {entry} in its environment"
    assert readers == {
        "icb-prod-secret-postgres-password": {"postgres", "migrate", "api", "scheduler", "backup"},
        "icb-prod-secret-redis-password": {"redis", "api"},
        "icb-prod-secret-flask-secret-key": {"app"},
        "icb-prod-secret-router-tls-pem": {"router"},
    }
    assert env_of(containers(run)["api"])["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password/value"
    for name, holder in held.items():
        inputs = holder.inputs
        assert inputs["start"] is False and inputs["mustRun"] is False and inputs["networkMode"] == "none", name
        assert is_secret(inputs["uploads"]), f"{name}'s value is a Pulumi secret in state and plans"
        (upload,) = unwrap(inputs["uploads"])
        assert upload["permissions"] == "0444" and upload["file"].endswith("/value")
        assert "name" not in inputs and holder.delete_before_replace is False, "autonamed, created before the old goes"
    flask = held["secret-flask-secret-key"]
    assert unwrap(flask.inputs["uploads"])[0]["content"] == TEST_SECRETS["flaskSecretKey"]
    for name in ("dev", "test"):  # environment variables there, as the issue allows
        assert not [h for h in holders(run_stack(name)) if "-secret-" in h]


@pytest.mark.parametrize("env_stack", ["dev", "test"])  # prod: files, above
def test_secret_env_values_are_pulumi_secrets(run_stack: RunStack, env_stack: str) -> None:
    for name, container in containers(run_stack(env_stack)).items():
        if name == "ingress":  # HAProxy in TCP mode: it reads no secret (the router has the key)
            assert not any(value in str(container.inputs) for value in TEST_SECRETS.values())
            continue
        envs = container.inputs["envs"]
        assert is_secret(envs), f"{name}'s envs carry a secret but are not marked secret"
        env = env_of(container)
        for var, secret in [
            ("POSTGRES_PASSWORD", "postgresPassword"),
            ("PGPASSWORD", "postgresPassword"),
            ("REDIS_PASSWORD", "redisPassword"),
            ("FLASK_SECRET_KEY", "flaskSecretKey"),
        ]:
            if var in env:
                assert env[var] == TEST_SECRETS[secret]
        command = " ".join(container.inputs["command"])
        assert not any(value in command for value in TEST_SECRETS.values()), f"a secret is on {name}'s command line"


def test_log_level_and_heartbeat_come_from_the_stack_file(run_stack: RunStack) -> None:
    dev, prod = containers(run_stack("dev")), containers(run_stack("prod"))
    assert env_of(dev["api"])["LOG_LEVEL"] == "DEBUG" and env_of(prod["api"])["LOG_LEVEL"] == "INFO"
    assert env_of(dev["scheduler"])["SCHEDULER_HEARTBEAT_SECONDS"] == "5"
    assert env_of(prod["scheduler"])["SCHEDULER_HEARTBEAT_SECONDS"] == "60"
