# shellcheck shell=bash disable=SC2034  # (variables used by the scripts that source this)
# Shared by up.sh, down.sh and stop-node.sh: the names and addresses of the test swarm.
SWARM_ROOT=${ICB_SWARM_ROOT:-/tmp/icb-swarm}
DOCKER=${DOCKER_BIN:-/usr/bin/docker}
BRIDGE=icbswarm0
SUBNET=${ICB_SWARM_SUBNET:-10.231.7}  # a private /24, used only inside these namespaces (checked free by up.sh)
NODES=(icb-manager icb-worker1 icb-worker2)
DATA_NODE=icb-worker1
REGISTRY=$SUBNET.11:5000

netns() { echo "icb-swarm-${1#icb-}"; }
veth() { echo "icbv-${1#icb-}"; }
address() { echo "$SUBNET.$((11 + $1))"; }
socket() { echo "$SWARM_ROOT/$1/docker.sock"; }
docker_on() { local node=$1; shift; "$DOCKER" -H "unix://$(socket "$node")" "$@"; }

wait_for() {  # wait_for WHAT COMMAND...: up to 60 s
  local what=$1; shift
  for _ in $(seq 1 120); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "timed out waiting for $what" >&2
  return 1
}

stop_daemon() {  # stop_daemon NODE: stop its dockerd (its containers with it), unmount what outlived it
  local d="$SWARM_ROOT/$1" pid
  pid=$(cat "$d/pid" 2>/dev/null || true)  # dockerd removes its pid file as it exits
  if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  fi
  # Containers' mounts (overlay layers, shm, netns files) that outlived their daemon.
  { grep -o " $d/[^ ]*" /proc/mounts || true; } | sort -r \
    | while read -r mount; do umount -l "$mount" 2>/dev/null || true; done
}
