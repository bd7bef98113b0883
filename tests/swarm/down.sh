#!/usr/bin/env bash
# Removes the test swarm of up.sh completely: each node leaves the swarm, its dockerd stops (and
# what it mounted under its data root is unmounted), the registry stops, the namespaces, veths,
# bridge and FORWARD rule go, and the state folder is deleted. Safe to run when nothing is there.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/swarm/common.sh
. "$here/common.sh"
# shellcheck source=tests/hosts.sh
. "$here/../hosts.sh"

for node in "${NODES[@]}"; do
  docker_on "$node" swarm leave --force >/dev/null 2>&1
  stop_daemon "$node"
done
registry_pid=$(cat "$SWARM_ROOT/registry/pid" 2>/dev/null || true)
[ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null
for node in "${NODES[@]}"; do
  ip netns pids "$(netns "$node")" 2>/dev/null | xargs -r kill -9 2>/dev/null
  ip netns del "$(netns "$node")" 2>/dev/null
  ip link del "$(veth "$node")" 2>/dev/null
done
ip link del "$BRIDGE" 2>/dev/null
nat_down "$BRIDGE" "$SUBNET"
rm -rf "$SWARM_ROOT"
echo "swarm removed"
