#!/bin/sh
# install-deps GROUP: the project's dependencies plus one dependency group into /opt/venv.
# Runs inside docker/Dockerfile's deps-* stages (uv mounted at /usr/local/bin/uv, the uv cache
# as a BuildKit cache mount, pyproject.toml and uv.lock* in the working directory).
set -eu
group=$1
# An empty UV_INDEX build arg means "the indexes of pyproject.toml".
if [ -z "${UV_INDEX:-}" ]; then unset UV_INDEX; fi

if [ -f uv.lock ]; then
    # The project itself is not installed: the images run it from /app/src (PYTHONPATH).
    uv sync --frozen --no-install-project --no-default-groups --group "$group"
else
    echo "WARNING: no uv.lock in the build context: resolving '$group' now, so this image is" \
         "not reproducible. Run 'uv lock' (or 'make install') and commit uv.lock." >&2
    uv venv "$UV_PROJECT_ENVIRONMENT"
    uv pip install --python "$UV_PROJECT_ENVIRONMENT/bin/python" -r pyproject.toml --group "$group"
fi
