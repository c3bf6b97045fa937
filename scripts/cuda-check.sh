#!/usr/bin/env bash
# The CUDA check of softgfn, in two halves (see book/src/gpu.md):
#
#   scripts/cuda-check.sh build   on a machine with the Rust toolchain (and no GPU needed):
#                                 builds `softgfn` and the softgfn-nn test executables with
#                                 `--features cuda` into target-cuda/, smoke-tests them on the CPU
#                                 and copies them, with a manifest, into target-cuda/carry/.
#   scripts/cuda-check.sh run     on the GPU machine (no Rust toolchain, no network), from the
#                                 repository root, with target-cuda/carry/ copied there: runs the
#                                 softgfn-nn tests with SOFTGFN_TEST_DEVICE=cuda, trains TB and
#                                 Munchausen DQN on a small hypergrid on `cuda` and on `cpu` with the
#                                 same seed, and times iterations on both devices. The report goes
#                                 to $OUT/cuda-check.txt (stdout when OUT is unset).
#
# Build-side toolkit. `build` uses, in this order: $CUDA_ROOT (a CUDA toolkit root with
# include/cuda.h and bin/nvcc), the toolkit of the `nvcc` on PATH, or else a toolkit assembled
# from NVIDIA's PyPI wheels in $SOFTGFN_CUDA_VENV (default /tmp/cuda-venv; pip needs PyPI). With
# no NVIDIA driver installed it links against a generated stub libcuda.so (every entry point
# returns CUDA_ERROR_STUB_LIBRARY), and with no `nvidia-smi` it puts a stand-in on PATH that
# reports compute capability $CUDA_COMPUTE_CAP (dfdx's build script asks nvidia-smi first).
#
# Knobs (environment): CUDA_COMPUTE_CAP (default 90, the H100/H200), CARGO_TARGET_DIR (default
# target-cuda), SOFTGFN_CUDA_VENV, SOFTGFN_CHECK_ITERATIONS (run: training iterations, default
# 500), SOFTGFN_CHECK_TIMING_ITERATIONS (run: timed iterations, default 30).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO_ROOT"

# CUDA 13.0 wheels: the libraries' sonames (libcublas.so.13, libnvrtc.so.13, libcurand.so.10)
# must match those of the GPU machine, and nvcc 13.0 writes PTX that every CUDA 13 driver can JIT.
CUDA_WHEELS=(
    nvidia-cuda-nvcc==13.0.88
    nvidia-cuda-crt==13.0.88
    nvidia-nvvm==13.0.88
    nvidia-cuda-runtime==13.0.96
    nvidia-cuda-nvrtc==13.0.88
    nvidia-cuda-cccl==13.0.85
    nvidia-cublas==13.0.2.14
    nvidia-curand==10.4.0.35
)

say() { printf '==> %s\n' "$*"; }
die() {
    printf 'cuda-check: error: %s\n' "$*" >&2
    exit 1
}

