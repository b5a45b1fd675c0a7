#!/bin/sh
# The secrets step (make prod-secrets): every secret that compose.yaml mounts is a file
# secrets/<key in lower case>; the keys are those with a `change-me` placeholder in
# .env.example. A missing file is written from .env (the generator's random values) or, when
# .env has none, from a fresh random value. A placeholder, a value under 24 characters or a guessable one, in a
# file or in .env, is refused: nothing is started with a guessable secret. The rule is the
# settings' own (src/{{ cookiecutter.package_name }}/secret_policy.py, run here with the value on stdin, never in argv);
# a weak value is refused, not replaced, because Postgres keeps the password it was first
# started with and .env feeds the host tools (make reload).
# The folder is private to its owner; the files stay world-readable because Compose bind-mounts
# them unchanged into containers that run as other non-root users.
set -eu
cd "$(dirname "$0")/.."
POLICY=src/{{ cookiecutter.package_name }}/secret_policy.py
umask 022
mkdir -p secrets
chmod 700 secrets
failed=0
refuse() {
    echo "refused $1: $2 ($3, e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))')" >&2
    failed=1
}
for var in $(sed -n 's/^\([A-Z][A-Z0-9_]*\)=change-me$/\1/p' .env.example); do
    file=secrets/$(echo "$var" | tr 'A-Z' 'a-z')
    if [ -e "$file" ]; then
        if reason=$(python3 -I -S "$POLICY" <"$file"); then
            echo "keep      $file"
        else
            refuse "$file" "$reason" "write a random value into it"
        fi
        continue
    fi
    value=$(sed -n "s/^${var}=//p" .env 2>/dev/null | tail -n 1)
    if [ -z "$value" ]; then
        value=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
        echo "random    $file ($var is not in .env)"
    elif ! reason=$(printf '%s' "$value" | python3 -I -S "$POLICY"); then
        refuse "$var in .env" "$reason" "delete the line for a random value, or write one"
        continue
    else
        echo "from .env $file"
    fi
    printf '%s' "$value" >"$file"
done
exit "$failed"
