#!/usr/bin/env bash
# A Docker engine of the test run's own: its own data root, exec root, socket, pid file, bridge and
# address pool, started empty and removed whole afterwards, so no image, volume, build cache or
# swarm from an earlier run, or from a developer's own engine, can make a test pass (.ci/run).
#
#   eval "$(bash tests/engine.sh up)"    # starts it; prints `export DOCKER_HOST=unix://...`
#   bash tests/engine.sh down            # stops it and removes everything it held
#
# Needs root, dockerd and ip (Debian's docker.io and iproute2; installed here when missing).
set -euo pipefail

root=${ICB_ENGINE_ROOT:-/tmp/icb-test-engine}
bridge=icbtest0
bridge_address=${ICB_ENGINE_BRIDGE:-10.213.0.1/24}  # the default bridge's; private, this engine's only
pool=${ICB_ENGINE_POOL:-10.214.0.0/16}              # the stacks' networks, /24 each
socket=unix://$root/docker.sock

stop() {
  local pid
  pid=$(cat "$root/pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  # What outlived the daemon: its containers' mounts, then the folder and the bridge.
  { grep -o " $root/[^ ]*" /proc/mounts || true; } | sort -r | while read -r mount; do umount -l "$mount" 2>/dev/null || true; done
  rm -rf "$root"
  ip link delete "$bridge" 2>/dev/null || true
}

case "${1:-}" in
  up)
    missing=()
    { command -v dockerd >/dev/null && [ -x /usr/bin/docker ]; } || missing+=(docker.io)
    command -v ip >/dev/null || missing+=(iproute2)
    if [ "${#missing[@]}" -gt 0 ]; then
      echo "engine: installing ${missing[*]}" >&2
      apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    stop  # a run that was interrupted leaves nothing for this one
    mkdir -p "$root/data" "$root/exec"
    ip link add "$bridge" type bridge
    ip addr add "$bridge_address" dev "$bridge"
    ip link set "$bridge" up
    nohup dockerd --data-root "$root/data" --exec-root "$root/exec" --pidfile "$root/pid" -H "$socket" \
      --bridge "$bridge" --default-address-pool "base=$pool,size=24" >"$root/dockerd.log" 2>&1 &
    for _ in $(seq 1 120); do /usr/bin/docker -H "$socket" info >/dev/null 2>&1 && break; sleep 0.5; done
    if ! /usr/bin/docker -H "$socket" info >/dev/null 2>&1; then
      echo "engine: dockerd did not start:" >&2
      tail -20 "$root/dockerd.log" >&2
      exit 1
    fi
    echo "engine: Docker $(/usr/bin/docker -H "$socket" version --format '{{.Server.Version}}') at $socket, empty" >&2
    echo "export DOCKER_HOST=$socket"
    ;;
  down)
    stop
    echo "engine: stopped; $root removed" >&2
    ;;
  *)
    echo "usage: bash tests/engine.sh up|down" >&2
    exit 2
    ;;
esac
