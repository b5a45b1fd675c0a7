#!/bin/sh
# Entrypoint of every image of the project: turns Docker secrets into the environment, then
# runs the command.
#
# For each NAME_FILE variable that names a Docker secret (a file under /run/secrets/:
# POSTGRES_PASSWORD_FILE, ADMIN_TOKEN_FILE, ...) NAME is set from the file unless NAME is
# already non-empty; ADMIN_TOKEN_FILE, REDIS_PASSWORD_FILE and CACHE_HMAC_KEY_FILE are left for
# the application, which reads those files itself (the values never enter its environment, and
# the Redis client takes the password as an argument, not in REDIS_URL). Other *_FILE variables
# (SSL_CERT_FILE, ...) are left alone. The Postgres password is exported as PGPASSWORD, which
# libpq (psycopg) reads, so database URLs never carry it.
set -eu

for name in $(env | sed -n 's/^\([A-Z][A-Z0-9_]*\)_FILE=.*/\1/p'); do
    eval "file=\${${name}_FILE}"
    eval "current=\${${name}:-}"
    case "$file" in
        /run/secrets/*) ;;
        *) continue ;;
    esac
    # Read as a file by the application itself (settings.py: every setting takes <NAME>_FILE),
    # so the value never enters a process environment.
    case "$name" in
        ADMIN_TOKEN | REDIS_PASSWORD | CACHE_HMAC_KEY) continue ;;
    esac
    if [ -n "$current" ]; then
        continue
    fi
    if [ ! -r "$file" ]; then
        echo "entrypoint: ${name}_FILE=$file is not a readable file" >&2
        exit 1
    fi
    value=$(cat "$file")
    if [ -z "$value" ]; then
        echo "entrypoint: ${name}_FILE=$file is empty" >&2
        exit 1
    fi
    export "$name=$value"
    unset "${name}_FILE"
done

if [ -n "${POSTGRES_PASSWORD:-}" ] && [ -z "${PGPASSWORD:-}" ]; then
    export PGPASSWORD="$POSTGRES_PASSWORD"
fi
unset POSTGRES_PASSWORD

exec "$@"
