"""pulumi-docker's (and pulumi-tls's) fields as the bridge sees them: how a change of each is applied
(R replaces, U updates in place, N is state only), its default, its shape, what Read adds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

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
