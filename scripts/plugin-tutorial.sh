#!/usr/bin/env bash
# The Plugins chapter of the book (book/src/plugins.md, book/src/plugins/*.md), executed.
#
# It runs the chapter's steps in its order on the tutorial plugin book/tutorial/my-plugin (a cargo
# project of its own, with its own Cargo.lock and target dir, not a member of softgfn's workspace):
# test and build the plugin, list it, check it, train and benchmark on it, and call it from C
# through the ABI header. The chapter shows these commands with {{#include ...:ANCHOR}} from this
# file, so the commands shown are the commands run. Every line of output that the chapter shows,
# and every error message its Troubleshooting page quotes, must be a line of the chapter as
# printed here (paths shortened to /path/to/...): a change of the CLI's output fails this script
# until the book follows. Any failing step fails the script.
#
# Usage: bash scripts/plugin-tutorial.sh   (from anywhere; .ci/run runs it)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd -P)"
cd "$root"
export CARGO_TERM_COLOR=never
unset SOFTGFN_PLUGIN_PATH
chapter=("$root/book/src/plugins.md" "$root"/book/src/plugins/*.md)
out="$(cd "$(mktemp -d)" && pwd -P)"
trap 'rm -rf "$out"' EXIT

echo "== plugin tutorial: the softgfn binary on PATH (what cargo install --path crates/softgfn-cli gives)"
cargo build --release -p softgfn-cli
export PATH="$root/target/release:$PATH"
echo "== plugin tutorial: the fixture plugins of the Troubleshooting page"
bash scripts/build-plugins.sh
fixtures="$root/target/plugins/release"

cd book/tutorial/my-plugin
tutorial="$PWD"
rm -rf runs # the results of an earlier run of this script

# Shortens the machine's paths as the chapter writes them.
redact() {
    sed -e "s|$fixtures/|/path/to/|g" -e "s|$tutorial|/path/to/my-plugin|g" -e "s|$out|/path/to/other|g"
}

# shown FILE: every line of FILE (redacted) is a whole line of the chapter.
shown() {
    local line
    while IFS= read -r line; do
        if ! grep -qxF -- "$line" "${chapter[@]}"; then
            echo "plugin-tutorial: the Plugins chapter does not show this line of output; update it:"
            echo "$line"
            exit 1
        fi
    done < <(redact <"$1")
}

# fails_with CMD...: CMD exits with status 1 (an error, not a crash) and the chapter quotes its
# message.
fails_with() {
    local rc=0
    "$@" >"$out/stdout" 2>"$out/stderr" || rc=$?
    if [ "$rc" -ne 1 ]; then
        echo "plugin-tutorial: expected exit status 1, got $rc: $*"
        cat "$out/stdout" "$out/stderr"
        exit 1
    fi
    redact <"$out/stderr"
    shown "$out/stderr"
}

echo "== plugin tutorial: test and build the plugin"
# ANCHOR: test
cargo test --release
# ANCHOR_END: test
# The same crate in a folder of its own, outside softgfn's workspace, naming this checkout's crates
# by path as the chapter recommends (`path = "/.../crates/softgfn-core"`), without the `[workspace]`
# table: it must build and pass its test as it is.
alone="$out/my-plugin"
mkdir "$alone"
cp -r src Cargo.lock "$alone/"
sed -e "s|path = \"../../../crates/|path = \"$root/crates/|" -e '/^\[workspace\]$/d' Cargo.toml \
    >"$alone/Cargo.toml"
grep -q "softgfn-plugin = { path = \"$root/crates/softgfn-plugin\" }" "$alone/Cargo.toml"
CARGO_TARGET_DIR="$tutorial/target" cargo test --release --manifest-path "$alone/Cargo.toml"
# ANCHOR: build
cargo build --release --features dynamic
# ANCHOR_END: build
test -f target/release/libmy_plugin.so

echo "== plugin tutorial: load and check it"
{
# ANCHOR: list
softgfn --plugin target/release/libmy_plugin.so plugins list
# ANCHOR_END: list
} | tee "$out/list"
shown "$out/list"
{
# ANCHOR: check
softgfn plugins check target/release/libmy_plugin.so
# ANCHOR_END: check
} | tee "$out/check"
shown "$out/check"
{
# ANCHOR: check-env
softgfn check-env --plugin target/release/libmy_plugin.so --env my-plugin/words --set env.max_len=8
# ANCHOR_END: check-env
} | tee "$out/check-env"
shown "$out/check-env"

echo "== plugin tutorial: train on it"
# ANCHOR: train
softgfn train --plugin target/release/libmy_plugin.so --env my-plugin/words --algo tb \
    --iterations 1000 --seed 1 --out runs/words-tb
# ANCHOR_END: train
grep -q '"iteration":1000,.*"exact_l1":[0-9]' runs/words-tb/metrics.jsonl
grep -q 'name = "my-plugin/words"' runs/words-tb/config.toml

echo "== plugin tutorial: benchmark it"
# ANCHOR: bench
softgfn bench run bench.toml --out runs/bench --jobs 2
# ANCHOR_END: bench
test -s runs/bench/report.md
grep -q '^## words-8' runs/bench/report.md
test -s runs/bench/plots/words-5/exact_l1_vs_trajectories.svg

echo "== plugin tutorial: the ABI from C"
# ANCHOR: c-host
cc -std=c11 -Wall -Wextra -Werror -o target/host abi/host.c -ldl
target/host target/release/libmy_plugin.so
# ANCHOR_END: c-host
target/host target/release/libmy_plugin.so >"$out/host"
shown "$out/host"
sed -n 's/^manifest: //p' "$out/host" | python3 -m json.tool --indent 2 >"$out/manifest"
shown "$out/manifest"
# The header declares exactly the symbols that softgfn-plugin names and that the plugin exports.
grep -o 'softgfn_plugin_[a-z_]*(' abi/softgfn_plugin.h | tr -d '(' | sort >"$out/header-symbols"
grep -o '"softgfn_plugin_[a-z_]*"' "$root/crates/softgfn-plugin/src/abi.rs" | tr -d '"' | sort \
    >"$out/abi-symbols"
nm -D --defined-only target/release/libmy_plugin.so | awk '{print $3}' | grep '^softgfn_plugin_' \
    | sort >"$out/exported-symbols"
diff "$out/abi-symbols" "$out/header-symbols"
diff "$out/abi-symbols" "$out/exported-symbols"
# ... and the chapter's table of symbols lists each of them.
while read -r sym; do
    grep -q "^| \`$sym\` |" "${chapter[@]}" || { echo "plugin-tutorial: the ABI table lacks $sym"; exit 1; }
done <"$out/abi-symbols"

echo "== plugin tutorial: the Troubleshooting messages are the real ones"
fails_with softgfn check-env --plugin target/release/libmy_plugn.so --env my-plugin/words
fails_with softgfn plugins check "$fixtures/libsoftgfn_plugin_fixture_not_a_plugin.so"
fails_with softgfn plugins check "$fixtures/libsoftgfn_plugin_fixture_wrong_abi.so"
fails_with softgfn plugins check "$fixtures/libsoftgfn_plugin_fixture_old_softgfn.so"
fails_with softgfn plugins check "$fixtures/libsoftgfn_plugin_fixture_bad_manifest.so"
mkdir "$out/copy" && cp target/release/libmy_plugin.so "$out/copy/"
fails_with softgfn --plugin target/release/libmy_plugin.so --plugin "$out/copy/libmy_plugin.so" \
    check-env --env my-plugin/words
fails_with softgfn --plugin "$fixtures/libsoftgfn_hypergrid.so" check-env --env hypergrid
fails_with softgfn check-env --plugin target/release/libmy_plugin.so --env my-plugin/words \
    --set env.max_len=0
fails_with softgfn check-env --plugin target/release/libmy_plugin.so --env my-plugin/words \
    --set env.maxlen=3
fails_with softgfn check-env --plugin "$fixtures/libsoftgfn_plugin_fixture_panics.so" --env boom

echo "== plugin tutorial: done"
