#!/usr/bin/env bash
# The softgfn peer comparison: softgfn, gfnx 0.0.1 and torchgfn 2.4.1 on the same settings, one
# process at a time, pinned to one core, one thread; the report goes to docs/results/peers/.
# Not run by CI. See scripts/peers/README.md.
#
#   scripts/peers/run.sh                       # everything, 2,000 iterations per run
#   scripts/peers/run.sh --iterations 20       # a smoke run (its report says it is no measurement)
#   scripts/peers/run.sh --tasks tb_hypergrid --libraries softgfn,gfnx --out /tmp/peers
#
# Options are those of compare.py (--iterations, --seed, --cpu, --tasks, --libraries, --out,
# --timeout, --no-exact). Environment: PYTHON (default python3, 3.10 to 3.12), PEERS_VENV
# (default target/peers-venv), PEERS_TORCH_INDEX (a pip index URL with CPU-only torch wheels;
# unset: torch comes from PyPI with its CUDA libraries, a download of about 3 GB).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${PEERS_VENV:-$ROOT/target/peers-venv}"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION=2.15.0

"$PYTHON" -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 12))' || {
    echo "run.sh: $PYTHON is $("$PYTHON" -V 2>&1); the pinned wheels need Python 3.10 to 3.12" >&2
    exit 2
}
command -v taskset >/dev/null || { echo "run.sh: taskset (util-linux) is needed" >&2; exit 2; }

# Makes $VENV/<library> from the pinned requirements, unless it already holds exactly them.
make_venv() {
    local lib="$1" dir="$VENV/$1" stamp
    stamp="$({ cat "$HERE/requirements-$lib.txt" "$HERE/constraints-torch-pypi.txt"
               echo "$TORCH_VERSION ${PEERS_TORCH_INDEX:-pypi} $("$PYTHON" -V 2>&1)"; } |
             sha256sum | cut -c1-16)"
    if [[ -f "$dir/.peers-stamp" && "$(cat "$dir/.peers-stamp")" == "$stamp" ]]; then
        return
    fi
    echo "run.sh: creating the $lib environment in $dir"
    rm -rf "$dir"
    "$PYTHON" -m venv "$dir"
    if [[ "$lib" == torchgfn ]]; then
        if [[ -n "${PEERS_TORCH_INDEX:-}" ]]; then
            "$dir/bin/python" -m pip install --quiet "torch==$TORCH_VERSION" \
                --index-url "$PEERS_TORCH_INDEX"
        else
            "$dir/bin/python" -m pip install --quiet "torch==$TORCH_VERSION" \
                -c "$HERE/constraints-torch-pypi.txt"
        fi
    fi
    "$dir/bin/python" -m pip install --quiet -r "$HERE/requirements-$lib.txt"
    echo "$stamp" > "$dir/.peers-stamp"
}

libraries="softgfn,gfnx,torchgfn"
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[$i]}" in
        --libraries) libraries="${args[$((i + 1))]:-}" ;;
        --libraries=*) libraries="${args[$i]#--libraries=}" ;;
    esac
done
for lib in gfnx torchgfn; do
    if [[ ",$libraries," == *",$lib,"* ]]; then
        make_venv "$lib"
        "$VENV/$lib/bin/python" "$HERE/test_common.py" >/dev/null
    fi
done
if [[ ",$libraries," == *",softgfn,"* ]]; then
    (cd "$ROOT" && cargo build --release --quiet -p softgfn-cli --bin softgfn)
fi
exec "$PYTHON" "$HERE/compare.py" --venv "$VENV" "$@"
