"""TLS terminated in front of the stack (tlsTermination: front): the ingress serves plain HTTP on its
bind address only, X-Forwarded-* are trusted only from the declared proxies, the security headers
stay, and the policy pack accepts plain HTTP only in that declared mode."""

from __future__ import annotations

import json
import re

import pytest
import rules

from infra.config import ConfigError
from proof.mocks import Run
from tests.conftest import RunStack
from tests.unit.registrations import config_of, containers
from tests.unit.test_policy import GOOD_PROD, HAPROXY_CFG, config_holder

FRONT = {"tlsTermination": "front", "frontProxies": json.dumps(["10.0.0.5", "192.168.7.0/24"])}


@pytest.fixture
def front(run_stack: RunStack) -> Run:
    return run_stack("prod", **FRONT)


def http_frontend(config: str) -> list[str]:
    body = config.split("frontend http\n", 1)[1].split("\n\n", 1)[0]
    return [line.strip() for line in body.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_the_ingress_publishes_plain_http_on_its_bind_address_only(front: Run) -> None:
    ports = containers(front)["ingress"].inputs["ports"]
    assert ports == [{"internal": 8080, "external": 80, "ip": "127.0.0.1"}], "no HTTPS port: the proxy serves it"


def test_the_router_serves_plain_http_trusting_forwarded_headers_from_the_proxies_only(front: Run) -> None:
    lines = http_frontend(config_of(front, "router"))
    assert "acl from_front src 10.0.0.5 192.168.7.0/24" in lines
    for name in ("For", "Proto", "Host"):
        assert f"http-request del-header X-Forwarded-{name} unless from_front" in lines
    assert "http-request set-header X-Forwarded-Proto http unless from_front" in lines
    assert not any(line.startswith("http-request redirect") for line in lines), "served, not redirected"
    # The same serving rules as over TLS: routes, body limit, security headers.
    assert "use_backend api if { hdr(host),field(1,:) -m str -i api.localhost }" in lines
    assert 'http-response set-header Strict-Transport-Security "max-age=31536000; includeSubDomains"' in lines
    assert "http-response set-header X-Frame-Options DENY" in lines
    assert any(line.startswith("http-request deny deny_status 413") for line in lines)


def test_the_default_still_redirects_and_trusts_no_forwarded_header(run_stack: RunStack) -> None:
    lines = http_frontend(config_of(run_stack("prod"), "router"))
    assert len(lines) == 2 and lines[1].startswith("http-request redirect location https://"), lines
    ingress = containers(run_stack("prod"))["ingress"].inputs["ports"]
    assert [p["external"] for p in ingress] == [80, 443]


@pytest.mark.parametrize(
    ("stack", "change", "key", "message"),
    [
        ("prod", {"tlsTermination": "front"}, "frontProxies", "is required with ichrisbirch:tlsTermination front"),
        ("prod", {"frontProxies": '["10.0.0.5"]'}, "frontProxies", "only applies with"),
        ("prod", {**FRONT, "frontProxies": '["proxy.local"]'}, "frontProxies", "is not an IP address or network"),
        ("prod", {**FRONT, "domain": "example.org", "acmeEmail": "a@example.org"}, "acmeEmail", "proxy in front"),
        ("prod", {**FRONT, "bindAddress": "0.0.0.0"}, "bindAddress", "not every interface"),
        ("dev", FRONT, "tlsTermination", "does not run"),
        ("prod", {"tlsTermination": "tunnel"}, "tlsTermination", "'ingress' or 'front'"),
    ],
)
def test_an_incomplete_declaration_is_refused(
    run_stack: RunStack, stack: str, change: dict[str, str], key: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=rf"stack '{stack}'(.|\n)*ichrisbirch:{key}: .*{re.escape(message)}"):
        run_stack(stack, **change)


def test_the_policy_accepts_plain_http_only_in_the_declared_mode(front: Run) -> None:
    declared = config_of(front, "router")
    holder = {**GOOD_PROD, **config_holder("router", HAPROXY_CFG, declared)}
    assert rules.plain_http_only_redirects(rules.Resource(rules.CONTAINER, "router-config", holder)) == []
    # Serving plain HTTP without trusting the proxies only: refused, with or without the declaration.
    for drop in ("acl from_front src", "del-header X-Forwarded-For"):
        broken = "\n".join(line for line in declared.splitlines() if drop not in line)
        holder = {**GOOD_PROD, **config_holder("router", HAPROXY_CFG, broken)}
        found = rules.plain_http_only_redirects(rules.Resource(rules.CONTAINER, "router-config", holder))
        assert found and "trusting X-Forwarded-*" in found[0], drop
    undeclared = declared.replace("tlsTermination: front", "")
    holder = {**GOOD_PROD, **config_holder("router", HAPROXY_CFG, undeclared)}
    found = rules.plain_http_only_redirects(rules.Resource(rules.CONTAINER, "router-config", holder))
    assert found == ["serves plain HTTP: its `frontend http` must only redirect to HTTPS (infra/ingress.py)"]
