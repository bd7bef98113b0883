"""A Service's spec both ways: the Engine API's ServiceSpec the provider sends for its inputs
(createServiceSpec), and the inputs its Read writes back from `docker service inspect`
(resource_docker_service_structures.go, the flatten* functions)."""

from __future__ import annotations

from typing import Any

from infra.canonical import parse_go_duration, short_duration
from proof.provider import NotModelled
from proof.provider.handlers.base import label_blocks, labels

_ns = parse_go_duration  # a Go duration in nanoseconds, as the Engine API takes it


def to_engine(inputs: dict[str, Any]) -> dict[str, Any]:
    """The Engine API's ServiceSpec for a pulumi-docker Service's inputs (what the provider sends)."""
    task, container = inputs["taskSpec"], inputs["taskSpec"]["containerSpec"]
    unknown = sorted(
        set(container)
        - {"image", "commands", "args", "env", "user", "readOnly", "capDrops", "init", "healthcheck", "stopGracePeriod",
           "secrets", "configs", "mounts"}
    )  # fmt: skip
    if unknown:
        raise NotModelled(f"service containerSpec input(s) {', '.join(unknown)}")

    def file_ref(entry: dict[str, Any]) -> dict[str, Any]:
        return {"Name": entry["fileName"], "UID": entry.get("fileUid", "0"), "GID": entry.get("fileGid", "0"),
                "Mode": entry.get("fileMode", 0o444)}  # fmt: skip

    spec_container: dict[str, Any] = {
        "Image": container["image"],
        "Args": container.get("args") or [],
        **({"Command": container["commands"]} if container.get("commands") else {}),
        "Env": [f"{k}={v}" for k, v in sorted((container.get("env") or {}).items())],
        "User": container.get("user", ""),
        "ReadOnly": bool(container.get("readOnly")),
        "Init": container.get("init"),
        "StopGracePeriod": _ns(container.get("stopGracePeriod", "0s")),
        "Secrets": [
            {"File": file_ref(e), "SecretID": e["secretId"], "SecretName": e["secretName"]}
            for e in container.get("secrets") or []
        ],
        "Configs": [
            {"File": file_ref(e), "ConfigID": e["configId"], "ConfigName": e["configName"]}
            for e in container.get("configs") or []
        ],
        "Mounts": [
            {
                "Target": m["target"],
                "Type": m["type"],
                "Source": m.get("source", ""),
                "ReadOnly": bool(m.get("readOnly")),
            }
            | (
                {
                    "TmpfsOptions": {
                        "SizeBytes": m["tmpfsOptions"].get("sizeBytes"),
                        "Mode": m["tmpfsOptions"].get("mode"),
                    }
                }
                if m.get("tmpfsOptions")
                else {}
            )
            for m in container.get("mounts") or []
        ],  # fmt: skip
    }
    if container.get("capDrops"):
        spec_container["CapabilityDrop"] = container["capDrops"]
    if container.get("healthcheck"):
        check = container["healthcheck"]
        spec_container["Healthcheck"] = {
            "Test": check["tests"],
            "Interval": _ns(check.get("interval", "0s")),
            "Timeout": _ns(check.get("timeout", "0s")),
            "Retries": check.get("retries", 0),
            "StartPeriod": _ns(check.get("startPeriod", "0s")),
        }
    resources = task.get("resources") or {}
    limits, reservation = resources.get("limits") or {}, resources.get("reservation") or {}
    restart = task.get("restartPolicy") or {}
    log = task.get("logDriver") or {}

    def rollout(block: dict[str, Any] | None) -> dict[str, Any]:
        block = block or {}
        return {
            "Parallelism": block.get("parallelism", 1), "Delay": _ns(block.get("delay", "0s")),
            "FailureAction": block.get("failureAction", "pause"), "Monitor": _ns(block.get("monitor", "5s")),
            "MaxFailureRatio": float(block.get("maxFailureRatio", "0.0")), "Order": block.get("order", "stop-first"),
        }  # fmt: skip

    endpoint = inputs.get("endpointSpec") or {}
    return {
        "Name": inputs["name"],
        "Labels": labels(inputs.get("labels", [])),
        "TaskTemplate": {
            "ContainerSpec": spec_container,
            "Resources": {
                "Limits": {"NanoCPUs": limits.get("nanoCpus", 0), "MemoryBytes": limits.get("memoryBytes", 0)},
                "Reservations": {
                    "NanoCPUs": reservation.get("nanoCpus", 0),
                    "MemoryBytes": reservation.get("memoryBytes", 0),
                },
            },
            "RestartPolicy": {
                "Condition": restart.get("condition", "any"),
                "Delay": _ns(restart.get("delay", "5s")),
                "Window": _ns(restart.get("window", "0s")),
            },
            "Placement": {"Constraints": (task.get("placement") or {}).get("constraints") or []},
            "Networks": [
                {"Target": n["id"], "Aliases": n.get("aliases") or []} for n in task.get("networksAdvanceds") or []
            ],
            "LogDriver": {"Name": log.get("name", "json-file"), "Options": log.get("options") or {}},
        },  # fmt: skip
        "Mode": {"Replicated": {"Replicas": inputs["mode"]["replicated"]["replicas"]}},
        "UpdateConfig": rollout(inputs.get("updateConfig")),
        "RollbackConfig": rollout(inputs.get("rollbackConfig")),
        "EndpointSpec": {
            "Mode": endpoint.get("mode", "vip"),
            "Ports": [
                {
                    "Protocol": p.get("protocol", "tcp"),
                    "TargetPort": p["targetPort"],
                    "PublishedPort": p.get("publishedPort"),
                    "PublishMode": p.get("publishMode", "ingress"),
                }
                for p in endpoint.get("ports") or []
            ],
        },  # fmt: skip
    }


