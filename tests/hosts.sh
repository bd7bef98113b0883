# shellcheck shell=bash
# What the scripts that make the suite's machines share (sourced by tests/standins/build.sh,
# tests/swarm/*.sh and tests/remote/*.sh): Debian's mirror, and a private bridge whose network
# namespaces reach out through NAT, as real hosts do.

debian_mirror() {  # the Debian mirror apt on this machine uses: no registry host is written in the repo
  local uri
  uri=$(grep -hs -m1 -E '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' || true)
  [ -n "$uri" ] || uri=$(grep -hs -m1 -E '^deb ' /etc/apt/sources.list | awk '{print $2}' || true)
  [ -n "$uri" ] || { echo "no Debian mirror found in /etc/apt" >&2; return 1; }
  echo "$uri"
}

bridge_up() {  # bridge_up BRIDGE PREFIX SETTING: BRIDGE owning PREFIX.0/24 (at PREFIX.1), made if missing
  local bridge=$1 prefix=$2 setting=$3 taken
  ip link show "$bridge" >/dev/null 2>&1 && return 0
  # The subnet must be this harness's alone: a route into it (another network of this machine's)
  # would be shadowed by the bridge, and its hosts taken for ours.
  taken=$(ip -4 route show root "$prefix.0/24")
  if [ -n "$taken" ]; then
    echo "the subnet $prefix.0/24 is in use on this machine ($taken); set $setting to a free /24 prefix (e.g. 10.232.9)" >&2
    return 1
  fi
  ip link add "$bridge" type bridge
  ip addr add "$prefix.1/24" dev "$bridge"
  ip link set "$bridge" up
}

# The FORWARD and NAT rules of a bridge: its namespaces reach each other and, through NAT, the
# package indexes and this machine's resolver (the root namespace's FORWARD policy is DROP once the
# main dockerd runs).
bridge_rules() {  # bridge_rules BRIDGE PREFIX: one rule per line, as iptables takes them after -A/-C/-D
  echo "FORWARD -i $1 -o $1 -j ACCEPT"
  echo "FORWARD -i $1 ! -o $1 -j ACCEPT"
  echo "FORWARD -o $1 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
  echo "POSTROUTING -t nat -s $2.0/24 ! -o $1 -j MASQUERADE"
}

nat_up() {  # nat_up BRIDGE PREFIX
  local rule
  sysctl -qw net.ipv4.ip_forward=1
  while read -r rule; do
    # shellcheck disable=SC2086  # a rule is words
    iptables -C $rule 2>/dev/null || iptables -I $rule
  done < <(bridge_rules "$1" "$2")
}

nat_down() {  # nat_down BRIDGE PREFIX
  local rule
  while read -r rule; do
    # shellcheck disable=SC2086  # a rule is words
    while iptables -D $rule 2>/dev/null; do :; done
  done < <(bridge_rules "$1" "$2")
}
