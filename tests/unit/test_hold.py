"""While a service has no container to serve (Postgres replaced or restored), the router holds its
requests for `requestHoldSeconds`, then answers 503 with Retry-After; a container answering 503 is
taken out until its health passes. What the router is given to do that, and what is refused.

The behaviour itself is proven on a real engine: tests/integration/test_deploy_prod.py (a Postgres
image change, a Postgres setting and a restore under load, and an outage longer than the hold).
"""

from __future__ import annotations

import re

import pytest

from infra.config import ConfigError
from infra.ingress import HOLD_LUA_FILE, MAX_SERVERS, ROUTER_STOP_GRACE_SECONDS
from tests.conftest import RunStack
from tests.unit.registrations import config_of, containers


def section(config: str, header: str) -> list[str]:
    body = config.split(f"\n{header}\n", 1)[1].split("\n\n", 1)[0]
    return [line.strip() for line in body.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_each_routed_service_is_held_re_sent_and_balanced_over_healthy_containers(run_stack: RunStack) -> None:
    run = run_stack("prod", requestHoldSeconds="12")
    config = config_of(run, "router")
    assert f"lua-load {HOLD_LUA_FILE}" in config
    assert "tune.lua.session-timeout 17s" in config, "the Lua action may run as long as the hold"
    assert "timeout http-keep-alive 32s" in config, "a client's other connection outlasts a held request"
    for service in ("api", "app"):
        front = section(config, f"backend {service}")
        assert f"retries {MAX_SERVERS + 2}" in front and "retry-on conn-failure empty-response 503" in front
        assert "timeout server 42s" in front, "the router waits for a held answer"
        assert front[-1] == f"server hold abns@{service}-hold"
        hold = section(config, f"frontend {service}-hold")
        assert f"http-request lua.hold {service}-servers 12000" in hold
        returned = next(line for line in hold if line.startswith("http-request return status 503"))
        assert re.search(r"hdr Retry-After \d+ if \{ nbsrv\(" + service + r"-servers\) eq 0 \}", returned)
        servers = section(config, f"backend {service}-servers")
        assert "http-check expect status 200" in servers, "a container whose dependency is away is out"
        assert "http-response lua.out if { status 503 }" in servers
    https = section(config, "frontend https")
    stopping = "use_backend api-servers if { hdr(host),field(1,:) -m str -i api.localhost } { stopping }"
    assert https.index(stopping) < https.index("use_backend api if { hdr(host),field(1,:) -m str -i api.localhost }")
    health = "use_backend api-health if { hdr(host),field(1,:) -m str -i api.localhost } { path /health }"
    assert https.index(health) < https.index("use_backend api if { hdr(host),field(1,:) -m str -i api.localhost }")
    assert "check" not in section(config, "backend api-health")[0].split(), "health is asked even of one that is out"
    # Told to stop, the router keeps the hold's listener open a while (proven: test_router_stop.py),
    # and its status fails, so the ingress sends new connections to another router.
    assert f"grace {ROUTER_STOP_GRACE_SECONDS}s" in section(config, "global") and ROUTER_STOP_GRACE_SECONDS >= 2
    assert "monitor fail if { stopping }" in section(config, "frontend status")


def test_the_lua_is_mounted_beside_the_configuration(run_stack: RunStack) -> None:
    run = run_stack("prod")
    lua = config_of(run, "router", HOLD_LUA_FILE)
    assert 'core.register_action("hold"' in lua and "check_force_down" in lua
    mounted = {v["containerPath"] for v in containers(run)["router"].inputs["volumes"]}
    assert {"/usr/local/etc/haproxy", "/usr/local/share/haproxy"} <= mounted


def test_postgres_settings_are_passed_as_server_options(run_stack: RunStack) -> None:
    run = containers(run_stack("prod", postgresParameters='["max_connections=150", "work_mem=8MB"]'))
    assert run["postgres"].inputs["command"] == ["postgres", "-c", "max_connections=150", "-c", "work_mem=8MB"]


@pytest.mark.parametrize(
    ("change", "key", "message"),
    [
        ({"requestHoldSeconds": "31"}, "requestHoldSeconds", "less than or equal to 30"),
        ({"requestHoldSeconds": "-1"}, "requestHoldSeconds", "greater than or equal to 0"),
        ({"postgresParameters": '["max_connections"]'}, "postgresParameters", "String should match pattern"),
        ({"postgresParameters": '["Max Connections=1"]'}, "postgresParameters", "String should match pattern"),
    ],
)
def test_a_bad_hold_or_postgres_setting_is_refused(
    run_stack: RunStack, change: dict[str, str], key: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=rf"stack 'prod'(.|\n)*ichrisbirch:{key}(\.0)?: .*{re.escape(message)}"):
        run_stack("prod", **change)
