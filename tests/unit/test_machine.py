"""The host's address on the default bridge, from either form of `docker network inspect` that
engines print: with an IPAM `Gateway`, and with only the `Subnet` (seen on a fresh machine here)."""

from __future__ import annotations

import ipaddress

import pytest

from proof.harness.machine import MachineProblem, bridge_subnet

WITH_GATEWAY = {
    "Name": "bridge",
    "IPAM": {"Driver": "default", "Config": [{"Subnet": "192.168.215.0/24", "Gateway": "192.168.215.1"}]},
}
SUBNET_ONLY = {"Name": "bridge", "IPAM": {"Options": None, "Config": [{"Subnet": "172.17.0.0/16"}]}}


def test_the_gateway_where_the_engine_reports_one() -> None:
    assert bridge_subnet(WITH_GATEWAY) == ("192.168.215.1", ipaddress.IPv4Network("192.168.215.0/24"))


def test_the_first_address_of_the_subnet_where_it_reports_none() -> None:
    assert bridge_subnet(SUBNET_ONLY) == ("172.17.0.1", ipaddress.IPv4Network("172.17.0.0/16"))


def test_an_ipv6_subnet_listed_first_is_passed_over() -> None:
    dual = {"Name": "bridge", "IPAM": {"Config": [{"Subnet": "fd00:1::/64"}, {"Subnet": "10.9.0.0/16"}]}}
    assert bridge_subnet(dual)[0] == "10.9.0.1"


@pytest.mark.parametrize("ipam", [{}, {"Config": None}, {"Config": [{"Subnet": "fd00:1::/64"}]}])
def test_no_ipv4_subnet_is_named_not_guessed(ipam: dict[str, object]) -> None:
    with pytest.raises(MachineProblem, match="network 'bridge' has no IPv4 subnet"):
        bridge_subnet({"Name": "bridge", "IPAM": ipam})
