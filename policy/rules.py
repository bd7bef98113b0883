"""The guard rails, as plain functions over a resource's inputs (no Pulumi imports).

Each rule returns the problems it finds, each naming what to change. `pack.py` turns them into a
Pulumi policy pack; the unit tests run them on the resources the program registers under mocks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

CONTAINER = "docker:index/container:Container"
IMAGE = "docker:index/image:Image"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
VOLUME = "docker:index/volume:Volume"
SERVICE = "docker:index/service:Service"

SECRET_SIG = "4dabf18193072939515e22adb298388d"
SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|(^|_)KEY$|(^|_)AUTH$")
# Values no real secret has: what a plain-text placeholder in a config file tends to be.
OBVIOUS_PLACEHOLDERS = {"", "password", "changeme", "secret", "postgres", "redis", "admin", "example"}


@dataclass(frozen=True)
class Resource:
    type: str
    name: str
    props: Mapping[str, Any]
    # Under mocks Pulumi's secret markers are visible; pulumi-policy's analyzer removes them, so
    # there only values that are obviously not secrets can be told apart.
    secrets_visible: bool = True
    stack: str | None = None  # the Pulumi stack, for resources that carry no environment label
    protect: bool = False  # the resource option: Pulumi refuses to delete or replace it


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    check: Callable[[Resource], list[str]]


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG) == SECRET_VALUE


def reveal(value: Any) -> Any:
    return value["value"] if is_secret(value) else value


def environment(resource: Resource) -> str | None:
    """The environment a resource belongs to: its ichrisbirch.environment label, its icb-<env>- name,
    or else (images carry neither) the stack it is deployed in."""
    for label in reveal(resource.props.get("labels")) or []:
        if label.get("label") == "ichrisbirch.environment":
            return str(label.get("value"))
    match = re.match(r"^icb-(\w+)(-|$)", str(resource.props.get("name", "")))
    return match.group(1) if match else resource.stack


def _runs(r: Resource) -> bool:
    """A container that starts a process: one created with `start: false` (a secret's holder, which
    only receives a file) runs nothing, so the rules about what runs do not concern it."""
    return r.type == CONTAINER and r.props.get("start", True) is not False


def _long_running(r: Resource) -> bool:
    return _runs(r) and r.props.get("mustRun", True) is not False


def no_root_user(r: Resource) -> list[str]:
    if not _runs(r):
        return []
    user = str(r.props.get("user") or "")
    if "caddy run " in " ".join(map(str, r.props.get("command") or [])) and (r.props.get("capabilities") or {}).get(
        "drops"
    ) == ["ALL"]:
        # The ACME ingress: root only as the owner of its certificate volume, with no capabilities
        # (so no access to files it does not own) and only unprivileged ports.
        return []
    if not user or user.split(":")[0] in ("0", "root"):
        return ["runs as root: set `user` to a numeric non-root uid:gid (the app image has 10001:10001)"]
    if not user.split(":")[0].isdigit():
        return [f"runs as user {user!r}: give a numeric uid:gid, checkable without the image's /etc/passwd"]
    return []


def read_only_root(r: Resource) -> list[str]:
    if _runs(r) and not r.props.get("readOnly"):
        return ["has a writable root filesystem: set `readOnly: true` and mount tmpfs where the process writes"]
    return []


def privileges_dropped(r: Resource) -> list[str]:
    if not _runs(r):
        return []
    problems = []
    capabilities = r.props.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drops") or []):
        problems.append("keeps Linux capabilities: set `capabilities.drops: [ALL]`")
    if capabilities.get("adds"):
        problems.append(f"adds capabilities {capabilities['adds']}: remove them")
    if "no-new-privileges:true" not in (r.props.get("securityOpts") or []):
        problems.append("can gain privileges: add `no-new-privileges:true` to `securityOpts`")
    if r.props.get("privileged"):
        problems.append("is privileged: remove `privileged`")
    return problems


def resource_limits(r: Resource) -> list[str]:
    if not _runs(r):
        return []
    problems = []
    if not r.props.get("memory"):
        problems.append("has no memory limit: set `memory` (MB)")
    if not r.props.get("cpus") and not r.props.get("cpuShares"):
        problems.append("has no CPU limit: set `cpus`")
    if not any(u.get("name") == "nproc" for u in r.props.get("ulimits") or []):
        problems.append("has no process limit: set an `nproc` ulimit (pulumi-docker has no pids_limit)")
    return problems


def health_checked(r: Resource) -> list[str]:
    if not _long_running(r):
        return []
    tests = (r.props.get("healthcheck") or {}).get("tests") or []
    if not tests or tests[0] == "NONE":
        return ["is long-running without a health check: set `healthcheck.tests`"]
    return []


def no_host_mounts(r: Resource) -> list[str]:
    if r.type != CONTAINER:
        return []
    problems = []
    for volume in r.props.get("volumes") or []:
        path = volume.get("hostPath")
        if path and "docker.sock" in path:
            problems.append(f"mounts the Docker socket {path}: remove it, it is root on the host")
        elif path:
            problems.append(f"bind-mounts host path {path}: use a named volume")
    return problems


def no_public_ports(r: Resource) -> list[str]:
    if r.type != CONTAINER:
        return []
    return [
        f"publishes port {port.get('external')} on all interfaces: set `ip` to a chosen host address (bindAddress)"
        for port in r.props.get("ports") or []
        if port.get("ip") in (None, "", "0.0.0.0", "::")
    ]


def _label(r: Resource, key: str) -> str | None:
    for label in reveal(r.props.get("labels")) or []:
        if label.get("label") == key:
            return str(label.get("value"))
    return None


def _env(r: Resource, name: str) -> str | None:
    for entry in reveal(r.props.get("envs")) or []:
        key, _, value = str(entry).partition("=")
        if key == name:
            return value
    return None


def only_ingress_publishes(r: Resource) -> list[str]:
    if r.type != CONTAINER or not r.props.get("ports") or _label(r, "ichrisbirch.service") == "ingress":
        return []
    ports = ", ".join(str(p.get("external")) for p in r.props.get("ports") or [])
    return [f"publishes port(s) {ports}: only the ingress publishes; reach this service through it"]


def _section(config: str, header: str) -> list[str]:
    """The lines of one section of a rendered configuration, without its header and comments."""
    if header not in config:
        return []
    body = config.split(header, 1)[1].split("\n\n", 1)[0].split("\n}", 1)[0]
    return [line.strip() for line in body.splitlines() if line.strip() and not line.strip().startswith("#")]


def configuration_file(r: Resource) -> tuple[str, str, str] | None:
    """(service, path, text) of a configuration file the program renders: on one engine, the
    upload of the holder container that puts it in its reader's volume (infra/containers.py)."""
    service, path = _label(r, "ichrisbirch.config-of"), _label(r, "ichrisbirch.file")
    uploads = r.props.get("uploads") or []
    if r.type != CONTAINER or service is None or path is None or len(uploads) != 1:
        return None
    return service, path, str(reveal(uploads[0].get("content")) or "")


