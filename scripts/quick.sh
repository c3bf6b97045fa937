#!/usr/bin/env bash
# The README's main job: build the plugin libraries the quick suite loads, run the quick suite
# (every algorithm on small hypergrids and on the example plugin environment, two seeds) and write
# its report into runs/quick/ (report.md, plots/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-plugins.sh
cargo run --release -p softgfn-cli -- bench run suites/quick.toml --out runs/quick --jobs 2 --force "$@"
