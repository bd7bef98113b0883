"""What each stack declares under Pulumi mocks: prod's hardening and how dev differs, the router
and the ingress in front."""

from __future__ import annotations

import pytest

from infra.config import ConfigError
from proof.resources import REMOTE_IMAGE
from tests.conftest import RunStack
from tests.unit.registrations import APP_SERVICES, LONG_RUNNING, config_of, containers, env_of, short

# --- prod hardening, and how dev differs ---------------------------------------------------------


def test_prod_application_containers_are_hardened(run_stack: RunStack) -> None:
    run = containers(run_stack("prod"))
    for name in APP_SERVICES:
        inputs = run[name].inputs
        assert inputs["user"] == "10001:10001", name
        assert inputs["readOnly"] is True
        assert inputs["capabilities"] == {"drops": ["ALL"]}
        assert inputs["securityOpts"] == ["no-new-privileges:true"]
        assert inputs["memory"] == 768 and inputs["cpus"] == "1.0"
        assert inputs["ulimits"] == [{"hard": 256, "name": "nproc", "soft": 256}]
        assert "/tmp" in inputs["tmpfs"]
    for name in LONG_RUNNING:
        inputs = run[name].inputs
        assert inputs["restart"] == "always"
        assert inputs["logDriver"] == "json-file" and inputs["logOpts"] == {"max-file": "3", "max-size": "10m"}
        assert inputs["securityOpts"] == ["no-new-privileges:true"]
        assert inputs["capabilities"]["drops"] == ["ALL"]
        assert inputs["memory"] > 0
    assert run["migrate"].inputs["restart"] == "no"
    for name in ("postgres", "redis"):  # as their images' own non-root users, no capabilities at all
        inputs = run[name].inputs
        assert inputs["user"] == "999:999" and inputs["readOnly"] is True, name
        assert inputs["capabilities"] == {"drops": ["ALL"]}, name
        assert "/tmp" in inputs["tmpfs"] and inputs["ulimits"][0]["name"] == "nproc", name
    assert "/var/run/postgresql" in run["postgres"].inputs["tmpfs"]


def test_dev_is_not_hardened_but_limited_and_restarts_unless_stopped(run_stack: RunStack) -> None:
    run = containers(run_stack("dev"))
    for name in LONG_RUNNING:
        inputs = run[name].inputs
        assert inputs["restart"] == "unless-stopped"
        assert inputs["readOnly"] is False and "user" not in inputs and "capabilities" not in inputs
        assert inputs["memory"] > 0


def test_containers_with_fixed_names_are_replaced_delete_first(run_stack: RunStack, stack: str) -> None:
    create_first = {"migrate", "api", "app", "scheduler", "router"} if stack in ("test", "prod") else set()
    for name, container in containers(run_stack(stack)).items():
        assert container.delete_before_replace_defined, name
        assert container.delete_before_replace == (name not in create_first), name
        assert container.replace_on_changes == ["healthcheck", "tmpfs"], name


def test_prod_publishes_only_the_ingress_and_the_router_routes_by_host(run_stack: RunStack) -> None:
    run = containers(run_stack("prod", domain="example.org"))
    assert [name for name, c in run.items() if c.inputs.get("ports")] == ["ingress"]
    config = config_of(run_stack("prod", domain="example.org"), "router")
    assert "use_backend api if { hdr(host),field(1,:) -m str -i api.example.org }" in config
    assert "use_backend app if { hdr(host),field(1,:) -m str -i example.org }" in config
    assert "server-template api 6 api:8000 check resolvers docker init-addr none" in config
    assert "retry-on conn-failure empty-response response-timeout" in config
    assert {short(d) for d in run["router"].dependencies if "Container::" in d} == {
        "api",
        "app",
        "secret-router-tls-pem",
        "router-haproxy-cfg",
        "router-hold-lua",
    }, "after what it routes to, and the holders of its certificate and configuration"


def test_the_tcp_ingress_passes_connections_to_healthy_routers_and_never_changes(run_stack: RunStack) -> None:
    default_run = run_stack("prod")
    changed_run = run_stack("prod", domain="example.org", requestBodyLimitKb="64", httpsPort="8443")
    default, changed = containers(default_run)["ingress"], containers(changed_run)
    config = config_of(default_run, "ingress")
    assert "mode tcp" in config
    assert "server-template router 6 router:8443 check port 8404 send-proxy-v2" in config
    # Routing, TLS and limits live in the router: the ingress (which holds the host's ports) is
    # not replaced when they change, only its ports and aliases follow the settings.
    assert config_of(changed_run, "ingress") == config
    assert env_of(changed["ingress"]) == env_of(default)
    assert changed["ingress"].inputs["command"] == default.inputs["command"]
    assert config_of(changed_run, "router") != config_of(default_run, "router")
    # The router takes the client's address from the PROXY header the ingress sends.
    assert "bind :8443 accept-proxy ssl crt" in config_of(changed_run, "router")


