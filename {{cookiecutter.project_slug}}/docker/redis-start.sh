#!/bin/sh
# Redis requires a password (REDIS_PASSWORD_FILE, a Docker secret). It is written into a config
# file on the container's tmpfs, readable by the redis user only, and never appears in
# redis-server's argv. The remaining arguments (compose.yaml `command:`) pass through.
set -eu
umask 077
password=$(cat "${REDIS_PASSWORD_FILE:?set REDIS_PASSWORD_FILE}")
if [ -z "$password" ]; then
    echo "redis-start: $REDIS_PASSWORD_FILE is empty" >&2
    exit 1
fi
printf 'requirepass "%s"\n' "$password" >/tmp/redis.conf
exec redis-server /tmp/redis.conf "$@"
