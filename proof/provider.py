"""What pulumi-docker 5.x does with a resource's inputs on the next `pulumi up`, as data and pure functions.

The Pulumi CLI and the provider cannot run on the machines this project is built on, so two
stand-ins need the provider's rules: the engine stand-in (`proof/engine/`), which
applies them to a real engine run after run, and `python -m proof.plan --diff`, which predicts from
two committed plans what an `up` would do. Both take the rules from here, so they cannot drift apart.

Sources (see ../shared/docs/provider-semantics.md for line references):
kreuzwerker/terraform-provider-docker v4.5.0 (Container, Network, Volume, RemoteImage), bridged by
pulumi-terraform-bridge, and pulumi-docker's own native `Image` (provider.go, image.go).

The bridge diffs the state of the last run against the new inputs under Terraform's plan rules:
- a ForceNew ("R") field that differs replaces the resource;
- an updatable ("U") field is changed in place through the engine's API;
- a state-only ("N") field is recorded and sent nowhere (a running container never sees it);
- an Optional+Computed field absent from the inputs never differs; an Optional field absent from
  the inputs but set in state differs as a removal; schema defaults fill absent inputs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from infra.canonical import cpus, go_duration, parse_go_duration
from proof.mocks import SECRET_SIG, SECRET_VALUE_SIG

CONTAINER = "docker:index/container:Container"
IMAGE = "docker:index/image:Image"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
SERVICE = "docker:index/service:Service"
SECRET = "docker:index/secret:Secret"
SERVICE_CONFIG = "docker:index/serviceConfig:ServiceConfig"
PROVIDER = "pulumi:providers:docker"

Change = Literal["R", "U", "N"]
Shape = Literal["scalar", "set", "list", "map", "block", "blocks", "set_of_blocks"]


class NotModelled(ValueError):
    """An input, or a change of one, whose effect the model does not know: never guessed, never skipped."""


@dataclass(frozen=True)
class Field:
    change: Change
    computed: bool = False  # Optional+Computed: absent from the inputs, it never differs
    default: Any = None  # the schema default an absent input takes (None: the type's zero value)
    shape: Shape = "scalar"
    nested_defaults: Mapping[str, Any] = field(default_factory=dict)  # defaults inside a block


_DURATION = "0s"

# Container: resource_docker_container.go:49-1188 (schema), with pulumi-docker's names.
CONTAINER_FIELDS: dict[str, Field] = {
    "name": Field("R", computed=True),
    "image": Field("R"),
    "command": Field("R", computed=True, shape="list"),
    "entrypoints": Field("R", computed=True, shape="list"),
    "hostname": Field("R", computed=True),
    "domainname": Field("R"),
    "user": Field("R"),  # DiffSuppressFunc: a new "" keeps the old value
    "workingDir": Field("R"),  # likewise
    "envs": Field("R", computed=True, shape="set"),
    "labels": Field("R", computed=True, shape="set_of_blocks"),
    "ports": Field("R", shape="blocks", nested_defaults={"ip": "0.0.0.0", "protocol": "tcp"}),
    "capabilities": Field("R", shape="block"),
    "volumes": Field(
        "R",
        shape="set_of_blocks",
        nested_defaults={"volumeName": "", "hostPath": "", "fromContainer": "", "readOnly": False},
    ),
    "networksAdvanced": Field("R", shape="set_of_blocks", nested_defaults={"aliases": []}),
    "hosts": Field("R", shape="set_of_blocks"),
    "ulimits": Field("R", shape="set_of_blocks"),
    "uploads": Field("R", shape="set_of_blocks"),
    "mounts": Field("R", shape="set_of_blocks"),
    "platform": Field("R", computed=True),
    "cpus": Field("R"),
    "logOpts": Field("R", shape="map"),
    "networkMode": Field("R", default="bridge"),
    "securityOpts": Field("R", computed=True, shape="set"),
    "runtime": Field("R", computed=True),
    "stopSignal": Field("R", computed=True),
    "stopTimeout": Field("R", computed=True),
    "logDriver": Field("R", computed=True),
    "ipcMode": Field("R", computed=True),
    "shmSize": Field("R", computed=True),
    "dns": Field("R", shape="set"),
    "dnsOpts": Field("R", shape="set"),
    "dnsSearches": Field("R", shape="set"),
    "publishAllPorts": Field("R", default=False),
    "privileged": Field("R", default=False),
    "readOnly": Field("R", default=False),
    "tty": Field("R", default=False),
    "stdinOpen": Field("R", default=False),
    "sysctls": Field("R", shape="map"),
    "groupAdds": Field("R", shape="set"),
    "storageOpts": Field("R", shape="map"),
    "usernsMode": Field("R"),
    "pidMode": Field("R"),
    "cgroupnsMode": Field("R"),
    "cgroupParent": Field("R"),
    "restart": Field("U", default="no"),
    "maxRetryCount": Field("U", default=0),
    "cpuShares": Field("U", default=0),
    "cpuSet": Field("U"),
    "memory": Field("U", default=0),
    "memoryReservation": Field("U", default=0),
    "memorySwap": Field("U", default=0),
    "healthcheck": Field(
        "N",
        computed=True,
        shape="block",
        nested_defaults={
            "interval": _DURATION,
            "timeout": _DURATION,
            "startPeriod": _DURATION,
            "startInterval": _DURATION,
            "retries": 0,
        },
    ),
    "tmpfs": Field("N", shape="map"),
    "init": Field("N", computed=True),
    "rm": Field("N", default=False),
    "cpuPeriod": Field("N"),
    "cpuQuota": Field("N"),
    "mustRun": Field("N", default=True),  # false -> true starts the container (Update)
    "start": Field("N", default=True),
    "attach": Field("N", default=False),
    "logs": Field("N", default=False),
    "wait": Field("N", default=False),
    "waitTimeout": Field("N", default=60),
    "removeVolumes": Field("N", default=True),
    "destroyGraceSeconds": Field("N", default=0),
    "containerReadRefreshTimeoutMilliseconds": Field("N", default=15000),
}
CONTAINER_OUTPUTS = frozenset({"exitCode", "containerLogs", "bridge", "networkDatas"})
# Fields whose engine-side value Container Update changes (resource_docker_container_funcs.go:991-1077).
CONTAINER_UPDATE_API = frozenset(
    {"restart", "maxRetryCount", "cpuShares", "cpuSet", "memory", "memoryReservation", "memorySwap"}
)

# Network: no Update at all (resource_docker_network.go:24-144).
NETWORK_FIELDS: dict[str, Field] = {
    "name": Field("R", computed=True),
    "labels": Field("R", shape="set_of_blocks"),
    "driver": Field("R", computed=True),
    "options": Field("R", computed=True, shape="map"),
    "internal": Field("R", computed=True),
    "attachable": Field("R", default=False),
    "ingress": Field("R", default=False),
    "ipv6": Field("R", default=False),
    "ipamDriver": Field("R", default="default"),
    "ipamOptions": Field("R", shape="map"),
    "ipamConfigs": Field("R", computed=True, shape="set_of_blocks"),
}
NETWORK_OUTPUTS = frozenset({"scope"})

# Volume (resource_docker_volume.go:40-445).
VOLUME_FIELDS: dict[str, Field] = {
    "name": Field("R", computed=True),
    "labels": Field("R", shape="set_of_blocks"),
    "driver": Field("R", computed=True),
    "driverOpts": Field("R", computed=True, shape="map"),
}
VOLUME_OUTPUTS = frozenset({"mountpoint"})

# RemoteImage (resource_docker_image.go:30-97): keepLocally/forceRemove update by re-reading.
REMOTE_IMAGE_FIELDS: dict[str, Field] = {
    "name": Field("R"),
    "pullTriggers": Field("R", shape="set"),
    "triggers": Field("R", shape="map"),
    "platform": Field("R"),
    "keepLocally": Field("U", default=False),
    "forceRemove": Field("U", default=False),
}
REMOTE_IMAGE_OUTPUTS = frozenset({"imageId", "repoDigest"})

# Swarm (provider-semantics.md §6). Secret and ServiceConfig: every input replaces. Service: see
# _diff_service.
SECRET_FIELDS: dict[str, Field] = {
    "name": Field("R", computed=True),
    "data": Field("R"),
    "labels": Field("R", shape="set_of_blocks"),
}
SERVICE_CONFIG_FIELDS: dict[str, Field] = {
    "name": Field("R", computed=True),
    "data": Field("R"),
    "dataRaw": Field("R"),
    "labels": Field("R", shape="set_of_blocks"),
}

# pulumi-tls (hashicorp/terraform-provider-tls): every input of these resources forces a replacement.
PRIVATE_KEY = "tls:index/privateKey:PrivateKey"
SELF_SIGNED_CERT = "tls:index/selfSignedCert:SelfSignedCert"
CERT_REQUEST = "tls:index/certRequest:CertRequest"
LOCALLY_SIGNED_CERT = "tls:index/locallySignedCert:LocallySignedCert"
_TLS_INPUTS: dict[str, dict[str, Shape]] = {
    PRIVATE_KEY: {"algorithm": "scalar", "ecdsaCurve": "scalar", "rsaBits": "scalar"},
    SELF_SIGNED_CERT: {
        "privateKeyPem": "scalar",
        "subject": "block",
        "dnsNames": "list",
        "validityPeriodHours": "scalar",
        "earlyRenewalHours": "scalar",
        "allowedUses": "list",
        "isCaCertificate": "scalar",
    },
    CERT_REQUEST: {"privateKeyPem": "scalar", "subject": "block", "dnsNames": "list"},
    LOCALLY_SIGNED_CERT: {
        "certRequestPem": "scalar",
        "caPrivateKeyPem": "scalar",
        "caCertPem": "scalar",
        "validityPeriodHours": "scalar",
        "earlyRenewalHours": "scalar",
        "allowedUses": "list",
        "isCaCertificate": "scalar",
    },
}
TLS_TYPES = frozenset(_TLS_INPUTS)
TLS_OUTPUTS = frozenset(
    {
        "privateKeyPem", "privateKeyPemPkcs8", "privateKeyOpenssh", "publicKeyPem", "publicKeyOpenssh",
        "publicKeyFingerprintMd5", "publicKeyFingerprintSha256", "certPem", "certRequestPem", "validityStartTime",
        "validityEndTime", "readyForRenewal", "keyAlgorithm",
    }
)  # fmt: skip

FIELDS: dict[str, dict[str, Field]] = {
    CONTAINER: CONTAINER_FIELDS,
    NETWORK: NETWORK_FIELDS,
    VOLUME: VOLUME_FIELDS,
    REMOTE_IMAGE: REMOTE_IMAGE_FIELDS,
    SECRET: SECRET_FIELDS,
    SERVICE_CONFIG: SERVICE_CONFIG_FIELDS,
    **{
        type_token: {name: Field("R", shape=shape) for name, shape in inputs.items()}
        for type_token, inputs in _TLS_INPUTS.items()
    },
}
OUTPUTS: dict[str, frozenset[str]] = {
    CONTAINER: CONTAINER_OUTPUTS,
    NETWORK: NETWORK_OUTPUTS,
    VOLUME: VOLUME_OUTPUTS,
    REMOTE_IMAGE: REMOTE_IMAGE_OUTPUTS,
    SECRET: frozenset(),
    SERVICE_CONFIG: frozenset(),
    **{type_token: TLS_OUTPUTS - set(inputs) for type_token, inputs in _TLS_INPUTS.items()},
    IMAGE: frozenset({"repoDigest", "baseImageName", "registryServer", "context", "dockerfile", "platform"}),
}
# pulumi-docker sets DeleteBeforeReplace for Container (resources.go); an explicit `name` forces it
# for every autonamed resource [bridge]. A resource option deleteBeforeReplace=False overrides both.
PROVIDER_DELETES_BEFORE_REPLACE = frozenset({CONTAINER})


# --- secrets ------------------------------------------------------------------------------------


def reveal(value: Any) -> Any:
    """Unwrap Pulumi's secret markers (the engine hands the provider plain values)."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == SECRET_VALUE_SIG:
            return reveal(value["value"])
        if set(value) == {"secret"}:  # a committed plan's rendering of a secret value
            return reveal(value["secret"])
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def secret_fields(inputs: Mapping[str, Any]) -> set[str]:
    """Top-level inputs that carry a secret: their values are never printed."""

    def has_secret(value: Any) -> bool:
        if isinstance(value, dict):
            return (
                value.get(SECRET_SIG) == SECRET_VALUE_SIG
                or set(value) == {"secret"}
                or any(has_secret(v) for v in value.values())
            )
        if isinstance(value, list):
            return any(has_secret(v) for v in value)
        return False

    return {key for key, value in inputs.items() if has_secret(value)}


