#!/usr/bin/env bash
# Records the no-behaviour-change fixtures of the soft-RL agents: short fixed-seed runs whose
# metrics.jsonl the test `crates/softgfn-cli/tests/no_behaviour_change.rs` compares with fresh runs.
#
# Run it only to re-record deliberately (a change that is meant to move the numbers, for example
# another order of random draws), and say why in the commit. The case list is shared with the test
# through `cases.txt`: one case a line, `name|arguments`.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=crates/softgfn-cli/tests/fixtures/no_behaviour_change
cargo build --release -p softgfn-cli
bin=target/release/softgfn
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
grep -v '^#' "$dir/cases.txt" | while IFS='|' read -r name args; do
    [ -n "$name" ] || continue
    echo "== $name"
    # shellcheck disable=SC2086
    "$bin" train $args --out "$tmp/$name" --quiet --force
    # Timing fields differ from run to run; the test ignores them, so they are not kept.
    python3 - "$tmp/$name/metrics.jsonl" "$dir/$name.jsonl" <<'PY'
import json, sys
with open(sys.argv[1]) as src, open(sys.argv[2], "w") as dst:
    for line in src:
        rec = json.loads(line)
        rec.pop("wall_seconds", None)
        rec.pop("ms_per_iteration", None)
        dst.write(json.dumps(rec) + "\n")
PY
done
