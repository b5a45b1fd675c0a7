#!/bin/sh
# Runs once, when the Postgres volume is initialised (/docker-entrypoint-initdb.d): creates
# the databases listed in EXTRA_DATABASES (tracking server, Optuna studies), owned by
# POSTGRES_USER, beside POSTGRES_DB (the prediction log).
set -eu
for database in ${EXTRA_DATABASES:-}; do
    echo "create-databases: $database"
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
        -c "CREATE DATABASE \"$database\" OWNER \"$POSTGRES_USER\""
done