# --- the diff -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Diff:
    """What the provider says about one resource: which fields changed and which force a replacement."""

    changed: tuple[str, ...] = ()
    replaces: tuple[str, ...] = ()

    @property
    def kind(self) -> Literal["same", "update", "replace"]:
        if self.replaces:
            return "replace"
        return "update" if self.changed else "same"


def _canonical(value: Any, spec: Field) -> Any:
    """A comparable form of a value of `spec`'s shape (sets unordered, block defaults filled)."""
    if spec.shape == "set":
        return sorted(str(v) for v in value or [])
    if spec.shape == "map":
        return {str(k): str(v) for k, v in (value or {}).items()}
    if spec.shape in ("blocks", "set_of_blocks", "block"):
        blocks = value if isinstance(value, list) else ([value] if value else [])
        filled = []
        for block in blocks:
            full = {**spec.nested_defaults, **{k: v for k, v in block.items() if v is not None}}
            # An absent nested field and its zero value are the same to Terraform (an unset `adds` is []).
            full = {k: v for k, v in full.items() if v not in ([], {}, "", None)}
            # Lists inside a block are sets (aliases, capabilities) except a health check's command.
            filled.append(
                {k: sorted(map(str, v)) if isinstance(v, list) and k != "tests" else v for k, v in full.items()}
            )
        if spec.shape == "set_of_blocks":
            return sorted(filled, key=lambda b: json.dumps(b, sort_keys=True, default=str))
        if spec.shape == "blocks":  # ports: reordering alone is suppressed
            return sorted(filled, key=lambda b: json.dumps(b, sort_keys=True, default=str))
        return filled[0] if filled else None
    if value is None:
        return spec.default if spec.default is not None else ""
    return value


