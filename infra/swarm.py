"""The same service specs as Swarm services, for `orchestrator: swarm` (prod on a multi-node swarm).

One pulumi-docker `Service` per spec, on an attachable overlay network. Each secret is a Swarm
secret with a generated name (a new value is a new secret: the services move to it, then the old
one is deleted), mounted as a file only the service's user can read; each rendered configuration is
a Swarm config. api, app and the router roll start-first, the scheduler and the data stores
stop-first; a task that fails its health check within the monitor window rolls the service back,
and `up` waits for the swarm to converge (`waitTimeoutSeconds`). Every service uses DNS round robin
(`dnsrr`): the proxies balance over the task addresses themselves, and kernels without IPVS work.
"""

from __future__ import annotations

import base64
import dataclasses
import re
import shlex
from pathlib import Path
from typing import Any

import pulumi
import pulumi_docker as docker

from infra import canonical
from infra.identity import Identity
from infra.settings import StackSettings
from infra.shared import (
    LOG_OPTIONS,
    PROGRAM_VALUES,
    SECRETS_DIR,
    InternalTls,
    StackComponent,
    app_image,
    docker_provider,
    one_per_name,
)
from infra.spec import DATA_NODE, MANAGER_NODE, HealthCheck, SecretName, ServiceSpec, secrets_as_files

UPDATE_MONITOR_SECONDS = 20  # a task failing its health check this long after it starts is a failed update
# Deleting a service (`pulumi destroy`) waits for each of its containers to be removed for at most
# its stop grace period (the provider's deleteService), else the delete fails. A container goes only
# after its process stopped and its node got to it, which once took an api (its own stop: 25 s at
# most) past 25 s in CI. So the grace is the process's own stop and this much more; the process
# still stops as soon as its own graceful shutdown ends.
REMOVAL_ALLOWANCE_SECONDS = 20
ROOT = ("0", "0")


def secret_file(name: SecretName) -> str:
    """Where a task finds a secret: the Swarm secret's own file."""
    return f"{SECRETS_DIR}/{name}"


def _owner(spec: ServiceSpec) -> tuple[str, str]:
    """uid and gid that own the service's secret and config files (the process's own user)."""
    if not spec.hardening.user:
        return ROOT
    uid, _, gid = spec.hardening.user.partition(":")
    return uid, gid or uid


