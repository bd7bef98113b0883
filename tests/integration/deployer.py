"""A Pulumi `Mocks` that deploys for real: each resource the program registers becomes the real
Docker object, and the real outputs (ids, digests, exit codes, logs) flow back into the program.

This stands in for the Pulumi engine and the pulumi-docker provider in tests only (the CLI cannot
be installed here). It maps every input the program uses faithfully and fails the deployment,
naming the input, on anything it does not understand. Every object it creates carries the label
`ichrisbirch.deployer=itest`; `teardown()` removes exactly those, also after a failure.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
from docker.types import EndpointConfig, Healthcheck, LogConfig, Mount, Ulimit
from pulumi.runtime.mocks import MockCallArgs, MockResourceArgs, Mocks

from infra.simulate import PROJECT_DIR, SECRET_SIG, SECRET_VALUE_SIG

MARKER = ("ichrisbirch.deployer", "itest")
BUILDKIT_DOCKER = "/usr/bin/docker"


class DeploymentError(RuntimeError):
    pass


def reveal(value: Any) -> Any:
    """Unwrap Pulumi's secret markers: the engine hands providers plain values too."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == SECRET_VALUE_SIG:
            return reveal(value["value"])
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def nanoseconds(duration: str) -> int:
    """Go-style durations as the provider takes them: "3s", "500ms", "1m30s"."""
    units = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)", duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise DeploymentError(f"healthcheck duration {duration!r} is not understood")
    return int(sum(float(n) * units[u] for n, u in parts))