def _zero(spec: Field) -> Any:
    return _canonical(spec.default, spec)


# Optional+Computed Service fields: absent from the inputs, the state's value stands (no diff).
_SERVICE_COMPUTED = frozenset(
    {
        "taskSpec.forceUpdate", "taskSpec.runtime", "taskSpec.containerSpec.stopGracePeriod",
        "endpointSpec", "endpointSpec.ports.publishedPort", "mode",
    }
)  # fmt: skip


def _diff_service(state: Mapping[str, Any], inputs: Mapping[str, Any]) -> Diff:
    """A Service (§6): its name and its network attachments replace it; every other block updates
    in place. The state is what Read flattened (proof/engine/handlers/service_spec.py): an input
    left out equals a zero value in state (SDKv2 reads an unset primitive as its zero value), or any
    value where the field is Optional+Computed; sets compare in any order."""
    old, new = reveal(state), reveal(inputs)
    changed = sorted(k for k in set(old) | set(new) if not _service_equal(old.get(k), new.get(k), k))
    replaces = [k for k in changed if k == "name"]
    old_networks = (old.get("taskSpec") or {}).get("networksAdvanceds")
    new_networks = (new.get("taskSpec") or {}).get("networksAdvanceds")
    if not _service_equal(old_networks, new_networks, "taskSpec.networksAdvanceds"):
        replaces.append("taskSpec.networksAdvanceds")
    return Diff(tuple(changed), tuple(replaces))