def _size_bytes(options: str) -> int | None:
    match = re.search(r"size=(\d+)([kmg]?)", options)
    if not match:
        return None
    return int(match.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[match.group(2)]


def _rollout(order: str, failure_action: str) -> dict[str, Any]:
    return {
        "parallelism": 1,
        "delay": canonical.short_seconds(0),
        "order": order,
        "failure_action": failure_action,
        "monitor": canonical.short_seconds(UPDATE_MONITOR_SECONDS),
        "max_failure_ratio": "0.0",
    }


def _base64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _healthcheck(health: HealthCheck) -> docker.ServiceTaskSpecContainerSpecHealthcheckArgs:
    return docker.ServiceTaskSpecContainerSpecHealthcheckArgs(
        tests=list(health.test),
        interval=canonical.short_seconds(health.interval_seconds),
        timeout=canonical.short_seconds(health.timeout_seconds),
        retries=health.retries,
        start_period=canonical.short_seconds(health.start_period_seconds),
    )


class SwarmDeployment(StackComponent):
    """One environment of ichrisbirch as Swarm services on the swarm that `dockerHost` manages."""

    services: dict[str, docker.Service]

    def __init__(
        self,
        name: str,
        settings: StackSettings,
        identity: Identity,
        project_dir: Path,
        specs: list[ServiceSpec],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        assert settings.orchestrator == "swarm" and secrets_as_files(settings), "validated: swarm runs prod"
        specs = migrate_before_serving(specs)
        super().__init__("ichrisbirch:index:SwarmDeployment", name, settings, identity, specs, opts)
        child = self.child

        self.network = docker.Network(
            "network",
            name=identity.network,
            driver="overlay",
            # Attachable: one-off containers (a migration by hand, a debugging shell) can join it.
            attachable=True,
            options={"encrypted": "true"} if settings.overlay_encrypted else None,
            labels=self.network_labels(),
            opts=one_per_name(child),
        )

        # A named volume lives on one node: each is declared on the engine of the node its services
        # are placed on, the data node's (Postgres, Redis, backups) or the manager's (the ingress).
        assert settings.data_node_host, "validated: dataNodeHost is required on swarm"
        self.data_provider = docker_provider(settings, self, name="docker-data-node", host=settings.data_node_host)
        on_node = {DATA_NODE: pulumi.ResourceOptions(parent=self, provider=self.data_provider), MANAGER_NODE: child}
        self.volumes: dict[str, docker.Volume] = {}
        for spec in specs:
            for short in (m.volume for m in spec.mounts if m.volume and m.volume not in self.volumes):
                node = next((constraint for constraint in spec.placement if constraint in on_node), None)
                assert node, f"{spec.name} mounts volume {short} but is not placed on the data node or the manager"
                self.volumes[short] = self.volume(short, on_node[node])

        # Every node pulls the same bytes: the application image by the digest its push returned,
        # the others by the digest the manager resolved.
        self.image = app_image(settings, identity, "production", child, by="repo_digest")
        pulled = {spec.image for spec in specs} - {"app"}
        image_refs = {"app": self.image.reference, **self.pulled_images(pulled, by="repo_digest")}

        self.tls = InternalTls(
            "ingress-tls", identity.stack, settings.hosts.all(), opts=pulumi.ResourceOptions(parent=self)
        )
        used = sorted({name for spec in specs for name in spec.secret_env.values()})
        self.secrets = {name: self._secret(name, child) for name in used}

        self.services = {}
        for spec in specs:
            self.services[spec.name] = self._service(spec, image_refs[spec.image], child)
        self.register(self.network, self.image, "services", self.services)

    def _secret_value(self, name: SecretName) -> pulumi.Output[str]:
        if name in PROGRAM_VALUES:
            return self.tls.value(name)
        return pulumi.Output.secret(self.settings.secret(name))

    def _secret(self, name: SecretName, child: pulumi.ResourceOptions) -> docker.Secret:
        # No `name`: Pulumi generates one (<resource name>-<random>), so a new value creates a new
        # secret beside the old one, the services move to it, and only then is the old one deleted.
        # Settings secrets and the private key are secret Outputs already; `data` is secret in the schema.
        data = self._secret_value(name).apply(_base64)
        return docker.Secret(
            self.identity.secret(name),
            data=data,
            labels=[
                docker.SecretLabelArgs(label=k, value=v)
                for k, v in self._labels(self.identity.secret_component(name)).items()
            ],
            opts=child,
        )

    def _config(self, spec: ServiceSpec, path: str, text: str, child: pulumi.ResourceOptions) -> docker.ServiceConfig:
        # Configs are immutable, like secrets: a generated name, so a change rolls the service over.
        return docker.ServiceConfig(self.identity.config(spec.name, path), data=_base64(text), opts=child)

    def _service(self, spec: ServiceSpec, image: pulumi.Output[str], child: pulumi.ResourceOptions) -> docker.Service:
        uid, gid = _owner(spec)
        hard = spec.hardening
        # A secret reaches the process as a file, named by <VAR>_FILE; never in the environment.
        env = {**spec.env, **{f"{var}_FILE": secret_file(name) for var, name in spec.secret_env.items()}}
        secrets = [
            docker.ServiceTaskSpecContainerSpecSecretArgs(
                secret_id=self.secrets[name].id,
                secret_name=self.secrets[name].name,
                file_name=secret_file(name),
                file_uid=uid,
                file_gid=gid,
                file_mode=0o400,
            )
            for name in sorted(set(spec.secret_env.values()))
        ]
        configs = []
        for path, text in sorted(spec.config_files.items()):
            config = self._config(spec, path, text, child)
            configs.append(
                docker.ServiceTaskSpecContainerSpecConfigArgs(
                    config_id=config.id,
                    config_name=config.name,
                    file_name=path,
                    file_uid=uid,
                    file_gid=gid,
                    file_mode=0o440,
                )
            )
        mounts = [
            docker.ServiceTaskSpecContainerSpecMountArgs(
                target=m.target,
                type="volume",
                source=self.volumes[m.volume].name,
                read_only=m.read_only,
            )
            for m in spec.mounts
            if m.volume
        ] + [
            docker.ServiceTaskSpecContainerSpecMountArgs(
                target=path,
                type="tmpfs",
                # Permission bits only: the provider's Read writes the mode back as `Mode.Perm()`
                # (kreuzwerker resource_docker_service_structures.go), so 0o1777 would show as a
                # change on every `up`. Each service runs as one user: the sticky bit guards nothing.
                tmpfs_options=docker.ServiceTaskSpecContainerSpecMountTmpfsOptionsArgs(
                    size_bytes=_size_bytes(options), mode=0o777
                ),
            )
            for path, options in sorted(spec.tmpfs.items())
        ]
        order = "start-first" if spec.create_first else "stop-first"
        memory = spec.limits.memory_mb * 1024 * 1024
        nano_cpus = int(spec.limits.cpus * 10**9)
        return docker.Service(
            spec.name,
            name=self.identity.container(spec.name),
            labels=[docker.ServiceLabelArgs(label=k, value=v) for k, v in sorted(self._labels(spec.name).items())],
            task_spec=docker.ServiceTaskSpecArgs(
                container_spec=docker.ServiceTaskSpecContainerSpecArgs(
                    image=image,
                    commands=list(spec.entrypoint) or None,  # the Engine API's ContainerSpec.Command
                    args=list(spec.command),
                    env=env,
                    user=hard.user,
                    read_only=hard.read_only_root or None,
                    cap_drops=["ALL"] if hard.drop_all_capabilities else None,
                    init=spec.image == "app",
                    healthcheck=_healthcheck(spec.health) if spec.health else None,
                    stop_grace_period=canonical.short_seconds(spec.stop_grace_seconds + REMOVAL_ALLOWANCE_SECONDS),
                    secrets=secrets or None,
                    configs=configs or None,
                    mounts=mounts or None,
                ),
                resources=docker.ServiceTaskSpecResourcesArgs(
                    limits=docker.ServiceTaskSpecResourcesLimitsArgs(memory_bytes=memory, nano_cpus=nano_cpus),
                    # What the scheduler sets aside per task: a node without it gets no task.
                    reservation=docker.ServiceTaskSpecResourcesReservationArgs(
                        memory_bytes=memory // 4, nano_cpus=nano_cpus // 10
                    ),
                ),
                restart_policy=docker.ServiceTaskSpecRestartPolicyArgs(
                    condition="any", delay=canonical.short_seconds(5), window=canonical.short_seconds(60)
                ),
                placement=docker.ServiceTaskSpecPlacementArgs(constraints=list(spec.placement))
                if spec.placement
                else None,
                networks_advanceds=[
                    # By id: the provider reads back the id, and a name would replace the service every run.
                    docker.ServiceTaskSpecNetworksAdvancedArgs(id=self.network.id, aliases=[spec.name, *spec.aliases])
                ],
                log_driver=docker.ServiceTaskSpecLogDriverArgs(name="json-file", options=LOG_OPTIONS),
            ),
            mode=docker.ServiceModeArgs(replicated=docker.ServiceModeReplicatedArgs(replicas=spec.replicas)),
            # One task at a time; a task unhealthy within the monitor window rolls the update back,
            # and a rollback that fails too pauses, for a person to look.
            update_config=docker.ServiceUpdateConfigArgs(**_rollout(order, failure_action="rollback")),
            rollback_config=docker.ServiceRollbackConfigArgs(**_rollout(order, failure_action="pause")),
            endpoint_spec=docker.ServiceEndpointSpecArgs(
                mode="dnsrr",
                ports=[
                    docker.ServiceEndpointSpecPortArgs(
                        target_port=p.internal, published_port=p.external, publish_mode="host", protocol="tcp"
                    )
                    for p in spec.ports
                ]
                or None,
            ),
            # `up` waits until every task runs (healthy, where checked), and fails naming the service.
            converge_config=docker.ServiceConvergeConfigArgs(
                delay=canonical.short_seconds(7), timeout=canonical.short_seconds(self.settings.wait_timeout_seconds)
            ),
            opts=pulumi.ResourceOptions.merge(
                child,
                pulumi.ResourceOptions(
                    depends_on=[self.services[d] for d in spec.depends_on],
                    # The Docker client's create asks the registry for the image's platforms and
                    # writes them into the placement; Read records them, and without this the next
                    # `up` would roll every service over to take them out again.
                    ignore_changes=["taskSpec.placement.platforms"],
                ),
            ),
        )


def migrate_before_serving(specs: list[ServiceSpec]) -> list[ServiceSpec]:
    """On swarm: no one-shot task that a deployment can wait for, so each api task runs the
    migrations before it serves (under the migrations' advisory lock: the first does the work, the
    others find nothing to do). The scheduler runs alone: stopped before its replacement starts."""
    by_name = {spec.name: spec for spec in specs}
    migrate = by_name.pop("migrate", None)
    if migrate is not None:
        api = by_name["api"]
        by_name["api"] = dataclasses.replace(
            api,
            command=("sh", "-c", f"{shlex.join(migrate.command)} && exec {shlex.join(api.command)}"),
            depends_on=tuple(d for d in api.depends_on if d != "migrate"),
        )
        for name, spec in by_name.items():
            if name != "api" and "migrate" in spec.depends_on:  # a converged api has migrated
                by_name[name] = dataclasses.replace(
                    spec, depends_on=tuple(dict.fromkeys("api" if d == "migrate" else d for d in spec.depends_on))
                )
    if "scheduler" in by_name:
        by_name["scheduler"] = dataclasses.replace(by_name["scheduler"], create_first=False)
    return [by_name[spec.name] for spec in specs if spec.name in by_name]
