"""The rules across settings: what no single key can say alone (two ports that collide, TLS ended
in front without the proxies declared, a swarm prod without a registry). Each rule is a function of
the whole settings returning its problems; `infra.config.load_settings` runs them all.
"""

from __future__ import annotations

from collections.abc import Callable

from infra.identity import PROJECT, PROJECT_DIR
from infra.profiles import PROFILES
from infra.settings import SHIPPED_PACKAGE, StackSettings, key_of, published_ports

Problem = tuple[str, str]  # (the full key, or "stack"; what is wrong with it)


def _ports_collide(settings: StackSettings) -> list[Problem]:
    problems = []
    by_port: dict[int, list[str]] = {}
    for service, port in published_ports(settings).items():
        by_port.setdefault(port, []).append(service)
    for port, services in sorted(by_port.items()):
        if len(services) > 1:
            port_keys = {"ingress": "http_port", "ingress_https": "https_port"}
            keys = ", ".join(f"{PROJECT}:{key_of(port_keys.get(s, s + '_port'))}" for s in services)
            problems.append((keys, f"{' and '.join(services)} would both publish host port {port}"))
    return problems


def _ssh_options_need_an_ssh_host(settings: StackSettings) -> list[Problem]:
    if settings.docker_ssh_opts and not settings.docker_host.startswith("ssh://"):
        return [(f"{PROJECT}:dockerSshOpts", f"only applies to an ssh:// dockerHost, not {settings.docker_host}")]
    return []


def _acme_needs_a_public_domain(settings: StackSettings) -> list[Problem]:
    private = "." not in settings.domain or settings.domain.endswith((".localhost", ".internal", ".test"))
    if settings.acme_email and private:
        return [
            (
                f"{PROJECT}:acmeEmail",
                f"needs a public {PROJECT}:domain that an ACME CA can reach, not {settings.domain!r}",
            )
        ]
    return []


def _tls_in_front_is_declared_whole(settings: StackSettings) -> list[Problem]:
    key = f"{PROJECT}:tlsTermination"
    if settings.tls_termination != "front":
        if settings.front_proxies:
            return [(f"{PROJECT}:frontProxies", f"only applies with {key} front")]
        return []
    problems = []
    if not settings.front_proxies:
        message = f"is required with {key} front: the proxies whose X-Forwarded-* headers are trusted"
        problems.append((f"{PROJECT}:frontProxies", message))
    if settings.acme_email:
        message = f"cannot be set with {key} front: the proxy in front holds the certificate"
        problems.append((f"{PROJECT}:acmeEmail", message))
    if not PROFILES[settings.environment].ingress:
        problems.append((key, f"front needs an ingress, which the {settings.environment} environment does not run"))
    if settings.bind_address in ("0.0.0.0", "::"):
        message = f"must be the address the proxy in front reaches (not every interface) with {key} front"
        problems.append((f"{PROJECT}:bindAddress", message))
    return problems


def _maintenance_needs_an_ingress(settings: StackSettings) -> list[Problem]:
    if settings.maintenance and not PROFILES[settings.environment].ingress:
        message = f"the {settings.environment} environment runs no ingress, whose router would answer for it"
        return [(f"{PROJECT}:maintenance", message)]
    return []


def _a_suite_in_the_stack_needs_a_domain(settings: StackSettings) -> list[Problem]:
    if PROFILES[settings.environment].runs_test_suite and settings.domain == "localhost":
        message = (
            "must not be localhost in a stack whose test suite reaches the ingress by name"
            " (inside a container localhost is the container itself); for example test.ichrisbirch.internal"
        )
        return [(f"{PROJECT}:domain", message)]
    return []


def _swarm_runs_prod_from_a_registry(settings: StackSettings) -> list[Problem]:
    if settings.orchestrator != "swarm":
        return []
    problems = []
    if settings.environment != "prod":
        problems.append(
            (
                f"{PROJECT}:orchestrator",
                f"swarm runs the prod environment only, not {settings.environment}"
                " (dev bind-mounts the checkout; test runs its suite as a one-shot container)",
            )
        )
    if not settings.image_registry and not settings.app_image:
        problems.append(
            (
                f"{PROJECT}:imageRegistry",
                "is required with orchestrator swarm (or a prebuilt appImage): every node pulls the"
                " application image from it",
            )
        )
    if not settings.data_node_host:
        problems.append(
            (
                f"{PROJECT}:dataNodeHost",
                "is required with orchestrator swarm: the data volumes are declared (and protected) on the engine"
                " of the node labelled ichrisbirch.data=true, for example ssh://deploy@data-node",
            )
        )
    return problems