def _service_equal(recorded: Any, given: Any, path: str) -> bool:
    if given is None:
        return recorded is None or path in _SERVICE_COMPUTED or _is_zero(recorded)
    if recorded is None:
        return _is_zero(given)
    if isinstance(recorded, dict) and isinstance(given, dict):
        return all(_service_equal(recorded.get(k), given.get(k), f"{path}.{k}") for k in set(recorded) | set(given))
    if isinstance(recorded, list) and isinstance(given, list):
        if len(recorded) != len(given):
            return False
        if path.endswith(("commands", "args", "tests")):  # lists, in order
            return all(_service_equal(r, g, path) for r, g in zip(recorded, given, strict=True))
        unmatched = list(recorded)  # sets: each given element matches one recorded element
        for element in given:
            match = next((r for r in unmatched if _service_equal(r, element, path)), None)
            if match is None:
                return False
            unmatched.remove(match)
        return True
    if path.endswith("maxFailureRatio"):
        return float(recorded) == float(given)
    return bool(recorded == given)


def _is_zero(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_is_zero(v) for v in value.values())
    return value in (None, 0, "", False, [], {}, "0s")


def diff_fields(
    type_token: str,
    state: Mapping[str, Any],
    inputs: Mapping[str, Any],
    replace_on_changes: Iterable[str] = (),
) -> Diff:
    """The provider's diff of a resource's recorded state against its new inputs."""
    if type_token == IMAGE:
        return _diff_image(state, inputs)
    if type_token == PROVIDER:
        different = sorted(k for k in set(state) | set(inputs) if reveal(state.get(k)) != reveal(inputs.get(k)))
        if different:
            raise NotModelled(f"a change of the Docker provider's configuration ({', '.join(different)})")
        return Diff()
    if type_token == SERVICE:
        return _diff_service(state, inputs)
    fields = FIELDS.get(type_token)
    if fields is None:
        raise NotModelled(f"resource type {type_token}")
    unknown = sorted(set(inputs) - set(fields) - OUTPUTS[type_token])
    if unknown:
        raise NotModelled(f"{type_token} input(s) {', '.join(unknown)}")
    forced = set(replace_on_changes)
    changed: list[str] = []
    replaces: list[str] = []
    for name, spec in fields.items():
        if name not in inputs and spec.computed:
            continue
        new = _canonical(reveal(inputs.get(name)), spec) if name in inputs else _zero(spec)
        old = _canonical(reveal(state.get(name)), spec) if name in state else _zero(spec)
        if name in ("user", "workingDir") and new == "":
            continue  # DiffSuppressFunc: "" is Docker's default, not a change
        if new == old:
            continue
        changed.append(name)
        if spec.change == "R" or name in forced or "*" in forced:
            replaces.append(name)
    return Diff(tuple(changed), tuple(replaces))


