#!/bin/sh
# As the official image: redis-server runs as the redis user, owning /data.
set -e
if [ "${1:-}" = "redis-server" ] && [ "$(id -u)" = "0" ]; then
  find . \! -user redis -exec chown redis '{}' +
  exec gosu redis "$0" "$@"
fi
exec "$@"
