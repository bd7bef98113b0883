"""Container (kreuzwerker resource_docker_container*.go): created, started, waited for, read back;
updated in place only through ContainerUpdate; stopped with its grace period and removed."""

from __future__ import annotations

import base64
import io
import tarfile
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import docker

from infra.canonical import cpus, go_duration, parse_go_duration
from proof import provider
from proof.provider import CONTAINER, CONTAINER_FIELDS, CONTAINER_UPDATE_API, NotModelled, reveal
from proof.provider.handlers.base import Docker, Handler, ProviderError, Resource, labels

MIB = 1024 * 1024
# What this stand-in applies to a container. CONTAINER_FIELDS lists what the provider knows; any
# other input fails the run by name rather than being ignored.
CONTAINER_APPLIED = frozenset(
    {
        "name", "image", "command", "entrypoints", "envs", "labels", "networksAdvanced", "ports", "volumes", "tmpfs",
        "healthcheck", "wait", "waitTimeout", "mustRun", "attach", "logs", "restart", "user", "readOnly",
        "capabilities", "securityOpts", "memory", "memorySwap", "cpus", "ulimits", "logDriver", "logOpts",
        "destroyGraceSeconds", "stopTimeout", "start", "removeVolumes", "networkMode", "init", "uploads",
    }
)  # fmt: skip