def replaced_by_unknowns(
    type_token: str, unknown: Iterable[str], replace_on_changes: Iterable[str] = ()
) -> tuple[str, ...]:
    """The inputs among `unknown` that make the provider's Diff answer "replace" when they are unknown.

    The engine's delete-first cascade (pulumi/pulumi step_generator.go,
    calculateDependentReplacements) diffs a dependent with the inputs that come from a resource
    being replaced set to unknown. terraform-plugin-sdk plans an unknown value in a ForceNew field
    as RequiresNew; `replace_on_changes` forces it for any field it names. The native Image never
    replaces; a Service replaces for its name and its task spec's networks (an unknown task spec
    holds unknown networks: the harsher reading).
    """
    unknown, forced = sorted(set(unknown)), set(replace_on_changes)
    if type_token == IMAGE:
        return tuple(key for key in unknown if key in forced or "*" in forced)
    if type_token == SERVICE:
        return tuple(k for k in unknown if k in ("name", "taskSpec") or k in forced or "*" in forced)
    if type_token == PROVIDER:
        if unknown:
            raise NotModelled(f"a Docker provider configured from another resource's outputs ({', '.join(unknown)})")
        return ()
    fields = FIELDS.get(type_token)
    if fields is None:
        raise NotModelled(f"resource type {type_token}")
    return tuple(
        key for key in unknown if key in forced or "*" in forced or (key in fields and fields[key].change == "R")
    )