def _data_node_is_for_swarm(settings: StackSettings) -> list[Problem]:
    if settings.data_node_host and settings.orchestrator != "swarm":
        return [(f"{PROJECT}:dataNodeHost", "only applies to orchestrator swarm (one engine keeps its volumes itself)")]
    return []


def _offsite_copy_is_complete(settings: StackSettings) -> list[Problem]:
    """An off-host copy needs the rest of its settings, and dumps to copy."""
    endpoint = f"{PROJECT}:backupOffsiteEndpoint"
    if not settings.backup_offsite_endpoint:
        given = [key_of(f) for f in ("backup_offsite_bucket", "backup_offsite_prefix", "backup_offsite_region")
                 if getattr(settings, f)]  # fmt: skip
        return [(f"{PROJECT}:{key}", f"has no effect without {endpoint}") for key in given]
    problems = []
    if not settings.backup_offsite_bucket:
        problems.append((f"{PROJECT}:backupOffsiteBucket", f"is required with {endpoint}"))
    if not settings.backups:
        problems.append((endpoint, f"copies the backup service's dumps, but {PROJECT}:backups is false"))
    elif not PROFILES[settings.environment].persistent_data:
        problems.append(
            (endpoint, f"copies dumps, but the {settings.environment} environment keeps no data to back up")
        )
    return problems


def _the_application_contract_is_whole(settings: StackSettings) -> list[Problem]:
    """What the shipped application's defaults cannot stand in for."""
    problems = []
    if settings.scheduler_enabled:
        for field_name in ("scheduler_command", "scheduler_health_command"):
            if not getattr(settings, field_name):
                key = f"{PROJECT}:{key_of(field_name)}"
                problems.append((key, f"is required while {PROJECT}:schedulerEnabled is true"))
    if not settings.app_image and not (PROJECT_DIR / settings.app_directory / SHIPPED_PACKAGE).is_dir():
        for field_name in ("api_command", "app_command"):
            if not getattr(settings, field_name) and (field_name == "api_command" or settings.app_enabled):
                message = (
                    f"is required for the application in {settings.app_directory}: the default runs the"
                    f" shipped app's modules ({SHIPPED_PACKAGE}.*), which it does not have"
                )
                problems.append((f"{PROJECT}:{key_of(field_name)}", message))
    return problems


def _a_prebuilt_image_is_pinned_by_digest_in_prod(settings: StackSettings) -> list[Problem]:
    if settings.app_image and settings.environment == "prod" and "@sha256:" not in settings.app_image:
        message = (
            f"must be pinned by digest in prod (a tag can be moved): {settings.app_image}@sha256:<digest>,"
            " as the registry reported it when CI pushed"
        )
        return [(f"{PROJECT}:appImage", message)]
    return []


def _the_application_has_a_dockerfile(settings: StackSettings) -> list[Problem]:
    if settings.app_image:
        return []  # prebuilt: nothing is built here
    app_dir = PROJECT_DIR / settings.app_directory
    if not (app_dir / "Dockerfile").is_file():
        return [(f"{PROJECT}:appDirectory", f"{app_dir} has no Dockerfile")]
    return []


CROSS_FIELD_RULES: tuple[Callable[[StackSettings], list[Problem]], ...] = (
    _ports_collide,
    _ssh_options_need_an_ssh_host,
    _acme_needs_a_public_domain,
    _a_suite_in_the_stack_needs_a_domain,
    _tls_in_front_is_declared_whole,
    _maintenance_needs_an_ingress,
    _swarm_runs_prod_from_a_registry,
    _data_node_is_for_swarm,
    _offsite_copy_is_complete,
    _the_application_contract_is_whole,
    _a_prebuilt_image_is_pinned_by_digest_in_prod,
    _the_application_has_a_dockerfile,
)
