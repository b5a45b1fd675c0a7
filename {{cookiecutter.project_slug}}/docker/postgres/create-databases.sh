#!/bin/sh
# Runs once, when the Postgres volume is initialised (/docker-entrypoint-initdb.d): one role per
# identity, each owning only its own database, so no container shares the superuser.
#
#   role     database(s)            used by          may
#   mlflow   mlflow, mlflow_auth    mlflow           everything in its databases
#   optuna   optuna                 training, tuner  everything in its database
#   migrate  POSTGRES_DB            migrate          owns the prediction-log schema (DDL)
#   serving  POSTGRES_DB            serving          INSERT into the tables migrate creates
#
# Passwords come from the *_PASSWORD_FILE secrets and reach psql through its environment
# (\getenv), never its argv. A role without its password file is skipped (optional services).
# Other databases refuse connections from every role but their owner (REVOKE ... FROM PUBLIC),
# the maintenance databases postgres and template1 included, and no role but an owner may
# create TEMP tables (tests/test_database_privileges.py runs this script as written).
set -eu

run_sql() {
    database=$1
    shift
    psql -v ON_ERROR_STOP=1 --quiet --username "$POSTGRES_USER" --dbname "$database" "$@"
}

# create_role NAME PASSWORD_FILE
create_role() {
    ROLE_PASSWORD=$(cat "$2")
    export ROLE_PASSWORD
    echo "create-databases: role $1"
    run_sql "$POSTGRES_DB" <<SQL
\getenv role_password ROLE_PASSWORD
CREATE ROLE "$1" LOGIN PASSWORD :'role_password';
SQL
    unset ROLE_PASSWORD
}

# create_database NAME OWNER
create_database() {
    echo "create-databases: database $1 (owner $2)"
    run_sql "$POSTGRES_DB" <<SQL
CREATE DATABASE "$1" OWNER "$2";
REVOKE ALL ON DATABASE "$1" FROM PUBLIC;
SQL
}

# Without role passwords (deploy/k8s/overlays/dev: one database user), only the databases
# named in EXTRA_DATABASES, owned by POSTGRES_USER.
if [ -z "${MLFLOW_DB_PASSWORD_FILE:-}" ]; then
    for database in ${EXTRA_DATABASES:-}; do
        create_database "$database" "$POSTGRES_USER"
    done
    exit 0
fi

# PUBLIC (every role) may connect to and create TEMP tables in postgres and template1 by
# default; only the superuser needs them. (template0 accepts no connections at all.)
run_sql "$POSTGRES_DB" <<SQL
REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC;
REVOKE CONNECT, TEMPORARY ON DATABASE template1 FROM PUBLIC;
SQL

create_role mlflow "$MLFLOW_DB_PASSWORD_FILE"
create_database mlflow mlflow
create_database mlflow_auth mlflow

create_role optuna "$OPTUNA_DB_PASSWORD_FILE"
create_database optuna optuna

if [ -n "${MIGRATE_DB_PASSWORD_FILE:-}" ]; then
    create_role migrate "$MIGRATE_DB_PASSWORD_FILE"
    create_role serving "$SERVING_DB_PASSWORD_FILE"
    echo "create-databases: database $POSTGRES_DB (owner migrate; serving may INSERT)"
    # PUBLIC loses CONNECT and the public schema (its owner is the database owner, migrate);
    # serving gets CONNECT, USAGE and, through default privileges, INSERT on every table and
    # USAGE on every sequence (the id column) that migrate creates later. No SELECT: the
    # writer only inserts.
    run_sql "$POSTGRES_DB" <<SQL
ALTER DATABASE "$POSTGRES_DB" OWNER TO migrate;
REVOKE ALL ON DATABASE "$POSTGRES_DB" FROM PUBLIC;
GRANT CONNECT ON DATABASE "$POSTGRES_DB" TO serving;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO serving;
ALTER DEFAULT PRIVILEGES FOR ROLE migrate IN SCHEMA public GRANT INSERT ON TABLES TO serving;
ALTER DEFAULT PRIVILEGES FOR ROLE migrate IN SCHEMA public GRANT USAGE ON SEQUENCES TO serving;
SQL
else
    run_sql "$POSTGRES_DB" -c "REVOKE ALL ON DATABASE \"$POSTGRES_DB\" FROM PUBLIC"
fi