def test_the_router_serves_https_from_the_stacks_own_ca_and_plain_http_only_redirects(run_stack: RunStack) -> None:
    run = run_stack("prod", domain="example.org", httpsPort="8443", requestBodyLimitKb="64")
    config = config_of(run, "router")
    http_frontend = config.split("frontend http\n")[1].split("\n\n")[0]
    assert [line.strip() for line in http_frontend.strip().splitlines()[1:]] == [
        "http-request redirect location https://%[req.hdr(host),field(1,:)]:8443%[capture.req.uri] code 301"
    ], "plain HTTP does nothing but redirect"
    # The certificate and key from the secret's file (prod keeps secrets out of environments),
    # named by the variable the renderer sets, in a file mounted read-only.
    router = containers(run)["router"]
    assert 'bind :8443 accept-proxy ssl crt "${HAPROXY_TLS_PEM_FILE}" alpn http/1.1 ssl-min-ver TLSv1.2' in config
    assert env_of(router)["HAPROXY_TLS_PEM_FILE"] == "/run/secrets/router_tls_pem/value"
    assert router.inputs["command"] == ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
    mounted = {v["containerPath"]: v for v in router.inputs["volumes"]}
    assert mounted["/usr/local/etc/haproxy"]["readOnly"] is True
    assert mounted["/usr/local/etc/haproxy"]["volumeName"] == "icb-prod-router-haproxy-cfg"
    assert mounted["/usr/local/share/haproxy"]["volumeName"] == "icb-prod-router-hold-lua"
    assert mounted["/usr/local/share/haproxy"]["readOnly"] is True
    assert 'Strict-Transport-Security "max-age=31536000; includeSubDomains"' in config
    assert "deny_status 413 if { req.hdr_val(content-length) gt 65536 }" in config
    csr = run.named("tls:index/certRequest:CertRequest", "server-csr")
    assert csr.inputs["dnsNames"] == ["example.org", "api.example.org"]
    ca = run.named("tls:index/selfSignedCert:SelfSignedCert", "ca-cert")
    assert ca.inputs["isCaCertificate"] is True and "cert_signing" in ca.inputs["allowedUses"]
    key = run.named("tls:index/privateKey:PrivateKey", "server-key")
    assert key.inputs == {"algorithm": "ECDSA", "ecdsaCurve": "P256"}


def test_with_an_acme_email_caddy_gets_certificates_and_passes_requests_to_the_router(run_stack: RunStack) -> None:
    run = run_stack("prod", domain="example.org", acmeEmail="ops@example.org")
    ingress = containers(run)["ingress"]
    caddyfile = config_of(run, "ingress", "/etc/caddy/Caddyfile")
    assert run.named(REMOTE_IMAGE, "caddy-image").inputs["name"] == "caddy:2.10.2"
    assert "\temail ops@example.org\n" in caddyfile
    assert "\tacme_ca https://acme-v02.api.letsencrypt.org/directory\n" in caddyfile
    assert "\nexample.org, api.example.org {\n" in caddyfile
    # Plain HTTP only redirects (Caddy answers the HTTP-01 challenge on it before any route).
    http_site = caddyfile.split("http://example.org, http://api.example.org {\n")[1].split("\n}")[0]
    assert http_site.strip() == "redir https://{host}{uri} 301"
    # To the router over TLS, verified against the stack's CA, one connection per request.
    assert "reverse_proxy https://router:8443" in caddyfile and "tls_server_name example.org" in caddyfile
    assert "keepalive off" in caddyfile
    # The CA it verifies the router with, from the secret's file.
    assert env_of(ingress)["ROUTER_CA_FILE"] == "/run/secrets/internal_ca_certificate/value"
    assert "tls_trusted_ca_certs {$ROUTER_CA_FILE}" in caddyfile
    assert ingress.inputs["command"] == ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
    # Certificates and the ACME account survive a new container, in a protected volume.
    assert ingress.inputs["volumes"][0]["containerPath"] == "/data"
    volume = run.named("docker:index/volume:Volume", "acme-data")
    assert volume.inputs["name"] == "icb-prod-acme-data" and volume.protect
    # Caddy sends no PROXY header: the router must not expect one.
    assert "accept-proxy" not in config_of(run, "router")


def test_acme_needs_a_public_domain(run_stack: RunStack) -> None:
    with pytest.raises(ConfigError, match=r"ichrisbirch:acmeEmail: needs a public ichrisbirch:domain .* 'localhost'"):
        run_stack("prod", acmeEmail="ops@example.org")
    with pytest.raises(ConfigError, match=r"ichrisbirch:acmeEmail: .*got 'not-an-email'"):
        run_stack("prod", domain="example.org", acmeEmail="not-an-email")
