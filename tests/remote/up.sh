#!/usr/bin/env bash
# A remote host of the test run's own, reached over SSH as a team reaches its server: Debian 13
# (trixie) with that release's Docker (26) and OpenSSH, its dockerd and sshd in a network namespace
# with its own address on a bridge the run makes, and a mount namespace whose root is the host's
# own filesystem (pivot_root: a plain chroot breaks `docker exec` and health checks). A `deploy`
# user may use its engine; the key pair is made here, the host key pinned in a known_hosts of the
# run's own (never StrictHostKeyChecking=no). Builds on it reach the package indexes through NAT.
#
#   sudo bash tests/remote/up.sh     # prints the environment to reach it (ICB_REMOTE_*)
#   sudo bash tests/remote/down.sh   # removes all of it
#
# The root filesystem is built once per version of `build_root` (debootstrap, then apt-get), cached
# under ~/.cache/ichrisbirch; each run works on a copy of it. Needs root, debootstrap, iproute2,
# iptables, util-linux (nsenter, unshare) and an ssh client.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/remote/common.sh
. "$here/common.sh"
# shellcheck source=tests/hosts.sh
. "$here/../hosts.sh"

build_root() {  # build_root DIR: Debian 13 with Docker and OpenSSH, and the deploy user
  local dir=$1
  debootstrap --variant=minbase trixie "$dir" "$(debian_mirror)" >"$dir.log" 2>&1 || { tail -20 "$dir.log" >&2; return 1; }
  mount -t proc proc "$dir/proc"
  chroot "$dir" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends docker.io docker-cli openssh-server iproute2 ca-certificates' >>"$dir.log" 2>&1 \
    || { umount "$dir/proc"; tail -20 "$dir.log" >&2; return 1; }
  umount "$dir/proc"
  chroot "$dir" useradd --create-home --shell /bin/bash --groups docker deploy
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/etc/ssh/ssh_host_*
}

cache=${XDG_CACHE_HOME:-$HOME/.cache}/ichrisbirch/remote-trixie-$(declare -f build_root | sha256sum | cut -c1-12)
if [ ! -d "$cache" ]; then
  echo "remote: building its root filesystem (debootstrap trixie, docker.io, openssh-server) ..." >&2
  mkdir -p "$(dirname "$cache")"
  rm -rf "$cache.tmp" && mkdir "$cache.tmp"
  build_root "$cache.tmp"
  mv "$cache.tmp" "$cache"
fi

if ssh "${SSH_OPTS[@]}" "deploy@$ADDRESS" docker info >/dev/null 2>&1; then
  echo "remote: already up at $ADDRESS" >&2
else
  bash "$here/down.sh" >/dev/null  # whatever an interrupted run left
  mkdir -p "$REMOTE_ROOT"
  root=$REMOTE_ROOT/root
  cp -a "$cache" "$root"

  # --- its keys: the deploy user's, made here, and its host key, pinned -----------------------------
  ssh-keygen -q -t ed25519 -N "" -C "icb-test-deploy" -f "$KEY"
  install -d -m 700 -o 1000 -g 1000 "$root/home/deploy/.ssh"
  install -m 600 -o 1000 -g 1000 "$KEY.pub" "$root/home/deploy/.ssh/authorized_keys"
  ssh-keygen -q -t ed25519 -N "" -C "icb-remote" -f "$root/etc/ssh/ssh_host_ed25519_key"
  echo "$ADDRESS $(cut -d' ' -f1,2 "$root/etc/ssh/ssh_host_ed25519_key.pub")" >"$KNOWN_HOSTS"
  printf 'HostKey /etc/ssh/ssh_host_ed25519_key\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n' \
    >"$root/etc/ssh/sshd_config.d/icb.conf"
  mkdir -p "$root/.oldroot"

  # --- its network: a namespace on a bridge of the run's own, NAT to the package indexes ------------
  bridge_up "$BRIDGE" "$SUBNET" ICB_REMOTE_SUBNET
  ip netns add "$NETNS"
  ip link add "$VETH" type veth peer name eth0 netns "$NETNS"
  ip link set "$VETH" master "$BRIDGE" up
  ip -n "$NETNS" addr add "$ADDRESS/24" dev eth0
  ip -n "$NETNS" link set eth0 up
  ip -n "$NETNS" link set lo up
  ip -n "$NETNS" route add default via "$SUBNET.1"
  nat_up "$BRIDGE" "$SUBNET"
  cp /etc/resolv.conf "$root/etc/resolv.conf"

  # --- its dockerd and sshd, in a mount namespace whose root is its own ----------------------------
  nsenter --net="/var/run/netns/$NETNS" unshare --mount --uts --fork setsid sh -c "
    mount --make-rprivate / && mount --bind $root $root && mount -t proc proc $root/proc &&
    mount --rbind /sys $root/sys && mount --rbind /dev $root/dev && mount -t tmpfs tmpfs $root/run &&
    cd $root && pivot_root . .oldroot && umount -l /.oldroot && cd / && hostname icb-remote &&
    mkdir -p /run/sshd && (dockerd --log-level warn >/var/log/dockerd.log 2>&1 &) &&
    exec /usr/sbin/sshd -D -e >/var/log/sshd.log 2>&1" </dev/null >"$REMOTE_ROOT/start.log" 2>&1 &
  for _ in $(seq 1 120); do
    ssh "${SSH_OPTS[@]}" "deploy@$ADDRESS" docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  ssh "${SSH_OPTS[@]}" "deploy@$ADDRESS" docker info >/dev/null \
    || { echo "remote: its engine does not answer over SSH:" >&2; tail -n 5 "$REMOTE_ROOT/start.log" "$root/var/log/"*.log >&2; exit 1; }
fi

version=$(ssh "${SSH_OPTS[@]}" "deploy@$ADDRESS" docker version -f '{{.Server.Version}}')
cat <<ENV
remote ready: Docker $version over ssh://deploy@$ADDRESS
ICB_REMOTE_HOST=ssh://deploy@$ADDRESS
ICB_REMOTE_ADDRESS=$ADDRESS
ICB_REMOTE_KEY=$KEY
ICB_REMOTE_KNOWN_HOSTS=$KNOWN_HOSTS
ENV
