"""What each environment runs, as plain data: one `ServiceSpec` per container, no Pulumi calls.

`PROFILES` is the one place where dev, test and prod differ in kind; `services()` turns a stack's
settings (the application's contract among them) into the specs that `infra.containers` and
`infra.swarm` declare. Read a service's function to see its image, command, environment, ports,
volumes, health check and dependencies in one place. A spec never asks which orchestrator runs it:
it names its secrets and configuration files, and each renderer decides how they get there.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from infra.application import api, app, migrate, scheduler, tests
from infra.data_stores import backup, backup_offsite, postgres, redis
from infra.edge import ingress, router
from infra.profiles import PROFILES
from infra.settings import StackSettings
from infra.spec import ServiceSpec


def app_directory(s: StackSettings, project_dir: Path) -> Path:
    """The application folder (its Dockerfile inside): `appDirectory`, relative to the project."""
    return project_dir / s.app_directory


def services(s: StackSettings, project_dir: Path) -> list[ServiceSpec]:
    """Every container of the stack, in an order where each comes after what it depends on."""
    profile = PROFILES[s.environment]
    if profile.hot_reload and not s.engine_is_local:
        # The checkout is on this machine: an engine elsewhere cannot mount it, so there dev runs
        # the code its image was built with (and a later `up` builds again).
        profile = replace(profile, hot_reload=False)
    app_dir = app_directory(s, project_dir)
    specs = [postgres(s, profile), redis(s, profile)]
    if s.migration_command:
        specs.append(migrate(s, profile, app_dir))
    specs.append(api(s, profile, app_dir))
    if s.app_enabled:
        specs.append(app(s, profile, app_dir))
    if s.scheduler_enabled:
        specs.append(scheduler(s, profile, app_dir))
    if s.backups and profile.persistent_data:
        specs.append(backup(s, profile))
        if s.backup_offsite_endpoint:
            specs.append(backup_offsite(s, profile))
    if profile.ingress:
        specs.append(router(s, profile, [spec for spec in specs if spec.route is not None]))
        specs.append(ingress(s, profile))
    if profile.runs_test_suite and s.test_command:
        specs.append(tests(s, profile))
    for spec in specs:
        # Old and new run side by side during a create-first replacement: no host port, no fixed name.
        assert not (spec.create_first and spec.ports), f"{spec.name} is replaced create-first but publishes a port"
    return specs
