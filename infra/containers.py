"""Service specs as pulumi-docker containers on one Docker engine (`orchestrator: containers`), beside
the Swarm renderer (`infra/swarm.py`); what both share is in `infra/shared.py`."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import pulumi
import pulumi_docker as docker

from infra import canonical
from infra.identity import Identity
from infra.profiles import PROFILES
from infra.releases import requested_release
from infra.services import app_directory
from infra.settings import StackSettings
from infra.shared import (
    LOG_OPTIONS,
    PROGRAM_VALUES,
    SECRETS_DIR,
    InternalTls,
    StackComponent,
    app_image,
    one_per_name,
)
from infra.spec import HealthCheck, ImageName, SecretName, ServiceSpec, secrets_as_files


def secret_file(name: SecretName) -> str:
    """Where a reader finds a secret: the file in the secret's own volume, mounted read-only at
    <SECRETS_DIR>/<name> (a volume mounts as a directory, not as one file)."""
    return f"{SECRETS_DIR}/{name}/value"


def _healthcheck(health: HealthCheck) -> docker.ContainerHealthcheckArgs:
    # Durations in the form the provider reads back ("1m30s", not "90s"): no diff on the next `up`.
    return docker.ContainerHealthcheckArgs(
        tests=list(health.test),
        interval=canonical.seconds(health.interval_seconds),
        timeout=canonical.seconds(health.timeout_seconds),
        retries=health.retries,
        start_period=canonical.seconds(health.start_period_seconds),
    )


def _exit_gate(service: str, exit_code: pulumi.Output[int], logs: pulumi.Output[str]) -> pulumi.Output[str]:
    """Resolves to "passed" when the one-shot `service` exited 0; fails the deployment otherwise."""

    def check(args: list[object]) -> str:
        code, output = args
        if code != 0:
            raise RuntimeError(
                f"{service} exited with code {code}; nothing that depends on it was started.\n{output or ''}"
            )
        return "passed"

    return pulumi.Output.all(exit_code, logs).apply(check)


# Fields that say how a rollout treats a container, not what it is: no part of its name.
ROLLOUT_ONLY = frozenset({"migrates"})


def replacement_key(spec: ServiceSpec, image_ref: str, secrets: Mapping[str, str], program_values: list[str]) -> str:
    """The suffix of a create-first container's name: 8 hex digits of a digest of everything it is
    rendered from, by name. Every field of its spec (a change to any replaces the container, so the
    name must change with it), the image it runs, the secret values and program-made values (TLS
    material) it reads, and the log options. A digest of high-entropy values: no secret."""
    rendered = {k: v for k, v in dataclasses.asdict(spec).items() if k not in ROLLOUT_ONLY}
    material = {
        "spec": rendered,
        "image": image_ref,
        "secrets": dict(sorted(secrets.items())),
        "program_values": program_values,
        "log_options": LOG_OPTIONS,
    }
    text = json.dumps(material, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _secret_key(name: SecretName) -> str:
    return f"ichrisbirch.secret.{name}"


def _config_key(component: str) -> str:
    return f"ichrisbirch.config.{component}"


@dataclasses.dataclass(frozen=True)
class FileHolder:
    """A file for containers to mount read-only: the volume it is in, mounted at `directory`, and
    the never-started container that put it there."""

    container: docker.Container
    volume: docker.Volume
    directory: str


class Deployment(StackComponent):
    """One environment of ichrisbirch on one Docker engine: image, network, volumes, containers."""

    containers: dict[str, docker.Container]

    def __init__(
        self,
        name: str,
        settings: StackSettings,
        identity: Identity,
        project_dir: Path,
        specs: list[ServiceSpec],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("ichrisbirch:index:Deployment", name, settings, identity, specs, opts)
        profile = PROFILES[settings.environment]
        self.app_dir = app_directory(settings, project_dir)
        child = self.child

        self.network = docker.Network(
            "network", name=identity.network, driver="bridge", labels=self.network_labels(), opts=one_per_name(child)
        )

        volume_names = sorted({m.volume for spec in specs for m in spec.mounts if m.volume})
        self.volumes = {short: self.volume(short, child) for short in volume_names}

        self.image = app_image(settings, identity, profile.image_target, child, by="image_id")
        # Containers run a pulled image by the engine's image id (secret holders run Postgres's).
        always: set[ImageName] = {"postgres", "redis"}
        pulled = (always | {spec.image for spec in specs}) - {"app"}
        image_refs = {"app": self.image.reference, **self.pulled_images(pulled, by="image_id")}

        self.tls: InternalTls | None = None
        if profile.ingress:
            self.tls = InternalTls(
                "ingress-tls", identity.stack, settings.hosts.all(), opts=pulumi.ResourceOptions(parent=self)
            )

        # What a container reads from files, each in a volume of its own filled by a holder: its
        # secrets (prod) and its configuration files, by the label key its readers carry.
        self.holders: dict[str, FileHolder] = {}
        holder_image = image_refs["postgres"]
        if secrets_as_files(settings):
            for secret in sorted({name for spec in specs for name in spec.secret_env.values()}):
                self._secret_file(secret, holder_image, child)
        for spec in specs:
            for path, text in sorted(spec.config_files.items()):
                self._config_file(spec.name, path, text, holder_image, child)

        self.containers = {}
        for spec in specs:
            self.containers[spec.name] = self._container(spec, image_refs[spec.image], child)
        self.register(self.network, self.image, "containers", self.containers)

    def _secret_file(self, name: SecretName, image: pulumi.Output[str], child: pulumi.ResourceOptions) -> None:
        """One secret as a file (`secret_file`), which only its readers mount; the value stays a
        Pulumi secret (the upload's content)."""
        value = self.tls.value(name) if name in PROGRAM_VALUES and self.tls else self.settings.secret(name)
        self._file_holder(
            _secret_key(name),
            self.identity.secret(name),
            self.identity.secret_component(name),
            secret_file(name),
            pulumi.Output.secret(value),
            image,
            child,
        )

    def _config_file(
        self, service: str, path: str, text: str, image: pulumi.Output[str], child: pulumi.ResourceOptions
    ) -> None:
        """A configuration file of `service`, at `path` in its container, mounted read-only: the
        counterpart of a Swarm config. The program renders it; it holds no secret."""
        component = self.identity.config_component(service, path)
        key = _config_key(component)
        # Whose file it is and where, for the policy pack, which checks what the proxies serve.
        labels = {"ichrisbirch.config-of": service, "ichrisbirch.file": path}
        self._file_holder(key, self.identity.config(service, path), component, path, text, image, child, labels)

    def _file_holder(
        self,
        key: str,
        name: str,
        component: str,
        path: str,
        content: str | pulumi.Output[str],
        image: pulumi.Output[str],
        child: pulumi.ResourceOptions,
        extra_labels: Mapping[str, str] | None = None,
    ) -> None:
        """A file at `path` in a volume of its own, mounted (read-only) at the file's directory by
        its readers only.

        The provider uploads files before a container starts, and only by copying to `/`, which
        Docker refuses for a read-only root filesystem. So a holder container that never starts,
        with a writable root, receives the upload into the volume; it runs nothing and has no
        network. New content makes a new holder (autonamed: created before the old one goes), whose
        name the readers carry in the label `key`, so exactly they are replaced and read it.
        """
        labels = {**self._labels(component), **(extra_labels or {})}
        volume = docker.Volume(
            component,
            name=name,
            labels=[docker.VolumeLabelArgs(label=k, value=v) for k, v in labels.items()],
            opts=one_per_name(child),
        )
        directory = str(PurePosixPath(path).parent)
        holder = docker.Container(
            component,  # autonamed by the project's pattern: icb-<stack>-<component>-<hex>
            image=image,
            command=["true"],
            start=False,
            must_run=False,
            network_mode="none",
            labels=[docker.ContainerLabelArgs(label=k, value=v) for k, v in labels.items()],
            volumes=[docker.ContainerVolumeArgs(container_path=directory, volume_name=volume.name)],
            # Root's, readable by the readers' own users (10001, 999, 99): only they mount it.
            uploads=[docker.ContainerUploadArgs(file=path, content=content, permissions="0444")],
            # It never runs: a new Postgres image must not make a new holder (and replace every reader).
            opts=pulumi.ResourceOptions.merge(
                child,
                pulumi.ResourceOptions(
                    delete_before_replace=False,
                    ignore_changes=["image"],
                    # Its earlier name, the carrier's full name: stacks deployed before keep their holders.
                    aliases=[pulumi.Alias(name=name)],
                ),
            ),
        )
        self.holders[key] = FileHolder(holder, volume, directory)

    def _file_keys(self, spec: ServiceSpec) -> list[str]:
        """The label keys of the files `spec` reads: its secrets, and its configuration files."""
        secrets = [_secret_key(name) for name in sorted(set(spec.secret_env.values()))]
        configs = [_config_key(self.identity.config_component(spec.name, path)) for path in sorted(spec.config_files)]
        return secrets + configs

    def _secret_values(self, spec: ServiceSpec) -> dict[str, str]:
        """The settings secrets `spec` reads, by variable."""
        values = {}
        for var, secret_name in sorted(spec.secret_env.items()):
            if secret_name not in PROGRAM_VALUES:
                values[var] = self.settings.secret(secret_name)
        return values

    def _program_values(self, spec: ServiceSpec) -> dict[str, pulumi.Output[str]]:
        """What `spec` reads that the program itself makes (certificates), by variable."""
        values: dict[str, pulumi.Output[str]] = {}
        for var, name in sorted(spec.secret_env.items()):
            if name not in PROGRAM_VALUES:
                continue
            assert self.tls is not None, "a stack with an ingress has its certificates"
            values[var] = self.tls.value(name)
        return values

    def _secret_env(self, spec: ServiceSpec) -> list[pulumi.Output[str]]:
        if secrets_as_files(self.settings):  # where the file is: no secret in the environment
            return [pulumi.Output.from_input(f"{var}_FILE={secret_file(name)}")
                    for var, name in sorted(spec.secret_env.items())]  # fmt: skip
        entries = [pulumi.Output.secret(f"{var}={value}") for var, value in self._secret_values(spec).items()]
        for var, value in self._program_values(spec).items():
            entries.append(pulumi.Output.secret(pulumi.Output.concat(var, "=", value)))
        return entries

    def _container_name(self, spec: ServiceSpec, image: pulumi.Output[str]) -> str | pulumi.Output[str] | None:
        """A fixed name; for a create-first container, one that changes whenever it is replaced.

        The suffix hashes what replaces the container (its spec, its image, its secrets and
        certificates), so old and new can run side by side. It is no secret: a digest of
        high-entropy values. A create-first one-shot (migrate beside an ingress) is autonamed
        instead (None: `migrate-<random>`): `pulumi up --replace` runs it again, which a name
        that only its inputs decide would refuse (the new one's name is the old one's).
        """
        base = self.identity.container(spec.name)
        if not spec.create_first:
            return base
        if spec.one_shot:
            return None
        secrets = self._secret_values(spec)
        program_values = self._program_values(spec)

        def suffixed(values: list[str]) -> str:
            image_ref, *made = values
            return f"{base}-{replacement_key(spec, image_ref, secrets, made)}"

        return pulumi.Output.unsecret(pulumi.Output.all(image, *program_values.values()).apply(suffixed))

    def _side_by_side(self, spec: ServiceSpec, dependency: str) -> bool:
        """Whether `spec` starts beside `dependency` instead of after it: in a rollback, the services
        that run the release put back (api, app, scheduler). In a release their order stops a rollout
        before the later ones once an earlier one fails; the release put back ran here before, and each
        is still health-gated before the old one goes. Side by side, the rollback takes one health
        wait instead of one per service."""
        runs_the_release = [s.image == "app" and not s.one_shot for s in (spec, self.specs[dependency])]
        return all(runs_the_release) and requested_release() is not None

    def _container(
        self, spec: ServiceSpec, image: pulumi.Output[str], child: pulumi.ResourceOptions
    ) -> docker.Container:
        # The holders of the files it reads: a new one (new content) replaces this container.
        read = [key for key in self._file_keys(spec) if key in self.holders]
        waits_for = [name for name in spec.depends_on if not self._side_by_side(spec, name)]
        dependencies = [self.containers[name] for name in waits_for] + [self.holders[k].container for k in read]
        labels = self._labels(spec.name)
        label_args: list[docker.ContainerLabelArgs] = [
            docker.ContainerLabelArgs(label=k, value=v) for k, v in sorted(labels.items())
        ]
        label_args += [docker.ContainerLabelArgs(label=key, value=self.holders[key].container.name) for key in read]
        file_mounts = [
            docker.ContainerVolumeArgs(
                container_path=self.holders[key].directory, volume_name=self.holders[key].volume.name, read_only=True
            )
            for key in read
        ]
        # A one-shot dependency (migrate) must have exited 0: its exit code feeds a label, so a
        # failure stops this container from being created and the error shows the logs.
        for name in spec.depends_on:
            dep = self.containers[name]
            if self.specs[name].one_shot:
                gate = _exit_gate(name, dep.exit_code, dep.container_logs)
                label_args.append(docker.ContainerLabelArgs(label=f"ichrisbirch.after.{name}", value=gate))
            elif spec.one_shot:
                # A one-shot runs again whenever what it ran against is replaced: migrations against
                # a new (perhaps empty) database, the test suite against a new deployment.
                label_args.append(docker.ContainerLabelArgs(label=f"ichrisbirch.ran-against.{name}", value=dep.id))

        hard = spec.hardening
        health = spec.health
        # A rollback runs no migration: the schema is already at the newest release's head (expand
        # only), which the release put back runs against, and whose revision that release's own
        # migrations may not know. So migrate keeps its image, and the api need not wait for it.
        # The next plain `up` replaces it with the source's release, which runs it again.
        ignored = ["image"] if spec.migrates and requested_release() else None
        return docker.Container(
            spec.name,
            name=self._container_name(spec, image),
            image=image,
            entrypoints=list(spec.entrypoint) or None,
            command=list(spec.command),
            envs=[f"{k}={v}" for k, v in sorted(spec.env.items())] + self._secret_env(spec),
            labels=label_args,
            networks_advanced=[
                docker.ContainerNetworksAdvancedArgs(name=self.network.name, aliases=[spec.name, *spec.aliases])
            ],
            ports=[
                docker.ContainerPortArgs(internal=p.internal, external=p.external, ip=p.host_ip) for p in spec.ports
            ],
            volumes=[
                docker.ContainerVolumeArgs(
                    container_path=m.target,
                    volume_name=self.volumes[m.volume].name if m.volume else None,
                    host_path=m.host_path,
                    read_only=m.read_only,
                )
                for m in spec.mounts
            ]
            + file_mounts,
            tmpfs=spec.tmpfs or None,
            healthcheck=_healthcheck(health) if health else None,
            # Creation completes only once the container is healthy: dependants start after that.
            wait=health is not None,
            wait_timeout=self.settings.wait_timeout_seconds if health else None,
            # One-shot containers run to completion; their exit code and logs become outputs.
            must_run=not spec.one_shot,
            attach=spec.one_shot,
            logs=spec.one_shot,
            restart=spec.restart,
            # The application's Python processes as PID 1 would ignore SIGTERM without a handler of their
            # own (`flask run` has none): Docker's init forwards it, so they stop in time, and reaps zombies.
            init=spec.image == "app",
            user=hard.user,
            read_only=hard.read_only_root,
            capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"]) if hard.drop_all_capabilities else None,
            security_opts=["no-new-privileges:true"] if hard.no_new_privileges else None,
            memory=spec.limits.memory_mb,
            # No swap beyond the memory limit. Declared, because Docker records twice the memory
            # when it is left out, and the provider reads that back as a change on every `up`.
            memory_swap=spec.limits.memory_mb,
            # In the provider's read-back form ("1.0", "10."): any other spelling replaces every run.
            cpus=canonical.cpus(spec.limits.cpus),
            ulimits=[docker.ContainerUlimitArgs(name="nproc", soft=spec.limits.processes, hard=spec.limits.processes)]
            if spec.limits.processes
            else None,
            log_driver="json-file",
            log_opts=LOG_OPTIONS,
            # Time to shut down cleanly: when Docker stops it (stop_timeout) and when a deployment
            # deletes or replaces it (destroy_grace_seconds; the provider's default is 0, a SIGKILL).
            stop_timeout=spec.stop_grace_seconds,
            destroy_grace_seconds=spec.stop_grace_seconds,
            opts=pulumi.ResourceOptions.merge(
                child,
                pulumi.ResourceOptions(
                    depends_on=dependencies,
                    # Fixed names and host ports: the old container must go before its replacement starts.
                    # Create-first ones have names of their own and no host port: the new one first.
                    delete_before_replace=not spec.create_first,
                    # The provider records a changed health check or tmpfs in state and never applies it
                    # to the running container: a replacement is the only way it takes effect.
                    replace_on_changes=["healthcheck", "tmpfs"],
                    ignore_changes=ignored,
                ),
            ),
        )