def plain_http_only_redirects(r: Resource) -> list[str]:
    """Port 80 does nothing but redirect: in the router, which terminates it (HAProxy), or in the
    ACME ingress (Caddy). The TCP ingress passes port 80 on to the router's `frontend http`."""
    found = configuration_file(r)
    if found is None or found[0] not in ("router", "ingress"):
        return []
    service, path, text = found
    if not path.endswith(("Caddyfile", "haproxy.cfg")):
        return []  # another file of the proxy's (the router's hold.lua)
    if path.endswith("Caddyfile"):
        caddy = text
        http_site = next((line for line in caddy.splitlines() if line.startswith("http://")), "")
        lines = _section(caddy, http_site + "\n") if http_site else []
        if not lines or not all(line.startswith("redir https://") for line in lines):
            return ["serves plain HTTP: its http:// site must only redirect to HTTPS (infra/ingress.py)"]
        return []
    config = text
    lines = _section(config, "frontend http\n")
    if service == "ingress":
        if "    mode tcp\n" in config and lines[1:] == ["default_backend router_http"]:
            return []
        return ["serves plain HTTP itself: the TCP ingress must pass port 80 to the router (infra/ingress.py)"]
    if "tlsTermination: front" in config:
        return _plain_http_behind_a_front_proxy(lines)
    serving = [line for line in lines if not line.startswith(("bind ", "http-request redirect "))]
    if not lines or serving or not any(line.startswith("http-request redirect ") for line in lines):
        return ["serves plain HTTP: its `frontend http` must only redirect to HTTPS (infra/ingress.py)"]
    return []


# Where TLS ends in a proxy in front (declared: tlsTermination front), the router serves plain HTTP
# and must not believe a client that is not that proxy about who or where it is.
_FRONT_TRUST = [f"http-request del-header X-Forwarded-{name} unless from_front" for name in ("For", "Proto", "Host")]


def _plain_http_behind_a_front_proxy(lines: list[str]) -> list[str]:
    trusted = next((line for line in lines if line.startswith("acl from_front src ")), "")
    if not trusted.split()[3:] or not all(rule in lines for rule in _FRONT_TRUST):
        return [
            "serves plain HTTP behind a proxy in front without trusting X-Forwarded-* from that proxy only:"
            " declare frontProxies (infra/ingress.py)"
        ]
    return []


def _names_a_secret(variable: str) -> bool:
    """PASSWORD, SECRET, TOKEN, KEY... but not <VAR>_FILE, which holds the path of a secret's file."""
    return bool(SECRET_NAME.search(variable)) and not variable.endswith("_FILE")


def no_plain_text_secret_env(r: Resource) -> list[str]:
    if r.type != CONTAINER:
        return []
    envs = r.props.get("envs") or []
    if is_secret(envs):
        return []
    problems = []
    for entry in envs:
        if is_secret(entry):
            continue
        key, _, value = str(entry).partition("=")
        if not _names_a_secret(key):
            continue
        if r.secrets_visible or value.lower() in OBVIOUS_PLACEHOLDERS:
            problems.append(f"sets {key} in plain text: pass it from a secret (`pulumi config set --secret`)")
    return problems