class ContainerHandler(Handler):
    types = (CONTAINER,)
    autonamed = True

    def check(self, type_token: str, inputs: dict[str, Any], engine: Docker) -> dict[str, Any]:
        unknown = sorted(set(inputs) - CONTAINER_APPLIED - provider.CONTAINER_OUTPUTS)
        if unknown:
            raise NotModelled(f"input(s) {', '.join(unknown)}")
        if (inputs.get("attach") or inputs.get("logs")) and inputs.get("mustRun", True) is not False:
            raise NotModelled("attach/logs with mustRun true (the next `up` would restart it)")
        return inputs

    def create(self, resource: Resource, inputs: dict[str, Any], engine: Docker) -> tuple[str, dict[str, Any]]:
        client = engine.client()
        client.inspect_image(inputs["image"])  # the provider pulls only what is missing; nothing can be pulled here
        config, host_config = self._config(inputs, engine)
        container_id = str(client.create_container(**config, host_config=host_config, use_config_proxy=False)["Id"])
        resource.id = container_id  # from here on the container is in state, even if a later step fails
        networks = inputs.get("networksAdvanced") or []
        if networks:
            try:
                client.disconnect_container_from_network(container_id, "bridge")
            except docker.errors.APIError as error:
                if "not connected" not in str(error):
                    raise
        for network in networks:
            client.connect_container_to_network(container_id, network["name"], aliases=network.get("aliases") or None)
        for upload in inputs.get("uploads") or []:
            # Copied to `/`, as the provider does: Docker refuses it for a read-only root filesystem.
            client.put_archive(container_id, "/", upload_archive(upload))
        if inputs.get("start", True):
            client.start(container_id)
        state = with_defaults(resource.inputs)  # secret-marked, as Pulumi keeps secret inputs in state
        if inputs.get("start", True) and inputs.get("wait"):
            try:
                self._wait_healthy(container_id, inputs, engine)
            except ProviderError as error:
                resource.state = state  # a failed `wait` returns before the provider's Read: the planned inputs
                resource.init_error = str(error)
                raise
        logs = None
        if inputs.get("attach"):
            client.wait(container_id, timeout=600)
            if inputs.get("logs"):
                logs = client.logs(container_id).decode(errors="replace")
        state = self._read(container_id, state, engine)
        if logs is not None:
            state["containerLogs"] = logs
        return container_id, state

    @staticmethod
    def _config(inputs: dict[str, Any], engine: Docker) -> tuple[dict[str, Any], dict[str, Any]]:
        """ContainerCreate's config and host config, built as resource_docker_container_funcs.go does."""
        client = engine.client()
        ports = inputs.get("ports") or []
        binds = []
        for volume in inputs.get("volumes") or []:
            unknown = sorted(set(volume) - {"containerPath", "volumeName", "hostPath", "readOnly"})
            if unknown:
                raise NotModelled(f"volume input(s) {', '.join(unknown)}")
            source = volume.get("hostPath") or volume.get("volumeName")  # host_path wins, as in the provider
            if not source:
                raise NotModelled("an anonymous volume")
            binds.append(f"{source}:{volume['containerPath']}:{'ro' if volume.get('readOnly') else 'rw'}")
        capabilities = inputs.get("capabilities") or {}
        check = inputs.get("healthcheck")
        healthcheck = None
        if check:
            block = {**CONTAINER_FIELDS["healthcheck"].nested_defaults, **check}
            healthcheck = {
                "Test": block["tests"],
                "Interval": parse_go_duration(block["interval"]),
                "Timeout": parse_go_duration(block["timeout"]),
                "StartPeriod": parse_go_duration(block["startPeriod"]),
                "Retries": int(block["retries"]),
            }
            if parse_go_duration(block["startInterval"]):
                raise NotModelled("healthcheck.startInterval (Docker 20.10 has none)")
        memory = int(inputs.get("memory") or 0)
        host_config = client.create_host_config(
            port_bindings={
                f"{int(p['internal'])}/{p.get('protocol', 'tcp')}": [(p.get("ip", "0.0.0.0"), int(p["external"]))]
                for p in ports
            },
            binds=binds or None,
            tmpfs=inputs.get("tmpfs") or None,
            restart_policy={"Name": inputs.get("restart", "no"), "MaximumRetryCount": 0},
            read_only=bool(inputs.get("readOnly")),
            cap_add=capabilities.get("adds"),
            cap_drop=capabilities.get("drops"),
            security_opt=inputs.get("securityOpts"),
            mem_limit=memory * MIB if memory else None,
            memswap_limit=swap_bytes(inputs.get("memorySwap")),
            nano_cpus=int(float(inputs["cpus"]) * 1e9) if inputs.get("cpus") else None,
            ulimits=[
                docker.types.Ulimit(name=u["name"], soft=int(u["soft"]), hard=int(u["hard"]))
                for u in inputs.get("ulimits") or []
            ]
            or None,
            log_config=docker.types.LogConfig(
                type=inputs.get("logDriver", "json-file"), config=inputs.get("logOpts") or {}
            ),
            network_mode=inputs.get("networkMode", "bridge"),
            init=bool(inputs.get("init", False)),  # Create sends Init=false when unset
        )
        config = {
            "image": inputs["image"],
            "name": inputs["name"],
            "command": inputs.get("command"),
            "entrypoint": inputs.get("entrypoints") or None,
            "environment": inputs.get("envs") or [],
            "labels": labels(inputs.get("labels", [])),
            "user": inputs.get("user") or "",
            "healthcheck": healthcheck,
            "ports": [(int(p["internal"]), p.get("protocol", "tcp")) for p in ports],
            "stop_timeout": inputs.get("stopTimeout"),
        }
        return config, host_config

    @staticmethod
    def _wait_healthy(container_id: str, inputs: dict[str, Any], engine: Docker) -> None:
        """Create's wait (resource_docker_container_funcs.go): inspect every second until healthy or timeout."""
        client = engine.client()
        timeout = float(inputs.get("waitTimeout", 60))
        deadline = time.monotonic() + timeout
        while True:
            info = client.inspect_container(container_id)
            health = info["State"].get("Health")
            if health is None:
                raise ProviderError(f"container {inputs['name']} has no healthcheck to wait for")
            if health["Status"] == "healthy":
                return
            if time.monotonic() > deadline:
                probes = health.get("Log") or []
                last = probes[-1]["Output"].strip() if probes else "no probe ran"
                logs = client.logs(container_id, tail=40).decode(errors="replace")
                raise ProviderError(
                    f"container {inputs['name']} failed to be in healthy state within {timeout:.0f}s "
                    f"(status {info['State']['Status']}, last probe: {last}):\n{logs}"
                )
            time.sleep(1)

    def read_now(self, resource: Resource, engine: Docker) -> dict[str, Any]:
        return self._read(resource.id, resource.state, engine)

    @staticmethod
    def _read(container_id: str, prior: dict[str, Any], engine: Docker) -> dict[str, Any]:
        """resource_docker_container_funcs.go:750-981: what Read writes into state from `docker inspect`."""
        info = engine.client().inspect_container(container_id)
        config, host, state = info["Config"], info["HostConfig"], dict(prior)
        running = info["State"]["Running"]
        if (running or state.get("mustRun", True)) and state.get("ports"):
            state["ports"] = flatten_ports((info.get("NetworkSettings") or {}).get("Ports") or {})
        if not running:
            state["exitCode"] = info["State"]["ExitCode"]
            if state.get("mustRun", True):
                state["mustRun"] = False
        image = str(state.get("image", ""))
        health = config.get("Healthcheck")
        state.update(
            name=info["Name"].lstrip("/"),
            rm=host["AutoRemove"],
            readOnly=host["ReadonlyRootfs"],
            image=info["Image"] if image.startswith("sha256:") else config["Image"],
            hostname=config["Hostname"],
            domainname=config["Domainname"],
            command=config.get("Cmd") or [],
            entrypoints=config.get("Entrypoint") or [],
            user=config.get("User") or "",
            dns=host.get("Dns") or [],
            dnsOpts=host.get("DnsOptions") or [],
            securityOpts=host.get("SecurityOpt") or [],
            dnsSearches=host.get("DnsSearch") or [],
            publishAllPorts=host["PublishAllPorts"],
            restart=host["RestartPolicy"]["Name"],
            maxRetryCount=host["RestartPolicy"]["MaximumRetryCount"],
            init=bool(host.get("Init")),
            workingDir=config.get("WorkingDir") or "",
            runtime=host.get("Runtime") or "",
            platform=info.get("Platform") or "",
            tmpfs=host.get("Tmpfs") or {},
            privileged=host["Privileged"],
            memory=host["Memory"] // MIB,
            memoryReservation=host["MemoryReservation"] // MIB
            if host["MemoryReservation"] > 0
            else host["MemoryReservation"],
            memorySwap=host["MemorySwap"] // MIB if host["MemorySwap"] > 0 else host["MemorySwap"],
            shmSize=host["ShmSize"] // MIB,
            cpuShares=host["CpuShares"],
            cpuSet=host.get("CpusetCpus") or "",
            logDriver=host["LogConfig"]["Type"],
            storageOpts=host.get("StorageOpt") or {},
            networkMode=host["NetworkMode"],
            usernsMode=host.get("UsernsMode") or "",
            sysctls=host.get("Sysctls") or {},
            ipcMode=host.get("IpcMode") or "",
            groupAdds=host.get("GroupAdd") or [],
            tty=config["Tty"],
            stdinOpen=config["OpenStdin"],
            stopSignal=config.get("StopSignal") or "",
            stopTimeout=config.get("StopTimeout") or 0,
        )
        if host.get("CapAdd") or host.get("CapDrop"):
            state["capabilities"] = {"adds": host.get("CapAdd") or [], "drops": host.get("CapDrop") or []}
        if host.get("NanoCpus"):
            state["cpus"] = cpus(str(Decimal(host["NanoCpus"]) / 10**9))
        if prior.get("logOpts"):
            state["logOpts"] = host["LogConfig"].get("Config") or {}
        if prior.get("ulimits"):
            state["ulimits"] = [
                {"name": u["Name"], "soft": u["Soft"], "hard": u["Hard"]} for u in host.get("Ulimits") or []
            ]
        if health:
            state["healthcheck"] = {
                "tests": health.get("Test") or [],
                "interval": go_duration(health.get("Interval", 0)),
                "timeout": go_duration(health.get("Timeout", 0)),
                "startPeriod": go_duration(health.get("StartPeriod", 0)),
                "startInterval": go_duration(health.get("StartInterval", 0)),
                "retries": health.get("Retries", 0),
            }
        if host.get("Mounts"):
            raise NotModelled("mounts read back from the engine")
        return state

    def update(
        self, old: Resource, inputs: dict[str, Any], diff: provider.Diff, engine: Docker
    ) -> tuple[str, dict[str, Any], str]:
        note = self._update(old, reveal(inputs), diff, engine)
        # Container Update ends without Read: the state becomes the inputs.
        return old.id, {**old.state, **with_defaults(inputs)}, note

    @staticmethod
    def _update(old: Resource, inputs: dict[str, Any], diff: provider.Diff, engine: Docker) -> str:
        """resource_docker_container_funcs.go:991-1077: start if mustRun turned true, one ContainerUpdate."""
        client = engine.client()
        notes = []
        if "mustRun" in diff.changed and inputs.get("mustRun", True) and inputs.get("start", True):
            client.start(old.id)
            notes.append("started")
        if set(diff.changed) & CONTAINER_UPDATE_API:
            memory = int(inputs.get("memory") or 0)
            swap = swap_bytes(inputs.get("memorySwap"))
            client.update_container(
                old.id,
                cpu_shares=int(inputs.get("cpuShares") or 0) or None,
                mem_limit=memory * MIB if memory else None,
                mem_reservation=int(inputs.get("memoryReservation") or 0) * MIB or None,
                memswap_limit=swap if swap else None,  # sent only when non-zero
                cpuset_cpus=inputs.get("cpuSet") or None,
                restart_policy={"Name": inputs.get("restart", "no"), "MaximumRetryCount": 0},
            )
            notes.append("ContainerUpdate")
        state_only = [f for f in diff.changed if f not in CONTAINER_UPDATE_API and f != "mustRun"]
        if state_only:
            notes.append(f"state only, not applied to the running container: {', '.join(state_only)}")
        return "; ".join(notes)

    def delete(self, resource: Resource, inputs: dict[str, Any], engine: Docker) -> None:
        client = engine.client()
        try:
            if not inputs.get("attach"):
                # ContainerStop with destroy_grace_seconds (0 when unset: SIGKILL at once).
                client.stop(resource.id, timeout=int(inputs.get("destroyGraceSeconds") or 0))
            client.remove_container(resource.id, force=True, v=inputs.get("removeVolumes", True))
        except docker.errors.NotFound:
            pass