def _only(inputs: dict[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(set(inputs) - allowed)
    if unknown:
        raise DeploymentError(f"{what}: input(s) {', '.join(unknown)} not understood by the test deployer")


def _labels(pairs: list[dict[str, str]], what: str) -> dict[str, str]:
    for pair in pairs:
        _only(pair, {"label", "value"}, f"{what} label")
    return {pair["label"]: pair["value"] for pair in pairs} | {MARKER[0]: MARKER[1]}


@dataclass
class CreatedContainer:
    name: str
    id: str
    create_args: dict[str, Any]
    started_at: float
    healthy_at: float | None = None


@dataclass
class Deployment:
    """What one run created, in order, and when."""

    networks: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    containers: dict[str, CreatedContainer] = field(default_factory=dict)
    first_created_at: float | None = None
    build_seconds: float = 0.0


class DockerDeployer(Mocks):
    def __init__(self, base_url: str = "unix:///var/run/docker.sock") -> None:
        self.base_url = base_url
        self.deployment = Deployment()
        self._lock = threading.Lock()

    # --- Mocks --------------------------------------------------------------------------------

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        raise DeploymentError(f"provider function {args.token} is not supported by the test deployer")

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        if not args.custom:
            return "", {}  # a component (the program's Deployment): nothing to create
        inputs = reveal(args.inputs)
        handlers = {
            "pulumi:providers:docker": self._provider,
            "docker:index/network:Network": self._network,
            "docker:index/volume:Volume": self._volume,
            "docker:index/image:Image": self._image,
            "docker:index/remoteImage:RemoteImage": self._remote_image,
            "docker:index/container:Container": self._container,
        }
        if args.typ not in handlers:
            raise DeploymentError(f"resource type {args.typ} ({args.name}) is not supported by the test deployer")
        resource_id, outputs = handlers[args.typ](args.name, inputs)
        return resource_id, {**args.inputs, **outputs}

    def client(self) -> docker.APIClient:
        # One client per call: the SDK registers independent resources from several threads.
        return docker.APIClient(base_url=self.base_url, timeout=300)

    def _created(self) -> None:
        with self._lock:
            if self.deployment.first_created_at is None:
                self.deployment.first_created_at = time.monotonic()

    # --- resources ------------------------------------------------------------------------------

    def _provider(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        _only(inputs, {"host", "sshOpts", "version"}, f"provider {name}")
        host = inputs.get("host", "unix:///var/run/docker.sock")
        if not host.startswith("unix://"):
            raise DeploymentError(f"provider {name}: the test deployer only reaches a local engine, not {host}")
        self.base_url = host
        return "docker-provider", {}

    def _network(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        _only(inputs, {"name", "driver", "labels"}, f"network {name}")
        self._created()
        created = self.client().create_network(
            inputs["name"],
            driver=inputs.get("driver", "bridge"),
            labels=_labels(inputs.get("labels", []), name),
            check_duplicate=True,
        )
        self.deployment.networks.append(inputs["name"])
        return str(created["Id"]), {}

    def _volume(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        _only(inputs, {"name", "labels"}, f"volume {name}")
        client = self.client()
        if any(v["Name"] == inputs["name"] for v in client.volumes().get("Volumes") or []):
            raise DeploymentError(f"volume {inputs['name']} already exists; the test deployer does not adopt objects")
        self._created()
        client.create_volume(inputs["name"], labels=_labels(inputs.get("labels", []), name))
        self.deployment.volumes.append(inputs["name"])
        return inputs["name"], {"mountpoint": ""}

    def _image(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        _only(inputs, {"imageName", "build", "skipPush", "buildOnPreview", "registry"}, f"image {name}")
        if not inputs.get("skipPush", False):
            raise DeploymentError(f"image {name}: pushing to {inputs.get('registry')} is not possible in tests")
        build = inputs["build"]
        _only(build, {"context", "dockerfile", "target", "args", "builderVersion"}, f"image {name} build")
        if build.get("builderVersion") != "BuilderBuildKit":
            raise DeploymentError(f"image {name}: builderVersion {build.get('builderVersion')} is not BuildKit")
        # As the provider does: paths relative to the program's working directory (the project).
        context = PROJECT_DIR / build["context"]
        dockerfile = PROJECT_DIR / build["dockerfile"]
        command = [BUILDKIT_DOCKER, "build", "-f", str(dockerfile), "-t", inputs["imageName"]]
        if build.get("target"):
            command += ["--target", build["target"]]
        for key, value in sorted((build.get("args") or {}).items()):
            command += ["--build-arg", f"{key}={value}"]
        started = time.monotonic()
        result = subprocess.run(
            [*command, str(context)],
            capture_output=True,
            text=True,
            timeout=1200,
            env={"DOCKER_BUILDKIT": "1", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
        )
        self.deployment.build_seconds += time.monotonic() - started
        if result.returncode != 0:
            raise DeploymentError(f"image {name}: build failed:\n{result.stderr[-3000:]}")
        image_id = self.client().inspect_image(inputs["imageName"])["Id"]
        return image_id, {"repoDigest": image_id, "registryServer": "", "context": str(context)}

    def _remote_image(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        _only(inputs, {"name", "keepLocally"}, f"remote image {name}")
        try:
            image_id = self.client().inspect_image(inputs["name"])["Id"]
        except docker.errors.ImageNotFound:
            raise DeploymentError(
                f"remote image {name}: {inputs['name']} is not on the engine and nothing can be pulled here"
            ) from None
        return image_id, {"imageId": image_id, "repoDigest": image_id}

    CONTAINER_INPUTS = {
        "name",
        "image",
        "command",
        "envs",
        "labels",
        "networksAdvanced",
        "ports",
        "volumes",
        "tmpfs",
        "healthcheck",
        "wait",
        "waitTimeout",
        "mustRun",
        "attach",
        "logs",
        "restart",
        "user",
        "readOnly",
        "capabilities",
        "securityOpts",
        "memory",
        "cpus",
        "ulimits",
        "logDriver",
        "logOpts",
    }

    def _container(self, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        _only(inputs, self.CONTAINER_INPUTS, f"container {name}")
        create_args = self._container_args(name, inputs)
        self._created()
        container_id = self._create_and_start(create_args)
        created = CreatedContainer(inputs["name"], container_id, create_args, time.monotonic())
        self.deployment.containers[name] = created
        outputs: dict[str, Any] = {}
        if inputs.get("wait"):
            if not inputs.get("healthcheck"):
                raise DeploymentError(f"container {name}: wait needs a healthcheck")
            self.wait_healthy(inputs["name"], inputs.get("waitTimeout", 60))
            created.healthy_at = time.monotonic()
        if inputs.get("mustRun", True) is False and inputs.get("attach"):
            code = self.client().wait(container_id, timeout=600)["StatusCode"]
            outputs["exitCode"] = code
            if inputs.get("logs"):
                outputs["containerLogs"] = self.client().logs(container_id).decode(errors="replace")
        elif inputs.get("mustRun", True):
            state = self.client().inspect_container(container_id)["State"]
            if not state["Running"]:
                logs = self.client().logs(container_id, tail=30).decode(errors="replace")
                raise DeploymentError(f"container {name} is not running (exit {state['ExitCode']}):\n{logs}")
        return container_id, outputs

    def _container_args(self, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        client = self.client()
        networks = inputs.get("networksAdvanced") or []
        for network in networks:
            _only(network, {"name", "aliases"}, f"container {name} network")
        ports = inputs.get("ports") or []
        for port in ports:
            _only(port, {"internal", "external", "ip", "protocol"}, f"container {name} port")
            if port.get("protocol", "tcp") != "tcp":
                raise DeploymentError(f"container {name}: port protocol {port['protocol']} not understood")
        mounts = []
        for volume in inputs.get("volumes") or []:
            _only(volume, {"containerPath", "volumeName", "hostPath", "readOnly"}, f"container {name} volume")
            if volume.get("volumeName"):
                source, kind = volume["volumeName"], "volume"
            elif volume.get("hostPath"):
                source, kind = volume["hostPath"], "bind"
            else:
                raise DeploymentError(f"container {name}: a volume needs volumeName or hostPath")
            mounts.append(Mount(volume["containerPath"], source, type=kind, read_only=bool(volume.get("readOnly"))))
        capabilities = inputs.get("capabilities") or {}
        _only(capabilities, {"adds", "drops"}, f"container {name} capabilities")
        ulimits = []
        for ulimit in inputs.get("ulimits") or []:
            _only(ulimit, {"name", "soft", "hard"}, f"container {name} ulimit")
            ulimits.append(Ulimit(name=ulimit["name"], soft=int(ulimit["soft"]), hard=int(ulimit["hard"])))
        healthcheck = None
        if inputs.get("healthcheck"):
            check = inputs["healthcheck"]
            _only(check, {"tests", "interval", "timeout", "retries", "startPeriod"}, f"container {name} healthcheck")
            healthcheck = Healthcheck(
                test=check["tests"],
                interval=nanoseconds(check.get("interval", "0s")),
                timeout=nanoseconds(check.get("timeout", "0s")),
                retries=int(check.get("retries", 0)),
                start_period=nanoseconds(check.get("startPeriod", "0s")),
            )
        restart = inputs.get("restart", "no")
        host_config = client.create_host_config(
            port_bindings={int(p["internal"]): (p.get("ip", "0.0.0.0"), int(p["external"])) for p in ports},
            mounts=mounts,
            tmpfs=inputs.get("tmpfs") or None,
            restart_policy={"Name": restart},
            read_only=bool(inputs.get("readOnly")),
            cap_add=capabilities.get("adds"),
            cap_drop=capabilities.get("drops"),
            security_opt=inputs.get("securityOpts"),
            mem_limit=f"{int(inputs['memory'])}m" if inputs.get("memory") else None,
            nano_cpus=int(float(inputs["cpus"]) * 1e9) if inputs.get("cpus") else None,
            ulimits=ulimits or None,
            log_config=LogConfig(type=inputs.get("logDriver", "json-file"), config=inputs.get("logOpts") or {}),
            network_mode=networks[0]["name"] if networks else None,
        )
        networking = None
        if networks:
            networking = client.create_networking_config(
                {networks[0]["name"]: EndpointConfig(client._version, aliases=networks[0].get("aliases") or [])}
            )
        return {
            "image": inputs["image"],
            "name": inputs["name"],
            "command": inputs.get("command"),
            "environment": inputs.get("envs") or [],
            "labels": _labels(inputs.get("labels", []), name),
            "user": inputs.get("user") or "",
            "healthcheck": healthcheck,
            "ports": [int(p["internal"]) for p in ports],
            "host_config": host_config,
            "networking_config": networking,
            "extra_networks": [(n["name"], n.get("aliases") or []) for n in networks[1:]],
        }

    def _create_and_start(self, create_args: dict[str, Any]) -> str:
        client = self.client()
        args = dict(create_args)
        extra_networks = args.pop("extra_networks")
        container_id = str(client.create_container(**args, use_config_proxy=False)["Id"])
        for network, aliases in extra_networks:
            client.connect_container_to_network(container_id, network, aliases=aliases)
        client.start(container_id)
        return container_id

    # --- operations the tests use ------------------------------------------------------------

    def wait_healthy(self, container: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        client = self.client()
        restarts_before = client.inspect_container(container)["RestartCount"]
        while True:
            state = client.inspect_container(container)["State"]
            health = (state.get("Health") or {}).get("Status")
            if health == "healthy":
                return
            restarts = client.inspect_container(container)["RestartCount"]
            if state["Status"] == "exited" or restarts > restarts_before:
                logs = client.logs(container, tail=40).decode(errors="replace")
                raise DeploymentError(f"{container} exited with {state['ExitCode']} before it was healthy:\n{logs}")
            if time.monotonic() > deadline:
                probes = (state.get("Health") or {}).get("Log") or []
                last = probes[-1]["Output"].strip() if probes else "no probe ran"
                raise DeploymentError(f"{container} not healthy within {timeout}s (last probe: {last})")
            time.sleep(0.2)

    def recreate(self, resource_name: str) -> None:
        """Remove a container and create it again from the same inputs, as a replacement would."""
        created = self.deployment.containers[resource_name]
        self.client().remove_container(created.id, force=True)
        created.id = self._create_and_start(created.create_args)

    def time_to_healthy(self) -> float:
        healthy = [c.healthy_at for c in self.deployment.containers.values() if c.healthy_at is not None]
        assert self.deployment.first_created_at is not None and healthy
        return max(healthy) - self.deployment.first_created_at

    def time_from_first_container_to_healthy(self) -> float:
        """Seconds from the first container's start to the last one healthy (images already built)."""
        containers = self.deployment.containers.values()
        healthy = [c.healthy_at for c in containers if c.healthy_at is not None]
        return max(healthy) - min(c.started_at for c in containers)

    def teardown(self) -> list[str]:
        """Remove everything this deployer created (and only that); return what was removed."""
        client = self.client()
        removed = []
        label = f"{MARKER[0]}={MARKER[1]}"
        for container in client.containers(all=True, filters={"label": label}):
            client.remove_container(container["Id"], force=True, v=True)
            removed.append(container["Names"][0].lstrip("/"))
        for volume in client.volumes(filters={"label": label}).get("Volumes") or []:
            client.remove_volume(volume["Name"], force=True)
            removed.append(volume["Name"])
        for network in client.networks(filters={"label": label}):
            client.remove_network(network["Id"])
            removed.append(network["Name"])
        return removed
