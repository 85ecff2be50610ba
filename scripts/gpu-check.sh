#!/usr/bin/env bash
# `bench check` on a GPU machine that has torch (and numpy, yaml, rich...) but no network and no pydantic, typer
# of bench's version, MLflow or clean-fid: the first thing to run when a GPU is lent.
#
#   on a machine with PyPI:  uvx nox -s gpu-prepare          (the wheels bench check needs, into .whl/, ignored)
#   on the GPU machine:      OUT=/some/folder bash scripts/gpu-check.sh [bench check options]
#
# The wheels go into a temporary site-packages in front of the machine's own; bench runs from this checkout.
# The check stops within 8 minutes (`timeout 480`; its --budget skips what it has no time left for) and leaves
# check.json, check.md and check.log in $OUT. Default options: --device cuda --budget 360.
# PYTHON (default python3) and WHEELS (default .whl) name another interpreter or wheel folder (the tests do).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS:-.whl}
OUT=${OUT:-check}
mkdir -p "$OUT"
if ! compgen -G "$WHEELS/*.whl" >/dev/null; then
    echo "no wheels in $WHEELS: run \`uvx nox -s gpu-prepare\` on a machine with PyPI first" | tee "$OUT/check.log"
    exit 2
fi
SITE=$(mktemp -d "${TMPDIR:-/tmp}/bench-site.XXXXXX")
trap 'rm -rf "$SITE"' EXIT
"$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$WHEELS"/*.whl \
    2>&1 | tee "$OUT/check.log" || exit 2
export PYTHONPATH="$SITE:$PWD" PYTHONUNBUFFERED=1
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}  # idle torch threads wait without spinning (shared CPUs)
[ $# -gt 0 ] || set -- --device cuda --budget 360
{
    echo "bench $(git rev-parse --short HEAD 2>/dev/null || echo '(no git)'), $("$PYTHON" --version 2>&1)"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    timeout 480 "$PYTHON" -m bench check --out "$OUT" "$@"
} 2>&1 | tee -a "$OUT/check.log"
exit "${PIPESTATUS[0]}"