def from_engine(service: dict[str, Any]) -> dict[str, Any]:
    """resourceDockerServiceReadRefreshFunc: the state Read writes from `docker service inspect`, in
    pulumi-docker's names. Sets (constraints, mounts, secrets, configs, networks) come back sorted."""
    spec = service["Spec"]
    task = spec.get("TaskTemplate") or {}
    state: dict[str, Any] = {
        "name": spec["Name"],
        "labels": label_blocks(spec.get("Labels")),
        "taskSpec": _task_spec(task),
        "mode": {"replicated": {"replicas": spec["Mode"]["Replicated"]["Replicas"]}, "global": False}
        if "Replicated" in spec.get("Mode", {})
        else {"global": True},
    }
    for key, block in (("updateConfig", spec.get("UpdateConfig")), ("rollbackConfig", spec.get("RollbackConfig"))):
        if block is not None:
            state[key] = {
                "parallelism": block.get("Parallelism", 0),
                "delay": short_duration(block.get("Delay", 0)),
                "failureAction": block.get("FailureAction", ""),
                "monitor": short_duration(block.get("Monitor", 0)),
                "maxFailureRatio": f"{float(block.get('MaxFailureRatio', 0)):.1f}",
                "order": block.get("Order", ""),
            }
    # The live endpoint when the daemon has one (its assigned published ports), else the spec's.
    live = service.get("Endpoint") or {}
    endpoint = live if (live.get("Spec") or {}).get("Mode") else None
    mode = (endpoint or {}).get("Spec", {}).get("Mode") or (spec.get("EndpointSpec") or {}).get("Mode", "")
    ports = (endpoint or {}).get("Ports") if endpoint else (spec.get("EndpointSpec") or {}).get("Ports")
    state["endpointSpec"] = {
        "mode": mode,
        "ports": [
            {
                "name": p.get("Name", ""),
                "protocol": p.get("Protocol", ""),
                "targetPort": p.get("TargetPort", 0),
                "publishedPort": p.get("PublishedPort", 0),
                "publishMode": p.get("PublishMode", ""),
            }
            for p in ports or []
        ],
    }
    return state


