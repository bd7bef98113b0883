#!/usr/bin/env bash
# Removes the test's remote host of up.sh completely: every process in its namespace (dockerd, its
# containers, sshd), the namespace, veth and bridge, the NAT and FORWARD rules, and its folder.
# Safe to run when nothing is there.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/remote/common.sh
. "$here/common.sh"
# shellcheck source=tests/hosts.sh
. "$here/../hosts.sh"

pids=$(ip netns pids "$NETNS" 2>/dev/null)
if [ -n "$pids" ]; then
  # shellcheck disable=SC2086  # one pid per word
  kill $pids 2>/dev/null
  for _ in $(seq 1 40); do [ -z "$(ip netns pids "$NETNS" 2>/dev/null)" ] && break; sleep 0.5; done
  ip netns pids "$NETNS" 2>/dev/null | xargs -r kill -9 2>/dev/null
  # A killed process is gone only once the kernel has torn it down.
  for _ in $(seq 1 20); do [ -z "$(ip netns pids "$NETNS" 2>/dev/null)" ] && break; sleep 0.5; done
fi
ip netns del "$NETNS" 2>/dev/null
ip link del "$VETH" 2>/dev/null
ip link del "$BRIDGE" 2>/dev/null
nat_down "$BRIDGE" "$SUBNET"
# Mounts of its namespace that a process still held when it went.
{ grep -o " $REMOTE_ROOT/[^ ]*" /proc/mounts || true; } | sort -r | while read -r mount; do umount -l "$mount" 2>/dev/null; done
rm -rf "$REMOTE_ROOT"
echo "remote removed"
