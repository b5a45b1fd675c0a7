#!/bin/sh
# Training container: `dvc pull` the data version its pointers (data/raw/*.dvc, dvc.lock)
# record, then run the command (default: `dvc repro`, the whole pipeline). Arguments pass
# through unchanged; when the first one is an option (`--force`, `-s train`), it is given to
# `dvc repro`. Before `dvc repro`, as `make pipeline` does: a project whose raw data has no
# pointer yet gets the example data (written and `dvc add`ed); a pointer whose file could not
# be pulled stops here with one line naming the file.
#
#   DVC_PULL=auto  (default) pull when a default remote is configured; if the pull fails
#                  (remote not mounted, no credentials, nothing pushed yet) warn and go on.
#   DVC_PULL=1     a failed pull is an error.      DVC_PULL=0  never pull.
#   DVC_REMOTE_URL overrides the default remote's URL for this container only.
set -eu

cd "${PROJECT_ROOT:-/app}"
# The image carries no .git: DVC runs without an SCM, in this container's copy of the project.
dvc config --local core.no_scm true >/dev/null
remote=$(dvc remote default 2>/dev/null || true)
if [ -n "$remote" ] && [ -n "${DVC_REMOTE_URL:-}" ]; then
    dvc remote modify --local "$remote" url "$DVC_REMOTE_URL"
fi

case "${DVC_PULL:-auto}" in
    0 | false | no) ;;
    *)
        if [ -z "$remote" ]; then
            echo "train-entrypoint: no default DVC remote configured; not pulling" >&2
        elif [ -f dvc.lock ] || ls data/*/*.dvc >/dev/null 2>&1; then
            echo "train-entrypoint: dvc pull from remote '$remote'" >&2
            if ! dvc pull --allow-missing; then
                if [ "${DVC_PULL:-auto}" = auto ]; then
                    echo "train-entrypoint: WARNING: dvc pull failed; continuing (DVC_PULL=1 makes this fatal)" >&2
                else
                    exit 1
                fi
            fi
        else
            echo "train-entrypoint: nothing versioned yet (no dvc.lock); not pulling" >&2
        fi
        ;;
esac

if [ $# -eq 0 ]; then
    set -- dvc repro
elif [ "${1#-}" != "$1" ]; then
    set -- dvc repro "$@"
fi
if [ "$1" = dvc ] && [ "${2:-}" = repro ]; then
    python -m {{ cookiecutter.package_name }} generate --track --if-missing
fi
exec "$@"
