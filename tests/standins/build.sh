#!/usr/bin/env bash
# Builds local stand-ins for the images nothing here can pull: a Debian root filesystem made with
# debootstrap, and on it a Python base, a Postgres and a Redis that behave like the official images
# for what this project uses. Each image is built once and rebuilt only when its inputs change
# (cached by a hash of this folder, recorded as a label). Prints the references to configure.
#
#   bash tests/standins/build.sh            # build what is missing or out of date
#
# Needs root (debootstrap), a running Docker engine and /usr/bin/docker (the client with BuildKit).
#
# Where images can be pulled (GitHub's runners), ICB_STANDINS=pull uses the real images instead:
#   ICB_STANDINS=pull bash tests/standins/build.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/hosts.sh
. "$here/../hosts.sh"
docker_bin=${DOCKER_BIN:-/usr/bin/docker}
export DOCKER_BUILDKIT=1

DEBIAN=icb-standin/debian:bookworm
PYTHON=icb-standin/python:3.11-slim-bookworm
POSTGRES=icb-standin/postgres:15-bookworm
REDIS=icb-standin/redis:7-bookworm
HAPROXY=icb-standin/haproxy:2.6-bookworm
CADDY=icb-standin/caddy:2.6-bookworm
RCLONE=icb-standin/rclone:1.75.2-bookworm

content_hash() { (cd "$here" && cat "$@" | sha256sum | cut -c1-16); }

current() {  # current IMAGE HASH: is IMAGE present and built from inputs with HASH?
  [ "$("$docker_bin" image inspect -f '{{ index .Config.Labels "ichrisbirch.standin.hash" }}' "$1" 2>/dev/null)" = "$2" ]
}

build_debian() {
  local hash; hash=$(content_hash build.sh)
  if current "$DEBIAN" "$hash"; then echo "up to date: $DEBIAN"; return; fi
  command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
  local root; root=$(mktemp -d)
  trap 'rm -rf "$root"' RETURN
  echo "debootstrap bookworm from $(debian_mirror) ..."
  debootstrap --variant=minbase bookworm "$root" "$(debian_mirror)" >/tmp/icb-debootstrap.log 2>&1 \
    || { tail -20 /tmp/icb-debootstrap.log >&2; exit 1; }
  # Keep images small, as the official slim images do.
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | "$docker_bin" import \
    --change "LABEL ichrisbirch.standin.hash=$hash" --change 'CMD ["bash"]' - "$DEBIAN" >/dev/null
  echo "built: $DEBIAN"
}

build_on_debian() {  # build_on_debian IMAGE DOCKERFILE [extra context files...]
  local image=$1 dockerfile=$2; shift 2
  local hash; hash=$(content_hash build.sh "$dockerfile" "$@")
  if current "$image" "$hash"; then echo "up to date: $image"; return; fi
  local context; context=$(mktemp -d)
  trap 'rm -rf "$context"' RETURN
  cp "$here/$dockerfile" "$context/Dockerfile"
  for extra in "$@"; do cp "$here/$extra" "$context/"; done
  # The machine's CA bundle, so HTTPS to the package index works inside containers here.
  cp /etc/ssl/certs/ca-certificates.crt "$context/host-ca-certificates.crt"
  "$docker_bin" build -q --build-arg "BASE=$DEBIAN" --build-arg "PYTHON=$PYTHON" --label "ichrisbirch.standin.hash=$hash" \
    -t "$image" "$context" >/dev/null
  echo "built: $image"
}

if [ "${ICB_STANDINS:-build}" = pull ]; then
  # The stacks' default references (Pulumi.yaml), pulled as they are.
  for image in python:3.12-slim-bookworm postgres:16.4-bookworm redis:7.4.1-bookworm haproxy:2.8.10-bookworm caddy:2.10.2 \
    rclone/rclone:1.75.2; do
    "$docker_bin" pull -q "$image" >/dev/null
    echo "pulled: $image"
  done
  cat <<REFS
stand-in references (stack config: pythonBaseImage, postgresImage, redisImage, haproxyImage, caddyImage, rcloneImage):
  pythonBaseImage=python:3.12-slim-bookworm
  postgresImage=postgres:16.4-bookworm
  redisImage=redis:7.4.1-bookworm
  haproxyImage=haproxy:2.8.10-bookworm
  caddyImage=caddy:2.10.2
  rcloneImage=rclone/rclone:1.75.2
REFS
  exit 0
fi

build_debian
build_on_debian "$PYTHON" python.Dockerfile
build_on_debian "$POSTGRES" postgres.Dockerfile postgres-entrypoint.sh
build_on_debian "$REDIS" redis.Dockerfile redis-entrypoint.sh
build_on_debian "$HAPROXY" haproxy.Dockerfile
build_on_debian "$CADDY" caddy.Dockerfile
# After the Python stand-in, which fetches its binary.
build_on_debian "$RCLONE" rclone.Dockerfile rclone-requirements.txt python.Dockerfile

cat <<REFS
stand-in references (stack config: pythonBaseImage, postgresImage, redisImage, haproxyImage, caddyImage, rcloneImage):
  pythonBaseImage=$PYTHON
  postgresImage=$POSTGRES
  redisImage=$REDIS
  haproxyImage=$HAPROXY
  caddyImage=$CADDY
  rcloneImage=$RCLONE
REFS
