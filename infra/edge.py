"""The edge: the router (HAProxy) in front of api and app, and the ingress (Caddy, or HAProxy
passing TLS through) that clients reach on 80 and 443.
"""

from __future__ import annotations

from infra.ingress import (
    CADDY_CA_PATH,
    CERT_PATH,
    HOLD_LUA,
    HOLD_LUA_FILE,
    HTTP_PORT,
    HTTPS_PORT,
    ROUTER,
    STATUS_PORT,
    caddy_config,
    router_config,
    tcp_ingress_config,
)
from infra.profiles import Profile
from infra.settings import StackSettings
from infra.spec import (
    CADDY_CONFIG_FILE,
    HAPROXY_CONFIG_FILE,
    HAPROXY_UID,
    MANAGER_NODE,
    SERVER_STOP_SECONDS,
    Hardening,
    HealthCheck,
    Limits,
    Mount,
    ServiceSpec,
    from_file,
    health,
    published,
    writable_tmp,
)


def _haproxy_hardening(profile: Profile) -> Hardening:
    if not profile.hardened:
        return Hardening()
    return Hardening(user=HAPROXY_UID, read_only_root=True, drop_all_capabilities=True, no_new_privileges=True)


def status_probe() -> HealthCheck:
    # No curl in the HAProxy image: bash's /dev/tcp asks the monitor URI.
    return HealthCheck(
        test=(
            "CMD",
            "bash",
            "-c",
            f"exec 3<>/dev/tcp/127.0.0.1/{STATUS_PORT} && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3"
            " && grep -q ' 200 ' <&3",
        )
    )


def _haproxy(config_file: str) -> tuple[str, ...]:
    return ("haproxy", "-W", "-db", "-f", config_file)


def router(s: StackSettings, profile: Profile, routed: list[ServiceSpec]) -> ServiceSpec:
    """HAProxy: TLS with the stack's certificate, routing by Host, health-gated balancing."""
    routes = [spec.route for spec in routed if spec.route is not None]
    body_limit = s.request_body_limit_kb * 1024
    # HAProxy reads the certificate's path from the environment ("${HAPROXY_TLS_PEM_FILE}").
    maintenance = s.maintenance_message if s.maintenance else None
    config = router_config(
        routes, s.https_port, body_limit, not s.acme_email, s.trusted_front_proxies, s.request_hold_seconds, maintenance
    )
    return ServiceSpec(
        name=ROUTER,
        image="haproxy",
        command=from_file(s, "HAPROXY_TLS_PEM", CERT_PATH, *_haproxy(HAPROXY_CONFIG_FILE)),
        env={},
        config_files={HAPROXY_CONFIG_FILE: config, HOLD_LUA_FILE: HOLD_LUA},
        secret_env={"HAPROXY_TLS_PEM": "router_tls_pem"},
        limits=Limits(memory_mb=s.redis_memory_mb, cpus=s.cpus, processes=s.process_limit),
        tmpfs=writable_tmp(profile),
        health=status_probe(),
        # Two on two nodes where there are nodes (swarm): losing one never takes the only router.
        replicas=2,
        depends_on=tuple(spec.name for spec in routed),
        # A new configuration or certificate starts beside the old router; the ingress moves
        # new connections to it once it is healthy, and the old one finishes what it serves.
        create_first=profile.ingress,
        hardening=_haproxy_hardening(profile),
        restart=profile.restart,
        # The image's stop signal, SIGUSR1, is HAProxy's soft stop: it closes its listeners and
        # finishes in-flight requests (hard-stop-after in the configuration bounds it).
        stop_grace_seconds=SERVER_STOP_SECONDS,
    )


def ingress(s: StackSettings, profile: Profile) -> ServiceSpec:
    """The one container that publishes ports (with dev's direct ones, for debugging). Its
    configuration does not depend on the routes: only its image and host ports replace it."""
    ports = published(s, profile, "ingress", HTTP_PORT, s.http_port)
    if s.tls_termination == "ingress":  # otherwise a proxy in front serves HTTPS, and reaches port 80
        ports += published(s, profile, "ingress", HTTPS_PORT, s.https_port)
    # Clients on the stack's network (the test suite) reach the sites by their names, as outside.
    aliases = tuple(s.hosts.all())
    if s.acme_email:
        # Caddy reads the CA's path from the environment ({$ROUTER_CA_FILE}).
        caddyfile = caddy_config(s.hosts, s.acme_email, s.acme_directory, s.https_port)
        caddy = ("caddy", "run", "--config", CADDY_CONFIG_FILE, "--adapter", "caddyfile")
        return ServiceSpec(
            name="ingress",
            image="caddy",
            command=from_file(s, "ROUTER_CA", CADDY_CA_PATH, *caddy),
            env={},
            config_files={CADDY_CONFIG_FILE: caddyfile},
            placement=(MANAGER_NODE,),
            secret_env={"ROUTER_CA": "internal_ca_certificate"},
            limits=Limits(memory_mb=s.redis_memory_mb, cpus=s.cpus, processes=s.process_limit),
            ports=ports,
            aliases=aliases,
            # Certificates and the ACME account outlive the container.
            mounts=(Mount(target="/data", volume="acme-data"),),
            # Caddy runs as the image's root, which owns /data; with no capabilities it can bind
            # only the unprivileged ports above.
            tmpfs=writable_tmp(profile, "/config"),
            health=health("wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{STATUS_PORT}/healthz"),
            depends_on=(ROUTER,),
            hardening=Hardening(read_only_root=True, drop_all_capabilities=True, no_new_privileges=True)
            if profile.hardened
            else Hardening(),
            restart=profile.restart,
            stop_grace_seconds=SERVER_STOP_SECONDS,
        )
    return ServiceSpec(
        name="ingress",
        image="haproxy",
        command=_haproxy(HAPROXY_CONFIG_FILE),
        env={},
        config_files={HAPROXY_CONFIG_FILE: tcp_ingress_config()},
        # On swarm: on the manager, the address clients and DNS know; its ports in host mode.
        placement=(MANAGER_NODE,),
        secret_env={},
        limits=Limits(memory_mb=s.redis_memory_mb, cpus=s.cpus, processes=s.process_limit),
        ports=ports,
        aliases=aliases,
        tmpfs=writable_tmp(profile),
        health=status_probe(),
        depends_on=(ROUTER,),
        hardening=_haproxy_hardening(profile),
        restart=profile.restart,
        stop_grace_seconds=SERVER_STOP_SECONDS,
    )