def secrets_not_in_environment(r: Resource) -> list[str]:
    """No variable named for a secret carries a value, even a secret one: `docker inspect` shows
    environments. <VAR>_FILE, which names the file holding it, is how a secret reaches a process."""
    if r.type != CONTAINER:
        return []
    names = [str(reveal(entry)).partition("=")[0] for entry in reveal(r.props.get("envs")) or []]
    return [
        f"has {name} in its environment: give it as a file, named by {name}_FILE (prod reads secrets from files)"
        for name in names
        if _names_a_secret(name)
    ]


def _pinned(reference: str) -> bool:
    if reference.startswith("sha256:") or "@sha256:" in reference:
        return True
    name, _, tag = reference.rpartition(":")
    return bool(name) and "/" not in tag and tag != "latest"


def pinned_images(r: Resource) -> list[str]:
    reference = {
        REMOTE_IMAGE: r.props.get("name"),
        IMAGE: r.props.get("imageName"),
        CONTAINER: r.props.get("image"),
    }.get(r.type)
    if reference is None:
        return []
    if not _pinned(str(reference)):
        return [f"uses image {reference!r}, which is not pinned: give a tag other than latest, or a digest"]
    return []


def restart_policy(r: Resource) -> list[str]:
    if not _long_running(r):
        return []
    restart = r.props.get("restart", "no")
    if restart not in ("always", "unless-stopped", "on-failure"):
        return [f"has restart policy {restart!r}: set `restart` to always or unless-stopped"]
    if restart == "on-failure" and int(r.props.get("maxRetryCount") or 0) > 5:
        return ["retries on failure more than 5 times: set `maxRetryCount` to 5 or fewer"]
    return []


RULES = [
    Rule("no-root-user", "No container runs as root.", no_root_user),
    Rule("read-only-root-filesystem", "Containers have a read-only root filesystem.", read_only_root),
    Rule("privileges-dropped", "All capabilities dropped and no-new-privileges set.", privileges_dropped),
    Rule("resource-limits", "Memory, CPU and process limits on every container.", resource_limits),
    Rule("health-checked", "Every long-running container has a health check.", health_checked),
    Rule("no-host-mounts", "No host bind mounts and no Docker socket mount.", no_host_mounts),
    Rule("no-public-ports", "No port published on all interfaces (0.0.0.0).", no_public_ports),
    Rule("only-ingress-publishes", "Only the ingress publishes ports.", only_ingress_publishes),
    Rule("plain-http-only-redirects", "Plain HTTP only redirects to HTTPS.", plain_http_only_redirects),
    Rule("no-plain-text-secret-env", "No plain-text secret in a container environment.", no_plain_text_secret_env),
    Rule(
        "secrets-not-in-environment",
        "No secret in a container's environment, only <VAR>_FILE.",
        secrets_not_in_environment,
    ),
    Rule("pinned-images", "Image references are pinned (tag or digest, never latest).", pinned_images),
    Rule("restart-policy", "Long-running containers have a restart policy.", restart_policy),
]


@dataclass(frozen=True)
class StackRule:
    """A rule over all of one stack's resources: what must exist, not how each one is set."""

    name: str
    description: str
    check: Callable[[list[Resource]], list[str]]


def backups_kept(resources: list[Resource]) -> list[str]:
    """Prod has a backup service, and its dumps' volume is protected (on one engine, or on a swarm's
    data node), so neither `pulumi destroy` nor a replacement can take them."""
    prod = [r for r in resources if environment(r) == "prod"]
    runners = {str(r.props.get("name", "")) for r in prod if r.type in (CONTAINER, SERVICE)}
    if not runners:
        return []
    problems = []
    if not any(re.fullmatch(r"icb-[a-z0-9-]+-backup", name) for name in runners):
        problems.append("prod has no backup service: set `backups` true in its stack config")
    volumes = [r for r in prod if r.type == VOLUME and str(r.props.get("name", "")).endswith("-backups")]
    if not volumes:
        problems.append("prod has no backups volume (icb-<stack>-backups)")
    problems += [
        f"volume {v.props.get('name')} is not protected: give it protect=True" for v in volumes if not v.protect
    ]
    return problems


STACK_RULES = [
    StackRule("backups-kept", "Prod backs up its database into a protected volume.", backups_kept),
]


def display_name(resource: Resource) -> str:
    """A container by its Docker name (icb-prod-api), anything else by its Pulumi name."""
    return str(resource.props.get("name") or resource.name) if resource.type == CONTAINER else resource.name


def violations(resource: Resource) -> list[tuple[str, str]]:
    """(rule name, message naming the resource and what to change) for every problem found."""
    return [(rule.name, f"{display_name(resource)}: {problem}") for rule in RULES for problem in rule.check(resource)]
