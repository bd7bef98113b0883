#!/usr/bin/env bash
# A three-node Docker Swarm on this one machine, for the swarm tests: a manager and two workers,
# each dockerd in a network namespace (and UTS namespace: its own hostname) of its own, with its
# own data root, exec root, socket and address on a private bridge; joined into one swarm; worker
# `icb-worker1` labelled for data (ichrisbirch.data=true); and a registry (Debian's
# docker-registry) on the manager's address, which every node pulls from.
#
#   sudo bash tests/swarm/up.sh      # prints the environment to use it (ICB_SWARM_*)
#   sudo bash tests/swarm/down.sh    # removes all of it
#
# Idempotent: an existing, healthy swarm is left as it is. Needs root, iproute2, iptables, nsenter
# and unshare (util-linux), dockerd, and docker-registry (scripts/setup installs them).
# Facts this relies on, found on these machines: `ip netns exec` would remount /sys and lose the
# cgroup mounts, so daemons start under nsenter; the root namespace's FORWARD policy is DROP once
# the main dockerd runs; the kernel has no IPVS, so services use dnsrr and host-mode ports.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/swarm/common.sh
. "$here/common.sh"
# shellcheck source=tests/hosts.sh
. "$here/../hosts.sh"

mkdir -p "$SWARM_ROOT"

# --- the network: a bridge in the root namespace, a namespace per node joined to it -------------
bridge_up "$BRIDGE" "$SUBNET" ICB_SWARM_SUBNET
# A way out, as real hosts have: the manager's engine builds the application image itself (its
# package downloads) and the nodes resolve names through this machine's resolver.
nat_up "$BRIDGE" "$SUBNET"

for i in "${!NODES[@]}"; do
  node=${NODES[$i]}
  ns=$(netns "$node")
  if [ ! -e "/var/run/netns/$ns" ]; then
    ip netns add "$ns"
    ip link add "$(veth "$node")" type veth peer name eth0 netns "$ns"
    ip link set "$(veth "$node")" master "$BRIDGE" up
    ip -n "$ns" addr add "$(address "$i")/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    ip -n "$ns" route add default via "$SUBNET.1"
  fi
done

# --- the registry, on the manager's address -----------------------------------------------------
registry_dir="$SWARM_ROOT/registry"
mkdir -p "$registry_dir/data"
if ! curl -fsS "http://$REGISTRY/v2/" >/dev/null 2>&1; then
  cat >"$registry_dir/config.yml" <<YAML
version: 0.1
storage:
  filesystem:
    rootdirectory: $registry_dir/data
  delete:
    enabled: true
http:
  addr: $REGISTRY
YAML
  nsenter --net="/var/run/netns/$(netns "${NODES[0]}")" \
    setsid docker-registry serve "$registry_dir/config.yml" >"$registry_dir/log" 2>&1 </dev/null &
  echo $! >"$registry_dir/pid"
  wait_for "the registry at $REGISTRY" curl -fsS "http://$REGISTRY/v2/"
fi

# --- one dockerd per node --------------------------------------------------------------------------
for i in "${!NODES[@]}"; do
  node=${NODES[$i]}
  d="$SWARM_ROOT/$node"
  mkdir -p "$d/data" "$d/exec"
  if ! docker_on "$node" info >/dev/null 2>&1; then
    # Its own hostname (swarm names nodes by it); its own data, exec root, pid file and socket.
    nsenter --net="/var/run/netns/$(netns "$node")" unshare --uts sh -c "hostname $node && exec dockerd \
      --data-root $d/data --exec-root $d/exec --pidfile $d/pid -H unix://$(socket "$node") \
      --insecure-registry $REGISTRY --log-level warn" >"$d/log" 2>&1 </dev/null &
    wait_for "dockerd of $node" docker_on "$node" info
  fi
done

# --- the swarm ----------------------------------------------------------------------------------
manager=${NODES[0]}
if [ "$(docker_on "$manager" info -f '{{.Swarm.LocalNodeState}}')" != active ]; then
  docker_on "$manager" swarm init --advertise-addr "$(address 0)" >/dev/null
fi
token=$(docker_on "$manager" swarm join-token -q worker)
for i in 1 2; do
  node=${NODES[$i]}
  if [ "$(docker_on "$node" info -f '{{.Swarm.LocalNodeState}}')" != active ]; then
    docker_on "$node" swarm join --token "$token" "$(address 0):2377" >/dev/null
  fi
done
wait_for "three ready nodes" sh -c "[ \$($DOCKER -H unix://$(socket "$manager") node ls -q --filter role=worker | wc -l) -eq 2 ] \
  && ! $DOCKER -H unix://$(socket "$manager") node ls --format '{{.Status}}' | grep -qv Ready"
docker_on "$manager" node update --label-add ichrisbirch.data=true "$DATA_NODE" >/dev/null

cat <<ENV
swarm ready: ${NODES[*]} on $SUBNET.0/24, registry $REGISTRY, data on $DATA_NODE
ICB_SWARM_MANAGER=unix://$(socket "$manager")
ICB_SWARM_DATA_NODE=unix://$(socket "$DATA_NODE")
ICB_SWARM_REGISTRY=$REGISTRY
ICB_SWARM_ADDRESSES=$(address 0),$(address 1),$(address 2)
ENV
