#!/usr/bin/env bash
# Builds the plugin libraries that the tests and the bench load, into target/plugins/release/:
# the hypergrid, the sEH fragment-block molecules (sehfrag), the molecule strings (molstr) and the
# example sets plugin with their `dynamic` feature (which exports the C ABI), and the fixture
# libraries of crates/softgfn-plugin/fixtures (abi-v1 is a plugin of ABI version 1).
#
# They are built before `cargo test`, in a target dir of their own: building a cdylib from inside
# `cargo test` deadlocks on cargo's build-directory lock, and a `--features dynamic` build in the
# main target dir is overwritten by the feature-less build of `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_TARGET_DIR=target/plugins cargo build --release \
    -p softgfn-hypergrid \
    -p softgfn-sets \
    -p softgfn-sehfrag \
    -p softgfn-molstr \
    -p softgfn-plugin-fixture-wrong-abi \
    -p softgfn-plugin-fixture-not-a-plugin \
    -p softgfn-plugin-fixture-bad-manifest \
    -p softgfn-plugin-fixture-old-softgfn \
    -p softgfn-plugin-fixture-panics \
    -p softgfn-plugin-fixture-abi-v1 \
    --features softgfn-hypergrid/dynamic,softgfn-sets/dynamic,softgfn-sehfrag/dynamic,softgfn-molstr/dynamic \
    "$@"
