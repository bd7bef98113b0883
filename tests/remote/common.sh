# shellcheck shell=bash disable=SC2034  # (variables used by the scripts that source this)
# Shared by up.sh and down.sh: where the test's remote host lives and how it is reached.
REMOTE_ROOT=${ICB_REMOTE_ROOT:-/tmp/icb-remote}
BRIDGE=icbremote0
SUBNET=${ICB_REMOTE_SUBNET:-10.231.9}  # a private /24, used only by this host (checked free by up.sh)
ADDRESS=$SUBNET.2
NETNS=icb-remote
VETH=icbr-remote
KEY=$REMOTE_ROOT/id_ed25519
KNOWN_HOSTS=$REMOTE_ROOT/known_hosts
SSH_OPTS=(-i "$KEY" -o "UserKnownHostsFile=$KNOWN_HOSTS" -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=5)