def _diff_image(state: Mapping[str, Any], inputs: Mapping[str, Any]) -> Diff:
    """Native Image (provider.go:271-348): any changed input rebuilds in place; never a replacement."""
    changed = []
    for key in sorted(set(state) | set(inputs)):
        if key in OUTPUTS[IMAGE] and key not in inputs:
            continue
        old, new = reveal(state.get(key)), reveal(inputs.get(key))
        if key == "registry" and isinstance(old, dict) and isinstance(new, dict):
            # A registry change that touches only the credentials is ignored.
            old = {k: v for k, v in old.items() if k not in ("username", "password")}
            new = {k: v for k, v in new.items() if k not in ("username", "password")}
        if key == "build" and isinstance(old, dict) and isinstance(new, dict):
            changed += [f"build.{k}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        elif old != new:
            changed.append(key)
    return Diff(tuple(changed))


def deletes_before_replace(type_token: str, option: bool | None, inputs: Mapping[str, Any]) -> bool:
    """Whether a replacement deletes the old resource first: the option wins when given explicitly."""
    if option is not None:
        return option
    explicit_name = "name" in inputs and type_token != REMOTE_IMAGE
    return type_token in PROVIDER_DELETES_BEFORE_REPLACE or explicit_name


# --- Check and predicted Read --------------------------------------------------------------------


def check_image(inputs: Mapping[str, Any], workdir: Path, *, portable_modes: bool = False) -> dict[str, Any]:
    """The native Image's Check (provider.go:128-268): defaults, and the build context's digest.

    `portable_modes` hashes each file's mode as git records it (644 or 755) instead of the file
    system's, so committed plans do not depend on a machine's umask; the engine stand-in uses real modes.
    """
    checked = dict(inputs)
    checked.setdefault("buildOnPreview", False)
    checked.setdefault("skipPush", False)
    build = dict(checked.get("build") or {"context": "."})
    context = build.get("context", ".")
    build.setdefault("dockerfile", f"{context}/Dockerfile")
    build.setdefault("platform", "linux/amd64")
    context_dir = resolve_path(workdir, context)
    dockerfile = resolve_path(workdir, build["dockerfile"])
    if not dockerfile.is_file():
        raise NotModelled(f"Image: dockerfile {build['dockerfile']} not found (relative to the program's directory)")
    build["contextDigest"] = context_digest(context_dir, dockerfile, portable_modes=portable_modes)
    checked["build"] = build
    return checked


def resolve_path(workdir: Path, path: str) -> Path:
    """A build path as the provider resolves it: relative to the program's working directory."""
    candidate = Path(path)
    return candidate if candidate.is_absolute() else workdir / candidate


def context_digest(context: Path, dockerfile: Path, *, portable_modes: bool = False) -> str:
    """SHA-256 over the Dockerfile and every context file not excluded by .dockerignore (provider.go:544-684)."""
    digest = hashlib.sha256()
    digest.update(b"Dockerfile")
    digest.update(hashlib.sha256(dockerfile.read_bytes()).hexdigest().encode())
    ignore_file = Path(f"{dockerfile}.dockerignore")
    if not ignore_file.is_file():
        ignore_file = context / ".dockerignore"
    patterns = dockerignore_patterns(ignore_file.read_text()) if ignore_file.is_file() else []
    for path in sorted(_context_files(context), key=lambda p: p.relative_to(context).as_posix()):
        relative = path.relative_to(context).as_posix()
        if excluded(relative, patterns):
            continue
        if path.is_symlink():
            content = os.readlink(path).encode()
            mode = "L"
        else:
            content = path.read_bytes()
            executable = bool(path.stat().st_mode & 0o111)
            mode = ("-rwxr-xr-x" if executable else "-rw-r--r--") if portable_modes else _mode_string(path)
        digest.update(f"{relative}{mode}".encode())
        digest.update(hashlib.sha256(content).hexdigest().encode())
    return digest.hexdigest()


def _context_files(root: Path) -> Iterable[Path]:
    for directory, _, files in os.walk(root):
        for name in files:
            yield Path(directory) / name


def _mode_string(path: Path) -> str:
    import stat

    return stat.filemode(path.lstat().st_mode)


def dockerignore_patterns(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    """(negated, regex) per .dockerignore line, with moby/patternmatcher's glob rules."""
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        line = os.path.normpath(line[1:] if negated else line).lstrip("/")
        regex = ""
        index = 0
        while index < len(line):
            char = line[index]
            if line.startswith("**", index):
                index += 2
                if line.startswith("/", index):  # "**/": any number of directories, none included
                    regex += "(?:.*/)?"
                    index += 1
                else:
                    regex += ".*"
                continue
            regex += {"*": "[^/]*", "?": "[^/]"}.get(char, re.escape(char))
            index += 1
        patterns.append((negated, re.compile(f"^{regex}$")))
    return patterns


def excluded(relative: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether a context path is left out: the last matching pattern wins; a matching parent counts."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for negated, pattern in patterns:
        if any(pattern.match(candidate) for candidate in candidates):
            result = not negated
    return result


def predict_read(type_token: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """What the state holds after Create and Read, predicted from the inputs alone (for plan diffs).

    Only what this engine is known to write back differently from the inputs is changed: memorySwap
    (twice the memory when only memory is set), cpus and durations in their canonical forms.
    """
    state = dict(inputs)
    if type_token != CONTAINER:
        return state
    memory = reveal(inputs.get("memory")) or 0
    if memory and not reveal(inputs.get("memorySwap")):
        state["memorySwap"] = 2 * int(memory)
    if inputs.get("cpus") not in (None, ""):
        state["cpus"] = cpus(reveal(inputs["cpus"]))
    check = reveal(inputs.get("healthcheck"))
    if check:
        block = {**CONTAINER_FIELDS["healthcheck"].nested_defaults, **check}
        for key in ("interval", "timeout", "startPeriod", "startInterval"):
            block[key] = go_duration(parse_go_duration(str(block[key])))
        state["healthcheck"] = block
    return state
