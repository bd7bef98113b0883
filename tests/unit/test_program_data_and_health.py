"""What each stack declares under Pulumi mocks: its network, ports and volumes, the health checks
and the order they gate, the backups, a failed migration."""

from __future__ import annotations

import pytest

from infra.identity import PROJECT_DIR
from proof.mocks import ProgramMocks
from proof.resources import NETWORK, VOLUME
from tests.conftest import RunStack
from tests.unit.registrations import (
    APP_SERVICES,
    LONG_RUNNING,
    PORTS,
    containers,
    data_volumes,
    env_of,
    short,
)

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