usage() {
    sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

# ---------------------------------------------------------------------------------------------
# build
# ---------------------------------------------------------------------------------------------

# Sets CUDA_ROOT to a toolkit root with include/cuda.h, bin/nvcc and the link-time libraries.
find_toolkit() {
    if [[ -n ${CUDA_ROOT:-} ]]; then
        [[ -f $CUDA_ROOT/include/cuda.h ]] || die "CUDA_ROOT=$CUDA_ROOT has no include/cuda.h"
        say "toolkit: CUDA_ROOT=$CUDA_ROOT"
    elif command -v nvcc >/dev/null 2>&1 &&
        [[ -f $(dirname "$(command -v nvcc)")/../include/cuda.h ]]; then
        CUDA_ROOT=$(cd "$(dirname "$(command -v nvcc)")/.." && pwd)
        say "toolkit: the nvcc on PATH ($CUDA_ROOT)"
    else
        toolkit_from_wheels
    fi
    [[ -x $CUDA_ROOT/bin/nvcc ]] || command -v nvcc >/dev/null 2>&1 ||
        die "no nvcc under $CUDA_ROOT/bin or on PATH"
    export CUDA_ROOT
}

# Installs the CUDA wheels into a venv and lays out a toolkit root over them.
toolkit_from_wheels() {
    local venv=${SOFTGFN_CUDA_VENV:-/tmp/cuda-venv}
    local marker=$venv/.softgfn-wheels
    if [[ ! -f $marker || $(cat "$marker") != "${CUDA_WHEELS[*]}" ]]; then
        say "installing the CUDA toolkit from PyPI wheels into $venv (about 1.2 GiB)"
        command -v python3 >/dev/null 2>&1 || die "python3 is needed to install the CUDA wheels"
        [[ -x $venv/bin/pip ]] || python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet "${CUDA_WHEELS[@]}" ||
            die "pip could not install the CUDA wheels (${CUDA_WHEELS[*]})"
        printf '%s' "${CUDA_WHEELS[*]}" >"$marker"
    fi
    local wheel_root
    wheel_root=$(ls -d "$venv"/lib/python3*/site-packages/nvidia/cu13 2>/dev/null | head -n1)
    [[ -n $wheel_root && -f $wheel_root/include/cuda.h ]] ||
        die "the wheels in $venv have no nvidia/cu13/include/cuda.h"
    # The wheels ship versioned libraries only (libcublas.so.13); the linker wants libcublas.so.
    CUDA_ROOT=$venv/cuda-root
    mkdir -p "$CUDA_ROOT/lib"
    local d f base
    for d in bin include nvvm; do
        ln -sfn "$wheel_root/$d" "$CUDA_ROOT/$d"
    done
    for f in "$wheel_root"/lib/lib*.so.*; do
        base=$(basename "$f")
        ln -sf "$f" "$CUDA_ROOT/lib/$base"
        ln -sf "$base" "$CUDA_ROOT/lib/${base%%.so.*}.so"
    done
    say "toolkit: PyPI wheels, laid out at $CUDA_ROOT"
}

# Makes sure the linker finds a libcuda.so: the driver's, the toolkit's stub, or a generated stub.
ensure_libcuda() {
    local d
    for d in lib lib64 lib64/stubs lib/stubs targets/x86_64-linux/lib \
        targets/x86_64-linux/lib/stubs; do
        if [[ -e $CUDA_ROOT/$d/libcuda.so ]]; then
            LIBCUDA_FOR_LINKING=$CUDA_ROOT/$d/libcuda.so
            say "libcuda.so for linking: $LIBCUDA_FOR_LINKING"
            return
        fi
    done
    say "no libcuda.so under $CUDA_ROOT: generating a stub (soname libcuda.so.1)"
    cargo fetch --quiet
    local sys
    sys=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -path '*/cudarc-0.9.*/src/driver/sys.rs' \
        2>/dev/null | sort | tail -n1)
    [[ -n $sys ]] || die "cannot find cudarc's src/driver/sys.rs in the cargo registry"
    local stub_dir=$CUDA_ROOT/lib64/stubs
    mkdir -p "$stub_dir"
    {
        echo '/* Link-time stand-in for libcuda.so.1; every entry point returns 34,'
        echo '   CUDA_ERROR_STUB_LIBRARY. Generated by scripts/cuda-check.sh. */'
        grep -oE 'pub fn cu[A-Za-z0-9_]+' "$sys" | sed 's/^pub fn //' | sort -u |
            sed 's/.*/int &(void) { return 34; }/'
    } >"$stub_dir/libcuda-stub.c"
    "${CC:-cc}" -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stub_dir/libcuda.so" \
        "$stub_dir/libcuda-stub.c" || die "could not compile the libcuda stub with ${CC:-cc}"
    LIBCUDA_FOR_LINKING=$stub_dir/libcuda.so
}

