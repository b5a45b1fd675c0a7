#!/bin/sh
# Write the secrets of compose.prod.yaml to ./secrets/ from the values in .env (run once on the
# production host; afterwards remove the secret lines from .env). Existing files are kept.
# The folder is private to its owner; the files stay world-readable because Compose bind-mounts
# them unchanged into containers that run as non-root users.
set -eu
cd "$(dirname "$0")/.."
umask 022
mkdir -p secrets
chmod 700 secrets
for pair in POSTGRES_PASSWORD:postgres_password ADMIN_TOKEN:admin_token \
            GRAFANA_ADMIN_PASSWORD:grafana_admin_password; do
    var=${pair%%:*}
    file=secrets/${pair#*:}
    if [ -s "$file" ]; then
        echo "keep    $file"
        continue
    fi
    value=$(sed -n "s/^${var}=//p" .env 2>/dev/null | tail -n 1)
    if [ -z "$value" ]; then
        if [ "$var" = GRAFANA_ADMIN_PASSWORD ]; then continue; fi
        value=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
        echo "random  $file ($var is not in .env)"
    else
        echo "from .env $file"
    fi
    printf '%s' "$value" >"$file"
done