def _task_spec(task: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"forceUpdate": task.get("ForceUpdate", 0)}
    if task.get("ContainerSpec") is not None:
        out["containerSpec"] = _container_spec(task["ContainerSpec"])
    if task.get("Resources") is not None:
        resources = task["Resources"]
        out["resources"] = {
            "limits": {
                "nanoCpus": (resources.get("Limits") or {}).get("NanoCPUs", 0),
                "memoryBytes": (resources.get("Limits") or {}).get("MemoryBytes", 0),
            },
            "reservation": {
                "nanoCpus": (resources.get("Reservations") or {}).get("NanoCPUs", 0),
                "memoryBytes": (resources.get("Reservations") or {}).get("MemoryBytes", 0),
            },
        }
    if task.get("RestartPolicy") is not None:
        policy = task["RestartPolicy"]
        out["restartPolicy"] = {"condition": policy.get("Condition", "")}
        for key, field_name in (("Delay", "delay"), ("Window", "window")):
            if key in policy:
                out["restartPolicy"][field_name] = short_duration(policy[key])
        if "MaxAttempts" in policy:
            out["restartPolicy"]["maxAttempts"] = policy["MaxAttempts"]
    if task.get("Placement") is not None:
        placement = task["Placement"]
        out["placement"] = {"maxReplicas": placement.get("MaxReplicas", 0)}
        if placement.get("Constraints"):
            out["placement"]["constraints"] = sorted(placement["Constraints"])
        if placement.get("Platforms"):
            out["placement"]["platforms"] = sorted(
                ({"architecture": p.get("Architecture", ""), "os": p.get("OS", "")} for p in placement["Platforms"]),
                key=lambda p: (p["os"], p["architecture"]),
            )
    if task.get("Networks"):
        # Read writes only the id the daemon resolved (never a name), its aliases and driver options.
        out["networksAdvanceds"] = sorted(
            (
                {"id": n["Target"], "driverOpts": sorted(f"{k}={v}" for k, v in (n.get("DriverOpts") or {}).items())}
                | ({"aliases": sorted(n["Aliases"])} if n.get("Aliases") else {})
                for n in task["Networks"]
            ),
            key=lambda n: n["id"],
        )
    if task.get("LogDriver") is not None:
        out["logDriver"] = {"name": task["LogDriver"].get("Name", "")}
        if task["LogDriver"].get("Options"):
            out["logDriver"]["options"] = task["LogDriver"]["Options"]
    return out


def _container_spec(container: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    simple = (("Image", "image"), ("Command", "commands"), ("Args", "args"), ("User", "user"),
              ("CapabilityAdd", "capAdds"), ("CapabilityDrop", "capDrops"))  # fmt: skip
    for key, field_name in simple:
        if container.get(key):
            out[field_name] = container[key]
    if container.get("Env"):
        out["env"] = dict(entry.split("=", 1) for entry in container["Env"])
    if container.get("ReadOnly"):
        out["readOnly"] = True
    if container.get("Mounts"):
        out["mounts"] = sorted((_mount(m) for m in container["Mounts"]), key=lambda m: m["target"])
    if container.get("StopGracePeriod") is not None:
        out["stopGracePeriod"] = short_duration(container["StopGracePeriod"])
    if container.get("Healthcheck") is not None:
        check = container["Healthcheck"]
        out["healthcheck"] = {
            "interval": short_duration(check.get("Interval", 0)),
            "timeout": short_duration(check.get("Timeout", 0)),
            "startPeriod": short_duration(check.get("StartPeriod", 0)),
            "retries": check.get("Retries", 0),
        } | ({"tests": check["Test"]} if check.get("Test") else {})
    for kind, id_key, name_key in (("Secrets", "secretId", "secretName"), ("Configs", "configId", "configName")):
        if container.get(kind):
            out[kind.lower()] = sorted(
                (_file_reference(r, kind[:-1], id_key, name_key) for r in container[kind]),
                key=lambda r: r["fileName"],
            )
    if container.get("Init") is not None:
        out["init"] = container["Init"]
    return out


def _mount(mount: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "target": mount["Target"],
        "source": mount.get("Source", ""),
        "type": mount["Type"],
        "readOnly": bool(mount.get("ReadOnly")),
    }
    if mount.get("TmpfsOptions") is not None:
        # Mode.Perm(): only the permission bits come back (0o1777 reads as 0o777).
        out["tmpfsOptions"] = {
            "sizeBytes": mount["TmpfsOptions"].get("SizeBytes", 0),
            "mode": mount["TmpfsOptions"].get("Mode", 0) & 0o777,
        }
    if mount.get("VolumeOptions") is not None or mount.get("BindOptions") is not None:
        raise NotModelled("reading back volume or bind mount options")
    return out


def _file_reference(reference: dict[str, Any], kind: str, id_key: str, name_key: str) -> dict[str, Any]:
    out: dict[str, Any] = {id_key: reference[f"{kind}ID"]}
    if reference.get(f"{kind}Name"):
        out[name_key] = reference[f"{kind}Name"]
    if reference.get("File") is not None:
        file = reference["File"]
        out["fileName"] = file["Name"]
        if file.get("UID"):
            out["fileUid"] = file["UID"]
        if file.get("GID"):
            out["fileGid"] = file["GID"]
        out["fileMode"] = file.get("Mode", 0)
    return out
