#!/bin/sh
# The tracking server's packages (dependency group mlflow-server of pyproject.toml) into
# /opt/venv, from uv.lock: exported with every hash the lock records, installed with
# --require-hashes, so a file whose hash is not the lock's is refused. The MLflow version is
# the one pinned in that group, which the same lock gives the project's clients.
# Runs in docker/Dockerfile's deps-mlflow stage (uv mounted at /usr/local/bin/uv,
# pyproject.toml and uv.lock* in the working directory).
set -eu
if [ -z "${UV_INDEX:-}" ]; then unset UV_INDEX; fi
uv venv --python /usr/local/bin/python3 /opt/venv
if [ -f uv.lock ]; then
    uv export --frozen --only-group mlflow-server --no-emit-project --no-header \
        --output-file /tmp/mlflow-requirements.txt >/dev/null
    uv pip install --python /opt/venv/bin/python --require-hashes --no-deps \
        -r /tmp/mlflow-requirements.txt
else
    echo "WARNING: no uv.lock in the build context: resolving 'mlflow-server' now, so this" \
         "image is not reproducible. Run 'uv lock' (or 'make install') and commit uv.lock." >&2
    uv pip install --python /opt/venv/bin/python --group mlflow-server
fi
