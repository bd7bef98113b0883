#!/usr/bin/env bash
# Stops one node's dockerd, as a host that goes down would: its containers stop with it and the
# node stays in the swarm (Down), so the managers reschedule its tasks on the others. `up.sh`
# starts it again (it rejoins with the swarm state in its data root).
#
#   sudo bash tests/swarm/stop-node.sh icb-worker2
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/swarm/common.sh
. "$here/common.sh"

node=${1:?usage: stop-node.sh NODE (one of ${NODES[*]})}
[[ " ${NODES[*]} " == *" $node "* ]] || { echo "no node $node (one of ${NODES[*]})" >&2; exit 2; }
stop_daemon "$node"
! docker_on "$node" info >/dev/null 2>&1 || { echo "dockerd of $node still answers" >&2; exit 1; }
echo "stopped dockerd of $node"