def upload_archive(upload: dict[str, Any]) -> bytes:
    """The provider's upload: a one-entry tar of `file`, mode `permissions` (octal), else 0744 when
    executable, else 0644; owned by uid and gid 0."""
    given = [key for key in ("content", "contentBase64", "source") if upload.get(key)]
    if len(given) != 1:
        raise ProviderError(f"upload {upload.get('file')}: exactly one of content, contentBase64, source")
    if given == ["source"]:
        raise NotModelled("an upload from a source file")
    data = upload["content"].encode() if given == ["content"] else base64.b64decode(upload["contentBase64"])
    info = tarfile.TarInfo(upload["file"])
    info.size = len(data)
    info.mode = (
        int(upload["permissions"], 8) if upload.get("permissions") else 0o744 if upload.get("executable") else 0o644
    )
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def flatten_ports(ports: Mapping[str, Any]) -> list[dict[str, Any]]:
    """resource_docker_container_structures.go:35-59: bindings sorted by internal port."""
    flat = []
    for key, bindings in ports.items():
        internal, _, protocol = key.partition("/")
        for binding in bindings or []:
            flat.append(
                {
                    "internal": int(internal),
                    "external": int(binding["HostPort"]),
                    "ip": binding["HostIp"],
                    "protocol": protocol,
                }
            )
    return sorted(flat, key=lambda p: (p["internal"], p["ip"]))


def swap_bytes(value: Any) -> int | None:
    if not value:
        return None
    return int(value) * MIB if int(value) > 0 else int(value)


def with_defaults(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The planned state: the inputs, with the schema's defaults for what they leave out."""
    defaults = {k: f.default for k, f in CONTAINER_FIELDS.items() if f.default is not None}
    return {**defaults, **inputs}