# dfdx's build script reads the compute capability from nvidia-smi before it looks at
# CUDA_COMPUTE_CAP, and panics when nvidia-smi is missing.
ensure_nvidia_smi() {
    if nvidia-smi --query-gpu=compute_cap --format=csv >/dev/null 2>&1; then
        return
    fi
    local shim=$CARGO_TARGET_DIR/nvidia-smi-shim
    mkdir -p "$shim"
    local cap=$CUDA_COMPUTE_CAP
    cat >"$shim/nvidia-smi" <<EOF
#!/bin/sh
# Stand-in written by scripts/cuda-check.sh for dfdx's build script (no GPU on this machine).
echo compute_cap
echo ${cap%?}.${cap#"${cap%?}"}
EOF
    chmod +x "$shim/nvidia-smi"
    export PATH=$shim:$PATH
    say "no working nvidia-smi: using a stand-in that reports compute capability $cap"
}

# Every distinct `"key":"value"` string value in cargo's JSON messages on stdin.
json_values() {
    grep -oE "\"$1\":\"[^\"]+\"" | sed -E "s/^\"$1\":\"(.*)\"$/\1/" | sort -u
}

cmd_build() {
    export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_ROOT/target-cuda}
    mkdir -p "$CARGO_TARGET_DIR"
    find_toolkit
    ensure_libcuda
    export CUDA_PATH=$CUDA_ROOT
    [[ -d $CUDA_ROOT/bin ]] && export PATH=$CUDA_ROOT/bin:$PATH
    ensure_nvidia_smi
    say "nvcc: $(nvcc --version | tail -n1)"
    say "CUDA_ROOT=$CUDA_ROOT CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP CARGO_TARGET_DIR=$CARGO_TARGET_DIR"

    local msgs=$CARGO_TARGET_DIR/cuda-check-build.json
    say "cargo build --release -p softgfn-cli --features cuda"
    cargo build --release -p softgfn-cli --features cuda \
        --message-format=json-render-diagnostics >"$msgs"
    say "cargo test --release -p softgfn-nn --features cuda --no-run"
    cargo test --release -p softgfn-nn --features cuda --no-run \
        --message-format=json-render-diagnostics >"$msgs.tests"

    local bin=$CARGO_TARGET_DIR/release/softgfn
    [[ -x $bin ]] || die "no $bin after the build"
    local tests
    mapfile -t tests < <(grep '"test":true' "$msgs.tests" | json_values executable)
    ((${#tests[@]} > 0)) || die "cargo test --no-run listed no test executables"
    local dfdx_out
    mapfile -t dfdx_out < <(cat "$msgs" "$msgs.tests" | grep '"reason":"build-script-executed"' |
        grep '/dfdx-' | json_values out_dir)
    ((${#dfdx_out[@]} > 0)) || die "cannot find the OUT_DIR of dfdx's build script"

    # Smoke test on this machine: the CPU path of the CUDA build must work, and `--device cuda`
    # must fail cleanly (the stub or a missing GPU), not crash.
    local smoke=$CARGO_TARGET_DIR/cuda-check-smoke
    rm -rf "$smoke"
    mkdir -p "$smoke/lib"
    local libs=$smoke/lib:$CUDA_ROOT/lib:$CUDA_ROOT/lib64
    # Without the NVIDIA driver, libcuda.so.1 is the stub the build linked against.
    if LD_LIBRARY_PATH=$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} ldd "$bin" |
        grep -q 'libcuda.so.1 => not found'; then
        ln -sf "$LIBCUDA_FOR_LINKING" "$smoke/lib/libcuda.so.1"
        say "no NVIDIA driver here: the smoke test loads the stub $LIBCUDA_FOR_LINKING"
    fi
    say "smoke test: softgfn train --device cpu (CUDA build)"
    LD_LIBRARY_PATH=$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$bin" train --env hypergrid \
        --algo tb --set env.dim=2 --set env.side=8 --iterations 20 --seed 1 --device cpu \
        --out "$smoke/cpu" --quiet || die "the CUDA build of softgfn failed on --device cpu"
    say "smoke test: softgfn train --device cuda (expected to fail here without a GPU)"
    local err
    if err=$(LD_LIBRARY_PATH=$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$bin" train \
        --env hypergrid --algo tb --set env.dim=2 --set env.side=8 --iterations 20 --seed 1 \
        --device cuda --out "$smoke/cuda" --quiet 2>&1); then
        say "  --device cuda worked: this machine has a GPU"
    else
        printf '    %s\n' "$err"
        grep -q 'unavailable' <<<"$err" || die "--device cuda failed without a clear message"
    fi

    # The carry: binaries (debug info stripped, to stay far below the 64 MiB limit), the dfdx
    # headers that NVRTC includes at run time, and a manifest.
    local carry=$CARGO_TARGET_DIR/carry
    rm -rf "$carry"
    mkdir -p "$carry/bin" "$carry/tests" "$carry/dfdx-include"
    cp "$bin" "$carry/bin/softgfn"
    local t
    for t in "${tests[@]}"; do
        cp "$t" "$carry/tests/"
    done
    if command -v strip >/dev/null 2>&1; then
        strip --strip-debug "$carry/bin/softgfn" "$carry"/tests/*
    fi
    cp "${dfdx_out[0]}"/*.cuh "$carry/dfdx-include/"
    {
        echo "# softgfn CUDA carry, written by scripts/cuda-check.sh build"
        echo "built_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "git_commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo '+dirty')"
        echo "nvcc=$(nvcc --version | tail -n1)"
        echo "cuda_compute_cap=$CUDA_COMPUTE_CAP"
        # Paths compiled into the binaries: NVRTC (used by a few dfdx kernels, e.g. strided
        # reshapes in the transformer) includes cuda_fp16.h from the first and dfdx's headers
        # from the others; `run` recreates them when they are missing.
        echo "cuda_include_dir=$CUDA_ROOT/include"
        for t in "${dfdx_out[@]}"; do
            echo "dfdx_out_dir=$t"
        done
        echo "needed=$(readelf -d "$bin" 2>/dev/null | sed -nE 's/.*\(NEEDED\).*\[(.*)\]$/\1/p' |
            tr '\n' ' ')"
        echo "# files"
        (cd "$carry" && find bin tests dfdx-include -type f | sort | while read -r f; do
            printf 'file=%s %s\n' "$f" "$(wc -c <"$f")"
        done)
    } >"$carry/manifest.txt"
    local size
    size=$(du -sm "$carry" | cut -f1)
    ((size < 60)) || die "the carry is ${size} MiB, over the 64 MiB a device run can take"
    say "carry ready: $carry (${size} MiB)"
    cat "$carry/manifest.txt"
    say "next, on the GPU machine, from the repository root, carrying target-cuda/carry:"
    say "  scripts/cuda-check.sh run"
}

# ---------------------------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------------------------

manifest_values() {
    grep "^$1=" "$CARRY/manifest.txt" | cut -d= -f2-
}

# Adds to LD_LIBRARY_PATH the folders that hold libraries the binary needs but cannot find.
resolve_libraries() {
    local bin=$1 missing lib dir
    missing=$(ldd "$bin" 2>/dev/null | awk '/not found/ {print $1}' || true)
    for lib in $missing; do
        dir=""
        for cand in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
            /usr/local/cuda/lib64/stubs /usr/lib/x86_64-linux-gnu /usr/lib64; do
            if [[ -e $cand/$lib ]]; then
                dir=$cand
                break
            fi
        done
        if [[ -z $dir ]] && command -v nvcc >/dev/null 2>&1; then
            cand=$(dirname "$(command -v nvcc)")/../lib64
            [[ -e $cand/$lib ]] && dir=$(cd "$cand" && pwd)
        fi
        if [[ -z $dir ]]; then
            dir=$(find / -xdev -name "$lib" -not -path '/proc/*' 2>/dev/null | head -n1 || true)
            dir=${dir:+$(dirname "$dir")}
        fi
        if [[ -n $dir ]]; then
            say "found $lib in $dir"
            case $dir in
            */stubs) say "  (a stub: the real driver library is missing; CUDA will not work)" ;;
            esac
            export LD_LIBRARY_PATH=$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
        else
            say "MISSING: $lib (the binaries cannot start without it)"
        fi
    done
}

# Recreates the paths compiled into the binaries that NVRTC reads at run time.
restore_baked_paths() {
    local inc
    inc=$(manifest_values cuda_include_dir)
    if [[ -n $inc && ! -f $inc/cuda_fp16.h ]]; then
        local real=""
        for cand in /usr/local/cuda/include /usr/local/cuda/targets/x86_64-linux/include; do
            [[ -f $cand/cuda_fp16.h ]] && real=$cand && break
        done
        if [[ -z $real ]] && command -v nvcc >/dev/null 2>&1; then
            cand=$(dirname "$(command -v nvcc)")/../include
            [[ -f $cand/cuda_fp16.h ]] && real=$(cd "$cand" && pwd)
        fi
        if [[ -n $real ]] && mkdir -p "$(dirname "$inc")" 2>/dev/null &&
            ln -sfn "$real" "$inc" 2>/dev/null; then
            say "linked $inc -> $real (CUDA headers for NVRTC)"
        else
            say "WARNING: cannot provide $inc (CUDA headers): NVRTC-compiled kernels may fail"
        fi
    fi
    local out
    while read -r out; do
        [[ -n $out ]] || continue
        if [[ ! -f $out/cuda_utils.cuh ]]; then
            if mkdir -p "$out" 2>/dev/null && cp "$CARRY"/dfdx-include/*.cuh "$out/"; then
                say "restored dfdx headers in $out"
            else
                say "WARNING: cannot write $out: NVRTC-compiled kernels may fail"
            fi
        fi
    done < <(manifest_values dfdx_out_dir)
}

# Reads `"key": number` from a pretty-printed summary.json.
summary_value() {
    sed -nE "s/^ *\"$2\": *([-0-9.eE+]+|null),?$/\1/p" "$1" | tail -n1
}

# train NAME DEVICE ARGS...: one quiet run into $WORK/NAME-DEVICE; prints nothing on success.
train() {
    local name=$1 device=$2
    shift 2
    local dir=$WORK/$name-$device
    local start end rc=0
    start=$(date +%s.%N)
    "$CARRY/bin/softgfn" train --device "$device" --out "$dir" --force --quiet "$@" \
        >"$dir.log" 2>&1 || rc=$?
    if ((rc != 0)); then
        printf '  %-34s %-6s FAILED (exit %s):\n' "$name" "$device" "$rc"
        sed 's/^/      /' "$dir.log" | tail -n 20
        FAILURES=$((FAILURES + 1))
        return 1
    fi
    end=$(date +%s.%N)
    WALL=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
    if [[ -n ${OUT:-} ]]; then
        mkdir -p "$OUT/runs/$name-$device"
        cp "$dir"/summary.json "$dir"/config.toml "$dir"/metrics.jsonl "$OUT/runs/$name-$device/"
    fi
}

run_body() {
    say "softgfn CUDA check, $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
    [[ -f $CARRY/manifest.txt ]] ||
        die "no $CARRY/manifest.txt: run 'scripts/cuda-check.sh build' first and carry target-cuda/carry"
    sed -n '1,/^# files/p' "$CARRY/manifest.txt" | sed 's/^/    /'
    say "GPU"
    nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv 2>&1 |
        sed 's/^/    /' || say "nvidia-smi failed"
    command -v nvcc >/dev/null 2>&1 && nvcc --version | tail -n1 | sed 's/^/    nvcc: /'
    say "shared libraries"
    resolve_libraries "$CARRY/bin/softgfn"
    ldd "$CARRY/bin/softgfn" | grep -E 'cuda|cublas|curand|nvrtc|not found' | sed 's/^/    /'
    restore_baked_paths

    FAILURES=0
    say "softgfn-nn tests with SOFTGFN_TEST_DEVICE=cuda"
    local t rc
    for t in "$CARRY"/tests/*; do
        if SOFTGFN_TEST_DEVICE=cuda "$t" --test-threads=4 >"$WORK/$(basename "$t").log" 2>&1; then
            rc=0
        else
            rc=$?
            FAILURES=$((FAILURES + 1))
        fi
        printf '  %-40s %s\n' "$(basename "$t")" \
            "$(grep -E '^test result:' "$WORK/$(basename "$t").log" | tail -n1 || echo "exit $rc")"
        if ((rc != 0)); then
            grep -E -A12 '^(failures:|---- )' "$WORK/$(basename "$t").log" | head -n 60 |
                sed 's/^/      /'
        fi
    done

    local iters=${SOFTGFN_CHECK_ITERATIONS:-500}
    say "training agreement: hypergrid dim 2 side 8, $iters iterations, seed 7, cuda vs cpu"
    say "  (the two devices round differently, so the runs drift apart; the final exact_l1 values"
    say "   should be of the same size, not equal)"
    printf '  %-16s %-6s %12s %10s %14s\n' algo device exact_l1 wall_s ms/iteration
    local algo device
    for algo in tb munchausen_dqn; do
        for device in cuda cpu; do
            if train "agree-$algo" "$device" --env hypergrid --algo "$algo" --set env.dim=2 \
                --set env.side=8 --iterations "$iters" --seed 7; then
                local s=$WORK/agree-$algo-$device/summary.json
                printf '  %-16s %-6s %12s %10s %14s\n' "$algo" "$device" \
                    "$(summary_value "$s" exact_l1)" "$WALL" \
                    "$(summary_value "$s" median_ms_per_iteration)"
            fi
        done
    done

    local titers=${SOFTGFN_CHECK_TIMING_ITERATIONS:-30}
    say "timing: hypergrid dim 4 side 20, $titers iterations (median ms per iteration; no exact eval)"
    printf '  %-16s %6s %14s %14s\n' algo traj/it cuda_ms cpu_ms
    local n
    for algo in tb munchausen_dqn; do
        for n in 16 256; do
            local ms_cuda=FAILED ms_cpu=FAILED
            for device in cuda cpu; do
                if train "time-$algo-$n" "$device" --env hypergrid --algo "$algo" \
                    --set env.dim=4 --set env.side=20 --set eval.exact=false \
                    --set algo.trajectories_per_iteration="$n" --iterations "$titers" --seed 7; then
                    local v
                    v=$(summary_value "$WORK/time-$algo-$n-$device/summary.json" \
                        median_ms_per_iteration)
                    if [[ $device == cuda ]]; then ms_cuda=$v; else ms_cpu=$v; fi
                fi
            done
            printf '  %-16s %6s %14s %14s\n' "$algo" "$n" "$ms_cuda" "$ms_cpu"
        done
    done

    if ((FAILURES == 0)); then
        say "cuda-check: all passed"
    else
        say "cuda-check: $FAILURES failure(s) (see above)"
        return 1
    fi
}

cmd_run() {
    CARRY=${SOFTGFN_CUDA_CARRY:-$REPO_ROOT/target-cuda/carry}
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/softgfn-cuda-check.XXXXXX")
    if [[ -n ${OUT:-} ]]; then
        mkdir -p "$OUT"
        run_body 2>&1 | tee "$OUT/cuda-check.txt"
    else
        run_body
    fi
}

case ${1:-} in
build) cmd_build ;;
run) cmd_run ;;
-h | --help | help) usage 0 ;;
*) usage 2 >&2 ;;
esac
