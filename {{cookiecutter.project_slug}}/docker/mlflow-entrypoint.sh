#!/bin/sh
# MLflow tracking server: backend store on Postgres (database MLFLOW_DATABASE), artifacts
# proxied by the server and stored in /mlartifacts (a named volume), logins required when
# MLFLOW_AUTH_CONFIG_PATH names the basic-auth config (compose.yaml sets it). The password arrives as
# PGPASSWORD (see entrypoint.sh), never in the URI or the command line.
#
# MLflow answers 403 to Host headers it does not know: MLFLOW_ALLOWED_HOSTS must admit the
# Compose service name (what the other containers use) and the published address.
set -eu

: "${POSTGRES_USER:?POSTGRES_USER is not set}"
: "${PGPASSWORD:?set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE}"
host=${POSTGRES_HOST:-db}
port=${POSTGRES_PORT:-5432}
database=${MLFLOW_DATABASE:-mlflow}

# Authentication (MLflow's basic-auth app, docker/mlflow/basic_auth.ini): the identities get
# their passwords from the secrets, then the passwords leave the environment of the server.
if [ -n "${MLFLOW_AUTH_CONFIG_PATH:-}" ]; then
    : "${MLFLOW_AUTH_ADMIN_PASSWORD:?set MLFLOW_AUTH_ADMIN_PASSWORD_FILE}"
    : "${MLFLOW_TRAINING_PASSWORD:?set MLFLOW_TRAINING_PASSWORD_FILE}"
    : "${MLFLOW_SERVING_PASSWORD:?set MLFLOW_SERVING_PASSWORD_FILE}"
    python /usr/local/lib/mlflow-users.py
    unset MLFLOW_AUTH_ADMIN_PASSWORD MLFLOW_TRAINING_PASSWORD MLFLOW_SERVING_PASSWORD
    set -- --app-name basic-auth "$@"
fi

exec mlflow server \
    --backend-store-uri "postgresql+psycopg://${POSTGRES_USER}@${host}:${port}/${database}" \
    --artifacts-destination /mlartifacts \
    --serve-artifacts \
    --host 0.0.0.0 \
    --port 5000 \
    --workers "${MLFLOW_WORKERS:-1}" \
    --allowed-hosts "${MLFLOW_ALLOWED_HOSTS:-mlflow,mlflow:5000,localhost,localhost:*,127.0.0.1,127.0.0.1:*}" \
    "$@"
