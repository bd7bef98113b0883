"""Facts about the machine the tests run on, found the same way on any engine.

What an engine reports differs between machines: the default bridge's `docker network inspect`
shows a `Gateway` on some and only the `Subnet` on others, and the subnet itself differs (172.17.x,
192.168.x). Each fact here is read from what must be there, checked, and named when it is not.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from typing import Any


class MachineProblem(RuntimeError):
    """Something the tests need from this machine is not there; the message names it."""


def bridge_subnet(inspected: dict[str, Any]) -> tuple[str, ipaddress.IPv4Network]:
    """The host's address on a bridge network and the network's IPv4 subnet, from its
    `docker network inspect` entry.

    The address is the IPAM `Gateway` where the engine reports one; otherwise the first address of
    the `Subnet`, which is what Docker gives the bridge's interface when no gateway is configured.
    """
    configs = (inspected.get("IPAM") or {}).get("Config") or []
    for config in configs:
        subnet = ipaddress.ip_network(config.get("Subnet") or "::/128", strict=False)
        if isinstance(subnet, ipaddress.IPv4Network):  # the containers reach the host over IPv4
            return str(config.get("Gateway") or next(subnet.hosts())), subnet
    name = inspected.get("Name", "?")
    raise MachineProblem(f"network {name!r} has no IPv4 subnet in its IPAM config: {json.dumps(configs)}")


def interface_address(interface: str) -> str | None:
    """The first IPv4 address of a host interface (`ip -4 -o addr show`), or None without one."""
    try:
        listed = subprocess.run(
            ["ip", "-4", "-o", "addr", "show", "dev", interface], capture_output=True, text=True, timeout=10
        )
    except FileNotFoundError:
        return None
    for line in listed.stdout.splitlines():
        fields = line.split()
        if "inet" in fields:
            return fields[fields.index("inet") + 1].split("/")[0]
    return None


def host_address(docker: list[str]) -> str:
    """The address at which every container on this engine reaches the host: the default bridge's.

    Read from the bridge's interface where the host has it (a local engine), checked against the
    network's subnet; else from the network's inspect entry alone.
    """
    result = subprocess.run([*docker, "network", "inspect", "bridge"], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise MachineProblem(f"`docker network inspect bridge` failed: {result.stderr.strip()}")
    (inspected,) = json.loads(result.stdout)
    from_inspect, subnet = bridge_subnet(inspected)
    interface = (inspected.get("Options") or {}).get("com.docker.network.bridge.name", "docker0")
    on_interface = interface_address(interface)
    if on_interface is None:
        return from_inspect
    if ipaddress.ip_address(on_interface) not in subnet:
        raise MachineProblem(f"the default bridge's interface {interface} has {on_interface}, outside {subnet}")
    return on_interface
