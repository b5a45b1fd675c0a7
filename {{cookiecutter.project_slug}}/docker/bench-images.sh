#!/bin/sh
# make bench-images: sizes of the serve and train images, the cold build time (no layer cache;
# uv's download cache stays warm) and the rebuild time after a code-only change.
# Works on a copy of the project with its own image tags, so your images stay as they are.
set -eu
COMPOSE=${COMPOSE:-docker compose}
cd "$(dirname "$0")/.."
project=$(basename "$PWD")
copy=$(mktemp -d)
trap 'rm -rf "$copy"' EXIT
tar --exclude=./.git --exclude=./.venv --exclude=./data --exclude=./models \
    --exclude=./reports --exclude='*.db' -cf - . | tar -xf - -C "$copy"
cd "$copy"

now() { python3 -c 'import time; print(time.time())'; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$2"; }
build() {  # TAG [ARGS...]
    tag=$1; shift
    IMAGE_TAG=$tag $COMPOSE -p "$project-bench" --profile train build "$@" serving training >/dev/null
}

t0=$(now); build bench-cold --no-cache; t1=$(now)
pkg=$(ls src | head -n 1)
echo "# code-only change for make bench-images" >>"src/$pkg/__init__.py"
t2=$(now); build bench; t3=$(now)

compute=$(sed -n 's/^COMPUTE=//p' .env 2>/dev/null | tail -n 1)
serve_image="$project-serve:bench"
train_image="$project-train-${compute:-cpu}:bench"
serve=$(docker image inspect -f '{% raw %}{{.Size}}{% endraw %}' "$serve_image")
train=$(docker image inspect -f '{% raw %}{{.Size}}{% endraw %}' "$train_image")
python3 - "$serve" "$train" <<PY
import sys
serve, train = (int(v) for v in sys.argv[1:3])
print(f"serve image  {serve / 1e6:8.1f} MB")
print(f"train image  {train / 1e6:8.1f} MB")
print(f"serve/train  {serve / train:8.1%}   (goal: at most 40%)")
PY
echo "cold build (serve + train, no layer cache): $(elapsed "$t0" "$t1") s"
echo "rebuild after a code-only change:          $(elapsed "$t2" "$t3") s"
docker image rm "$project-serve:bench-cold" "$project-serve:bench" \
    "$project-train-${compute:-cpu}:bench-cold" "$train_image" >/dev/null 2>&1 || true
