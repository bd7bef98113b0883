"""What each stack declares, from its committed stack file, run under Pulumi mocks."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import pytest

from infra.config import ConfigError, load_settings
from infra.containers import replacement_key
from infra.identity import PROJECT_DIR
from infra.services import services
from infra.spec import HealthCheck, Port
from proof.mocks import TEST_SECRETS, ProgramMocks, Registration, Run, committed_config
from proof.resources import CONTAINER, IMAGE, NETWORK, PROVIDER, REMOTE_IMAGE, SECRET_SIG, SECRET_VALUE_SIG, VOLUME
from tests.conftest import RunStack

LONG_RUNNING = ["postgres", "redis", "api", "app", "scheduler"]
APP_SERVICES = ["migrate", "api", "app", "scheduler"]

CONTRACT_POSTGRES = {"POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_USERNAME", "POSTGRES_PASSWORD", "POSTGRES_DB"}
CONTRACT_REDIS = {"REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "REDIS_DB"}
COMMON = {"ENVIRONMENT", "LOG_LEVEL"}


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG) == SECRET_VALUE_SIG


def unwrap(value: Any) -> Any:
    return value["value"] if is_secret(value) else value


def env_of(container: Registration) -> dict[str, str]:
    return dict(entry.split("=", 1) for entry in unwrap(container.inputs["envs"]))


def containers(run: Run) -> dict[str, Registration]:
    """The containers that run (not prod's secret holders, which are created and never started)."""
    return {name: c for name, c in run.of_type(CONTAINER).items() if c.inputs.get("start", True)}


def holders(run: Run) -> dict[str, Registration]:
    return {name: c for name, c in run.of_type(CONTAINER).items() if not c.inputs.get("start", True)}


def label(resource: Registration, key: str) -> str | None:
    return next((x["value"] for x in unwrap(resource.inputs.get("labels")) or [] if x["label"] == key), None)


def config_of(run: Run, service: str, path: str | None = None) -> str:
    """The configuration file the program renders for `service`: its holder's upload."""
    (holder,) = [
        h
        for h in holders(run).values()
        if label(h, "ichrisbirch.config-of") == service and path in (None, label(h, "ichrisbirch.file"))
    ]
    (upload,) = unwrap(holder.inputs["uploads"])
    return str(upload["content"])


def data_volumes(run: Run) -> dict[str, Registration]:
    """The stack's volumes that hold data: not those a holder fills with a secret or a configuration."""
    held = {v["volumeName"] for h in holders(run).values() for v in h.inputs["volumes"]}
    return {name: v for name, v in run.of_type(VOLUME).items() if v.inputs["name"] not in held}


SECRET_VARS = {"POSTGRES_PASSWORD", "REDIS_PASSWORD", "FLASK_SECRET_KEY", "PGPASSWORD", "REDISCLI_AUTH"}


def as_read(stack: str, names: set[str]) -> set[str]:
    """The variables a container has for `names`: in prod each secret's is <VAR>_FILE."""
    return {f"{n}_FILE" if stack == "prod" and n in SECRET_VARS else n for n in names}


def short(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


@pytest.fixture(params=["dev", "test", "prod"])
def stack(request: pytest.FixtureRequest) -> str:
    return str(request.param)


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
    ]
    assert default["app"].inputs["command"][:2] == ["gunicorn", "ichrisbirch.wsgi_app:app"]
    two = containers(run_stack("prod", apiWorkers="2", appWorkers="3"))
    assert two["api"].inputs["command"][-5:-2] == ["--workers", "2", "--preload"]
    assert two["app"].inputs["command"][-5:-2] == ["--workers", "3", "--preload"]


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


# --- network, ports, volumes ---------------------------------------------------------------------


def test_one_network_per_stack_with_an_alias_per_service(run_stack: RunStack, stack: str) -> None:
    run = run_stack(stack)
    (network,) = run.of_type(NETWORK).values()
    assert network.inputs["name"] == f"icb-{stack}"
    domain = {"test": "test.ichrisbirch.internal", "prod": "localhost"}.get(stack)
    for name, container in containers(run).items():
        # The ingress also answers to the sites' names, for clients on the network (the test suite).
        aliases = [name, domain, f"api.{domain}"] if name == "ingress" else [name]
        assert container.inputs["networksAdvanced"] == [{"aliases": aliases, "name": f"icb-{stack}"}]
    assert run.outputs["network"] == f"icb-{stack}"


PORTS = {
    "dev": {"api": 8000, "app": 5000, "postgres": 5432, "redis": 6379},
    "test": {"postgres": 5434, "redis": 6380, "ingress": 8081},
    "prod": {"ingress": 80},
}
INTERNAL = {"api": 8000, "app": 5000, "postgres": 5432, "redis": 6379, "ingress": 8080}


def test_published_ports_and_host_address(run_stack: RunStack, stack: str) -> None:
    run = containers(run_stack(stack))
    published = {name: c.inputs.get("ports", []) for name, c in run.items() if c.inputs.get("ports")}
    assert set(published) == set(PORTS[stack])
    for name, ports in published.items():
        expected = [{"external": PORTS[stack][name], "internal": INTERNAL[name], "ip": "127.0.0.1"}]
        if name == "ingress":  # and HTTPS
            expected.append({"external": {"test": 8444}.get(stack, 443), "internal": 8443, "ip": "127.0.0.1"})
        assert ports == expected


def test_host_address_is_configurable(run_stack: RunStack) -> None:
    run = containers(run_stack("prod", bindAddress="10.1.2.3"))
    assert {p["ip"] for c in run.values() for p in c.inputs.get("ports", [])} == {"10.1.2.3"}


def test_dev_and_prod_keep_data_in_named_volumes(run_stack: RunStack) -> None:
    for stack in ("dev", "prod"):
        run = run_stack(stack)
        volumes = run.of_type(VOLUME)
        backups = {f"icb-{stack}-backups"} if stack == "prod" else set()
        data = data_volumes(run)
        assert {v.inputs["name"] for v in data.values()} == {
            f"icb-{stack}-postgres-data",
            f"icb-{stack}-redis-data",
            *backups,
        }
        mounts = containers(run)["postgres"].inputs["volumes"]
        assert mounts[0] == {
            "containerPath": "/var/lib/postgresql/data",
            "readOnly": False,
            "volumeName": f"icb-{stack}-postgres-data",
        }
        assert all(v.protect == (stack == "prod") for v in data.values())
        assert not any(v.protect for name, v in volumes.items() if name not in data), "secrets and configs are no data"


def test_test_stack_postgres_runs_on_tmpfs_without_fsync(run_stack: RunStack) -> None:
    run = run_stack("test")
    assert data_volumes(run) == {}
    postgres = containers(run)["postgres"]
    assert "/var/lib/postgresql/data" in postgres.inputs["tmpfs"]
    assert "fsync=off" in postgres.inputs["command"]
    assert "volumes" not in postgres.inputs or postgres.inputs["volumes"] == []


def test_dev_bind_mounts_the_source_without_hiding_the_venv(run_stack: RunStack) -> None:
    run = containers(run_stack("dev"))
    source = str(PROJECT_DIR / "app" / "ichrisbirch")
    for name in APP_SERVICES:
        assert run[name].inputs["volumes"] == [
            {"containerPath": "/app/ichrisbirch", "hostPath": source, "readOnly": True}
        ]
    for stack in ("test", "prod"):
        assert all(
            not c.inputs.get("volumes") or "hostPath" not in c.inputs["volumes"][0]
            for c in containers(run_stack(stack)).values()
        )


# --- health and order ---------------------------------------------------------------------------


def test_every_long_running_container_is_health_checked_and_waited_for(run_stack: RunStack, stack: str) -> None:
    run = containers(run_stack(stack))
    for name in LONG_RUNNING:
        inputs = run[name].inputs
        assert inputs["healthcheck"]["tests"][0] in ("CMD", "CMD-SHELL"), name
        assert inputs["wait"] is True and inputs["waitTimeout"] == 120, name
        assert inputs["mustRun"] is True
    assert run["scheduler"].inputs["healthcheck"]["tests"] == [
        "CMD",
        "python",
        "-m",
        "ichrisbirch.healthcheck",
        "scheduler",
    ]
    assert run["postgres"].inputs["healthcheck"]["tests"][:4] == ["CMD", "pg_isready", "-h", "127.0.0.1"]
    assert "curl" not in str([c.inputs.get("healthcheck") for c in run.values()])
    assert run["migrate"].inputs["mustRun"] is False and run["migrate"].inputs["attach"] is True


def test_health_gated_order(run_stack: RunStack, stack: str) -> None:
    run = containers(run_stack(stack))

    def after(name: str) -> set[str]:  # (prod's secret holders aside)
        return {short(d) for d in run[name].dependencies if "Container::" in d and "::secret-" not in d}

    assert after("migrate") == {"postgres"}
    assert after("api") == {"postgres", "redis", "migrate"}
    assert after("app") == {"api"}
    assert after("scheduler") == {"migrate", "app"}
    labels = {label["label"]: label["value"] for label in run["api"].inputs["labels"]}
    assert labels["ichrisbirch.after.migrate"] == "passed"


def test_the_backup_service_dumps_on_its_schedule_into_its_protected_volume(run_stack: RunStack) -> None:
    run = run_stack("prod", backupSchedule="6h", backupKeep="14")
    backup = containers(run)["backup"]
    env = env_of(backup)
    assert env["BACKUP_INTERVAL_SECONDS"] == "21600" and env["BACKUP_KEEP"] == "14"
    assert env["BACKUP_MAX_AGE_SECONDS"] == str(21600 + 2160), "overdue after an interval and a tenth"
    assert env["PGHOST"] == "postgres" and env["BACKUP_SCRIPT"] == (PROJECT_DIR / "infra" / "backup.sh").read_text()
    assert backup.inputs["command"] == ["sh", "-c", 'exec sh -c "$BACKUP_SCRIPT" backup loop']
    assert backup.inputs["healthcheck"]["tests"] == ["CMD-SHELL", 'exec sh -c "$BACKUP_SCRIPT" backup check']
    assert backup.inputs["volumes"][0] == {
        "containerPath": "/var/lib/postgresql/data",
        "readOnly": False,
        "volumeName": "icb-prod-backups",
    }
    assert run.named(VOLUME, "backups").protect, "the dumps outlive a careless `pulumi destroy`"
    assert {short(d) for d in backup.dependencies if "Container::" in d and "::secret-" not in d} == {"migrate"}, (
        "backup_runs exists"
    )
    assert backup.inputs["user"] == "999:999" and backup.inputs["readOnly"] is True
    assert "backup" not in containers(run_stack("test", backups="true")), "test keeps no data to back up"
    assert "backup" in containers(run_stack("dev", backups="true")), "optional in dev"
    assert "backup" not in containers(run_stack("prod", backups="false"))


class FailingMigration(ProgramMocks):
    def __init__(self) -> None:
        self.created: list[str] = []

    def new_resource(self, args):  # type: ignore[no-untyped-def]
        self.created.append(args.name)
        resource_id, state = super().new_resource(args)
        if args.name == "migrate":
            state.update(exitCode=3, containerLogs="could not connect to postgres")
        return resource_id, state


def test_a_failed_migration_stops_the_api_from_starting(run_stack: RunStack) -> None:
    mocks = FailingMigration()
    with pytest.raises(Exception, match="migrate exited with code 3"):
        run_stack("dev", mocks=mocks)
    assert "migrate" in mocks.created
    assert "api" not in mocks.created and "app" not in mocks.created


# --- prod hardening, and how dev differs ---------------------------------------------------------


def test_prod_application_containers_are_hardened(run_stack: RunStack) -> None:
    run = containers(run_stack("prod"))
    for name in APP_SERVICES:
        inputs = run[name].inputs
        assert inputs["user"] == "10001:10001", name
        assert inputs["readOnly"] is True
        assert inputs["capabilities"] == {"drops": ["ALL"]}
        assert inputs["securityOpts"] == ["no-new-privileges:true"]
        assert inputs["memory"] == 768 and inputs["cpus"] == "1.0"
        assert inputs["ulimits"] == [{"hard": 256, "name": "nproc", "soft": 256}]
        assert "/tmp" in inputs["tmpfs"]
    for name in LONG_RUNNING:
        inputs = run[name].inputs
        assert inputs["restart"] == "always"
        assert inputs["logDriver"] == "json-file" and inputs["logOpts"] == {"max-file": "3", "max-size": "10m"}
        assert inputs["securityOpts"] == ["no-new-privileges:true"]
        assert inputs["capabilities"]["drops"] == ["ALL"]
        assert inputs["memory"] > 0
    assert run["migrate"].inputs["restart"] == "no"
    for name in ("postgres", "redis"):  # as their images' own non-root users, no capabilities at all
        inputs = run[name].inputs
        assert inputs["user"] == "999:999" and inputs["readOnly"] is True, name
        assert inputs["capabilities"] == {"drops": ["ALL"]}, name
        assert "/tmp" in inputs["tmpfs"] and inputs["ulimits"][0]["name"] == "nproc", name
    assert "/var/run/postgresql" in run["postgres"].inputs["tmpfs"]


def test_dev_is_not_hardened_but_limited_and_restarts_unless_stopped(run_stack: RunStack) -> None:
    run = containers(run_stack("dev"))
    for name in LONG_RUNNING:
        inputs = run[name].inputs
        assert inputs["restart"] == "unless-stopped"
        assert inputs["readOnly"] is False and "user" not in inputs and "capabilities" not in inputs
        assert inputs["memory"] > 0


def test_containers_with_fixed_names_are_replaced_delete_first(run_stack: RunStack, stack: str) -> None:
    create_first = {"migrate", "api", "app", "scheduler", "router"} if stack in ("test", "prod") else set()
    for name, container in containers(run_stack(stack)).items():
        assert container.delete_before_replace_defined, name
        assert container.delete_before_replace == (name not in create_first), name
        assert container.replace_on_changes == ["healthcheck", "tmpfs"], name


def test_prod_publishes_only_the_ingress_and_the_router_routes_by_host(run_stack: RunStack) -> None:
    run = containers(run_stack("prod", domain="example.org"))
    assert [name for name, c in run.items() if c.inputs.get("ports")] == ["ingress"]
    config = config_of(run_stack("prod", domain="example.org"), "router")
    assert "use_backend api if { hdr(host),field(1,:) -m str -i api.example.org }" in config
    assert "use_backend app if { hdr(host),field(1,:) -m str -i example.org }" in config
    assert "server-template api 6 api:8000 check resolvers docker init-addr none" in config
    assert "retry-on conn-failure empty-response response-timeout" in config
    assert {short(d) for d in run["router"].dependencies if "Container::" in d} == {
        "api",
        "app",
        "secret-router-tls-pem",
        "router-haproxy-cfg",
    }, "after what it routes to, and the holders of its certificate and configuration"


def test_the_tcp_ingress_passes_connections_to_healthy_routers_and_never_changes(run_stack: RunStack) -> None:
    default_run = run_stack("prod")
    changed_run = run_stack("prod", domain="example.org", requestBodyLimitKb="64", httpsPort="8443")
    default, changed = containers(default_run)["ingress"], containers(changed_run)
    config = config_of(default_run, "ingress")
    assert "mode tcp" in config
    assert "server-template router 6 router:8443 check port 8404 send-proxy-v2" in config
    # Routing, TLS and limits live in the router: the ingress (which holds the host's ports) is
    # not replaced when they change, only its ports and aliases follow the settings.
    assert config_of(changed_run, "ingress") == config
    assert env_of(changed["ingress"]) == env_of(default)
    assert changed["ingress"].inputs["command"] == default.inputs["command"]
    assert config_of(changed_run, "router") != config_of(default_run, "router")
    # The router takes the client's address from the PROXY header the ingress sends.
    assert "bind :8443 accept-proxy ssl crt" in config_of(changed_run, "router")


def test_the_router_serves_https_from_the_stacks_own_ca_and_plain_http_only_redirects(run_stack: RunStack) -> None:
    run = run_stack("prod", domain="example.org", httpsPort="8443", requestBodyLimitKb="64")
    config = config_of(run, "router")
    http_frontend = config.split("frontend http\n")[1].split("\n\n")[0]
    assert [line.strip() for line in http_frontend.strip().splitlines()[1:]] == [
        "http-request redirect location https://%[req.hdr(host),field(1,:)]:8443%[capture.req.uri] code 301"
    ], "plain HTTP does nothing but redirect"
    # The certificate and key from the secret's file (prod keeps secrets out of environments),
    # named by the variable the renderer sets, in a file mounted read-only.
    router = containers(run)["router"]
    assert 'bind :8443 accept-proxy ssl crt "${HAPROXY_TLS_PEM_FILE}" alpn http/1.1 ssl-min-ver TLSv1.2' in config
    assert env_of(router)["HAPROXY_TLS_PEM_FILE"] == "/run/secrets/router_tls_pem/value"
    assert router.inputs["command"] == ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
    mounted = {v["containerPath"]: v for v in router.inputs["volumes"]}
    assert mounted["/usr/local/etc/haproxy"]["readOnly"] is True
    assert mounted["/usr/local/etc/haproxy"]["volumeName"] == "icb-prod-router-haproxy-cfg"
    assert 'Strict-Transport-Security "max-age=31536000; includeSubDomains"' in config
    assert "deny_status 413 if { req.hdr_val(content-length) gt 65536 }" in config
    csr = run.named("tls:index/certRequest:CertRequest", "server-csr")
    assert csr.inputs["dnsNames"] == ["example.org", "api.example.org"]
    ca = run.named("tls:index/selfSignedCert:SelfSignedCert", "ca-cert")
    assert ca.inputs["isCaCertificate"] is True and "cert_signing" in ca.inputs["allowedUses"]
    key = run.named("tls:index/privateKey:PrivateKey", "server-key")
    assert key.inputs == {"algorithm": "ECDSA", "ecdsaCurve": "P256"}


def test_with_an_acme_email_caddy_gets_certificates_and_passes_requests_to_the_router(run_stack: RunStack) -> None:
    run = run_stack("prod", domain="example.org", acmeEmail="ops@example.org")
    ingress = containers(run)["ingress"]
    caddyfile = config_of(run, "ingress", "/etc/caddy/Caddyfile")
    assert run.named(REMOTE_IMAGE, "caddy-image").inputs["name"] == "caddy:2.10.2"
    assert "\temail ops@example.org\n" in caddyfile
    assert "\tacme_ca https://acme-v02.api.letsencrypt.org/directory\n" in caddyfile
    assert "\nexample.org, api.example.org {\n" in caddyfile
    # Plain HTTP only redirects (Caddy answers the HTTP-01 challenge on it before any route).
    http_site = caddyfile.split("http://example.org, http://api.example.org {\n")[1].split("\n}")[0]
    assert http_site.strip() == "redir https://{host}{uri} 301"
    # To the router over TLS, verified against the stack's CA, one connection per request.
    assert "reverse_proxy https://router:8443" in caddyfile and "tls_server_name example.org" in caddyfile
    assert "keepalive off" in caddyfile
    # The CA it verifies the router with, from the secret's file.
    assert env_of(ingress)["ROUTER_CA_FILE"] == "/run/secrets/internal_ca_certificate/value"
    assert "tls_trusted_ca_certs {$ROUTER_CA_FILE}" in caddyfile
    assert ingress.inputs["command"] == ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
    # Certificates and the ACME account survive a new container, in a protected volume.
    assert ingress.inputs["volumes"][0]["containerPath"] == "/data"
    volume = run.named("docker:index/volume:Volume", "acme-data")
    assert volume.inputs["name"] == "icb-prod-acme-data" and volume.protect
    # Caddy sends no PROXY header: the router must not expect one.
    assert "accept-proxy" not in config_of(run, "router")


def test_acme_needs_a_public_domain(run_stack: RunStack) -> None:
    with pytest.raises(ConfigError, match=r"ichrisbirch:acmeEmail: needs a public ichrisbirch:domain .* 'localhost'"):
        run_stack("prod", acmeEmail="ops@example.org")
    with pytest.raises(ConfigError, match=r"ichrisbirch:acmeEmail: .*got 'not-an-email'"):
        run_stack("prod", domain="example.org", acmeEmail="not-an-email")


# --- provider and outputs ------------------------------------------------------------------------


def test_every_resource_uses_the_explicit_provider(run_stack: RunStack, stack: str) -> None:
    run = run_stack(stack)
    (provider,) = run.of_type(PROVIDER).values()
    assert provider.inputs["host"] == "unix:///var/run/docker.sock"
    for r in run.resources:
        if r.type.startswith("docker:"):
            assert r.provider.startswith(provider.urn), f"{r.type}::{r.name} does not use the stack's provider"


def test_remote_engine_over_ssh(run_stack: RunStack) -> None:
    run = run_stack(
        "prod",
        dockerHost="ssh://deploy@docker.example.com",
        dockerSshOpts='["-i", "/keys/deploy"]',
        bindAddress="0.0.0.0",
    )
    (provider,) = run.of_type(PROVIDER).values()
    assert provider.inputs["host"] == "ssh://deploy@docker.example.com"
    # A provider's structured inputs reach it JSON-encoded.
    assert json.loads(provider.inputs["sshOpts"]) == ["-i", "/keys/deploy"]
    # Prod is reached through its ingress, at the configured domain.
    assert run.outputs["api_url"] == "https://api.localhost"
    dev = run_stack("dev", dockerHost="ssh://deploy@docker.example.com", bindAddress="0.0.0.0")
    assert dev.outputs["api_url"] == "http://docker.example.com:8000"


def test_outputs(run_stack: RunStack, stack: str) -> None:
    run = run_stack(stack)
    port = PORTS[stack]
    if stack == "prod":
        assert run.outputs["api_url"] == "https://api.localhost"
        assert run.outputs["app_url"] == "https://localhost"
        assert run.outputs["ingress_ca_certificate"].startswith("-----BEGIN")
    elif stack == "test":  # behind its ingress too, on its own ports and names
        assert run.outputs["api_url"] == "https://api.test.ichrisbirch.internal:8444"
        assert run.outputs["app_url"] == "https://test.ichrisbirch.internal:8444"
    else:
        assert run.outputs["api_url"] == f"http://127.0.0.1:{port['api']}"
        assert run.outputs["app_url"] == f"http://127.0.0.1:{port['app']}"
    assert run.outputs["image_digest"] == containers(run)["api"].inputs["image"]
    assert run.outputs["containers"]["api"] == containers(run)["api"].inputs["name"]


OFFSITE = {"backupOffsiteEndpoint": "https://s3.eu-west-1.amazonaws.com", "backupOffsiteBucket": "icb-backups"}


def test_the_offsite_copy_reads_the_dumps_and_its_keys_and_nothing_else(run_stack: RunStack) -> None:
    run = run_stack("prod", backupSchedule="@daily", **OFFSITE)
    offsite = containers(run)["backup-offsite"]
    inputs = offsite.inputs
    assert run.named(REMOTE_IMAGE, "rclone-image").inputs["name"] == "rclone/rclone:1.75.2"
    assert inputs["image"].startswith("sha256:plan-") and inputs["image"] != containers(run)["backup"].inputs["image"]
    assert inputs["entrypoints"] == ["sh", "-c"], "the image's entrypoint is rclone itself"
    assert inputs["command"] == ['exec sh -c "$OFFSITE_SCRIPT" offsite loop']
    assert inputs["healthcheck"]["tests"] == ["CMD-SHELL", 'exec sh -c "$OFFSITE_SCRIPT" offsite check']
    env = env_of(offsite)
    assert env["OFFSITE_SCRIPT"] == (PROJECT_DIR / "infra" / "offsite.sh").read_text()
    assert env["OFFSITE_TARGET"] == "offsite:icb-backups/prod" and env["OFFSITE_GRACE_SECONDS"] == "8640"
    assert env["RCLONE_CONFIG_OFFSITE_ENDPOINT"] == OFFSITE["backupOffsiteEndpoint"]
    assert "RCLONE_CONFIG_OFFSITE_REGION" not in env, "no region given: the provider's default"
    # The keys as files only it mounts; the database's password is not among them.
    files = {v["containerPath"]: v for v in inputs["volumes"]}
    assert set(files) == {
        "/var/lib/postgresql/data",
        "/run/secrets/backup_offsite_access_key_id",
        "/run/secrets/backup_offsite_secret_access_key",
    }
    assert all(v["readOnly"] for v in files.values()), "the dumps and the keys are read-only to it"
    assert env["RCLONE_CONFIG_OFFSITE_SECRET_ACCESS_KEY_FILE"] == "/run/secrets/backup_offsite_secret_access_key/value"
    assert not any(value in json.dumps(inputs) for value in TEST_SECRETS.values())
    readers = {name for name, c in containers(run).items() for v in c.inputs.get("volumes") or []
               if v["volumeName"].startswith("icb-prod-secret-backup-offsite-")}  # fmt: skip
    assert readers == {"backup-offsite"}
    assert inputs["user"] == "999:999" and inputs["readOnly"] is True, "the dumps' owner, with a read-only root"
    assert "backup-offsite" not in containers(run_stack("prod")), "no endpoint, no copy"
    assert "rclone-image" not in run_stack("prod").of_type(REMOTE_IMAGE)


def test_the_offsite_keys_are_pulumi_secrets_in_an_environment(run_stack: RunStack) -> None:
    run = run_stack("dev", backups="true", backupOffsiteRegion="eu-west-1", **OFFSITE)
    offsite = containers(run)["backup-offsite"]
    assert is_secret(offsite.inputs["envs"])
    env = env_of(offsite)
    assert env["RCLONE_CONFIG_OFFSITE_ACCESS_KEY_ID"] == TEST_SECRETS["backupOffsiteAccessKeyId"]
    assert env["RCLONE_CONFIG_OFFSITE_SECRET_ACCESS_KEY"] == TEST_SECRETS["backupOffsiteSecretAccessKey"]
    assert env["OFFSITE_TARGET"] == "offsite:icb-backups/dev" and env["RCLONE_CONFIG_OFFSITE_REGION"] == "eu-west-1"
    assert "PGPASSWORD" not in env and "POSTGRES_PASSWORD" not in env


def test_the_replacement_key_changes_with_every_field_of_the_spec_and_nothing_else() -> None:
    """A create-first container's name suffix: equal inputs give an equal key; a change of any field
    of its spec, its image or a secret it reads gives another (its name must change when it does)."""
    config, secret_keys = committed_config("prod")
    settings = load_settings("prod", config, secret_keys)
    api = next(spec for spec in services(settings, PROJECT_DIR) if spec.name == "api")
    key = replacement_key(api, "img@sha256:1", {"A": "x"}, [])
    assert key == replacement_key(dataclasses.replace(api), "img@sha256:1", {"A": "x"}, [])
    assert len(key) == 8 and int(key, 16) >= 0
    assert replacement_key(api, "img@sha256:2", {"A": "x"}, []) != key
    assert replacement_key(api, "img@sha256:1", {"A": "y"}, []) != key
    changed: dict[str, Any] = {
        "command": ("other",), "env": {**api.env, "X": "1"}, "entrypoint": ("sh",), "ports": (Port(1, 2, "127.0.0.1"),),
        "health": HealthCheck(("CMD", "true")), "stop_grace_seconds": 99, "aliases": ("x",), "replicas": 3,
    }  # fmt: skip
    for name, value in changed.items():
        assert replacement_key(dataclasses.replace(api, **{name: value}), "img@sha256:1", {"A": "x"}, []) != key, name
