#!/usr/bin/env bash
# Cuts the remote host's SSH, or brings it back, as a restarted or failing sshd would:
#   sudo bash tests/remote/sshd.sh stop    # every sshd process of the host, with the connections they hold
#   sudo bash tests/remote/sshd.sh start   # sshd again, in the host's namespaces, until it answers
# Its dockerd and containers run on, untouched.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/remote/common.sh
. "$here/common.sh"

host_pids() { ip netns pids "$NETNS"; }
sshd_pids() {  # the listener and every session (OpenSSH 9.8+ names those sshd-session)
  local pid
  for pid in $(host_pids); do
    case $(cat "/proc/$pid/comm" 2>/dev/null) in sshd | sshd-session | sshd-auth) echo "$pid" ;; esac
  done
}

case ${1:-} in
  stop)
    sshd_pids | xargs -r kill -9
    for _ in $(seq 1 20); do [ -z "$(sshd_pids)" ] && break; sleep 0.25; done
    if ssh "${SSH_OPTS[@]}" -o ConnectTimeout=2 "deploy@$ADDRESS" true 2>/dev/null; then
      echo "sshd.sh: the host still answers on SSH" >&2
      exit 1
    fi
    echo "remote: sshd stopped"
    ;;
  start)
    dockerd=$(for pid in $(host_pids); do
      if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ]; then echo "$pid"; fi
    done | head -1)
    [ -n "$dockerd" ] || { echo "sshd.sh: no dockerd in $NETNS: is the host up (up.sh)?" >&2; exit 1; }
    # In the namespaces of its dockerd: the same network, mounts and root filesystem.
    nsenter --target "$dockerd" --mount --net --uts --root --wd=/ /usr/sbin/sshd -E /var/log/sshd.log
    for _ in $(seq 1 40); do
      ssh "${SSH_OPTS[@]}" "deploy@$ADDRESS" true 2>/dev/null && { echo "remote: sshd started"; exit 0; }
      sleep 0.25
    done
    echo "sshd.sh: sshd started but does not answer: $(tail -n 3 "$REMOTE_ROOT/root/var/log/sshd.log" 2>&1)" >&2
    exit 1
    ;;
  *)
    echo "usage: tests/remote/sshd.sh stop|start" >&2
    exit 2
    ;;
esac
