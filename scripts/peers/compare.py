#!/usr/bin/env python3
"""Runs the softgfn peer comparison and writes its report (standard library only).

Called by run.sh after it has made the virtual environments and built softgfn; see README.md.
Every run is one process at a time, pinned to one core with `taskset -c CPU`, with one thread for
tensor math; the peak RSS of each process is read from the kernel (wait4) when it exits.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))

TASKS = ("tb_hypergrid", "db_hypergrid", "subtb_hypergrid", "tb_bitseq",
         "soft_dqn_hypergrid", "mdqn_hypergrid", "mdqn_bitseq")
# Tasks that neither peer library has an algorithm for: softgfn runs alone, the peers show "-".
SOFTGFN_ONLY = ("soft_dqn_hypergrid", "mdqn_hypergrid", "mdqn_bitseq")
LIBRARIES = ("softgfn", "gfnx", "torchgfn")
TASK_LABELS = {
    "tb_hypergrid": "TB, hypergrid 20^4",
    "db_hypergrid": "DB, hypergrid 20^4",
    "subtb_hypergrid": "SubTB, hypergrid 20^4",
    "tb_bitseq": "TB, bitseq k=8, transformer",
    "soft_dqn_hypergrid": "SoftDQN, hypergrid 20^4, batch 256",
    "mdqn_hypergrid": "M-DQN, hypergrid 20^4, batch 256",
    "mdqn_bitseq": "M-DQN, bitseq k=8, transformer",
}
SOFTGFN_ALGO = {"tb": "tb", "db": "db", "subtb": "subtb", "soft_dqn": "soft_dqn",
                "mdqn": "munchausen_dqn"}

# One thread everywhere: BLAS/OpenMP pools, XLA's CPU client, rayon (softgfn).
THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "RAYON_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "JAX_PLATFORMS": "cpu",
    "CUDA_VISIBLE_DEVICES": "",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "PYTHONHASHSEED": "0",
}


def softgfn_args(task, iterations, seed, out):
    """`softgfn train` arguments for a task: the same settings as the Python drivers."""
    algo, env = task.rsplit("_", 1)
    balance = algo in ("tb", "db", "subtb")
    algo = SOFTGFN_ALGO[algo]
    args = [
        "train", "--env", env, "--algo", algo, "--iterations", str(iterations),
        "--seed", str(seed), "--out", out, "--force", "--quiet", "--threads", "1",
        # One evaluation, after the last iteration (evaluation is never inside the timing).
        "--set", f"eval.interval={iterations}",
        "--set", "algo.trajectories_per_iteration=16",
        "--set", "algo.epsilon=0",
    ]
    if env == "hypergrid":
        # SoftDQN and M-DQN keep softgfn's defaults (the paper's hypergrid settings: batch 256
        # from a prioritized replay of 100,000 transitions, uniform backward policy).
        args += ["--set", "env.dim=4", "--set", "env.side=20", "--set", "env.reward=standard",
                 "--set", "algo.network=mlp", "--set", "algo.hidden_dim=256",
                 "--set", "algo.hidden_layers=2", "--set", "algo.learning_rate=0.001"]
        if balance:
            args += ["--set", "algo.backward_policy=learned"]
        if algo == "tb":
            args += ["--set", "algo.log_z_learning_rate=0.1"]
        if algo == "subtb":
            args += ["--set", "algo.subtb_lambda=0.9",
                     "--set", "algo.subtb_weighting=geometric_within"]
    else:
        # The bit-sequence monitor's `spearman` runs the policy on 1,080,000 states per
        # evaluation by default; two strings and one order keep the end-of-run evaluation short.
        args += ["--set", "env.n=120", "--set", "env.k=8", "--set", "eval.exact=false",
                 "--set", "env.spearman_strings=2", "--set", "env.spearman_rounds=1",
                 "--set", "eval.log_z_samples=0",
                 "--set", "algo.network=transformer", "--set", "algo.transformer.layers=3",
                 "--set", "algo.transformer.d_model=64",
                 "--set", "algo.transformer.attention_heads=8",
                 "--set", "algo.transformer.feedforward=64",
                 "--set", "algo.transformer.dropout=0",
                 "--set", "algo.learning_rate=0.002", "--set", "algo.weight_decay=0.00001"]
        if balance:
            args += ["--set", "algo.log_z_learning_rate=0.064",
                     "--set", "algo.backward_policy=uniform"]
        else:
            # suites/paper-bitseq.toml's Munchausen DQN, with dropout 0 as everywhere here.
            args += ["--set", "algo.epsilon_final=0", "--set", "algo.per_alpha=0.9",
                     "--set", "algo.per_beta=0.1", "--set", "algo.per_beta_final=0.1",
                     "--set", "algo.per_apply_weights=true",
                     "--set", "algo.per_new_priority=max", "--set", "algo.tau=1.0",
                     "--set", "algo.target_update_interval=5",
                     "--set", "algo.learning_starts=50", "--set", "algo.leaf_coef=2.0",
                     "--set", "algo.munchausen_clip_min=-25.0"]
    return args


def run_pinned(cmd, cpu, env, log_path, timeout):
    """Runs `cmd` pinned to `cpu`; returns (exit code, wall seconds, peak RSS in MB)."""
    full = (["taskset", "-c", str(cpu)] if cpu is not None else []) + cmd
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(full) + "\n")
        log.flush()
        proc = subprocess.Popen(full, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        deadline = None if not timeout else time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline and time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.perf_counter() - t0, usage.ru_maxrss / 1024.0


def read_softgfn(out_dir):
    """The numbers of a softgfn run directory, in the drivers' record format."""
    with open(os.path.join(out_dir, "summary.json")) as f:
        summary = json.load(f)
    last = summary.get("last", {})
    iters = last.get("iteration") or 0
    return {
        "library": "softgfn",
        "median_ms_per_iteration": summary.get("median_ms_per_iteration"),
        "mean_ms_per_iteration": (1e3 * last["wall_seconds"] / iters) if iters else None,
        "exact_l1": last.get("exact_l1"),
        "peak_rss_mb_training": summary.get("peak_rss_mb"),
        "log_z": last.get("log_z_learned"),
        "final_loss": last.get("loss"),
    }


def capture(cmd, env=None):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT,
                              timeout=120).stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        return f"unavailable ({e})"


def hardware():
    info = {"machine": platform.machine(), "logical_cpus": os.cpu_count()}
    lscpu = capture(["lscpu"])
    for line in lscpu.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("Model name", "CPU(s)", "Thread(s) per core", "Core(s) per socket",
                           "Socket(s)", "L2 cache", "L3 cache", "Hypervisor vendor", "Flags"):
            info[key.strip()] = value.strip() if key.strip() != "Flags" else " ".join(
                f for f in value.split() if f.startswith(("avx", "fma", "sse4")))
    try:
        with open("/proc/meminfo") as f:
            info["MemTotal"] = f.readline().split(":")[1].strip()
    except OSError:
        pass
    return info


def load_now():
    try:
        with open("/proc/loadavg") as f:
            return f.read().strip()
    except OSError:
        return "unavailable"


def ratio(a, b):
    return b / a if a and b else None


def fmt(x, digits=2):
    return "-" if x is None else f"{x:.{digits}f}"


def markdown(report):
    rows = report["results"]
    out = [
        "# softgfn, gfnx and torchgfn side by side",
        "",
        f"Generated by `scripts/peers/run.sh` on {report['date_utc']} "
        f"({report['iterations']} iterations per run, seed {report['seed']}, "
        f"one process at a time pinned to CPU {report['cpu']}, one thread).",
        "",
    ]
    if report["iterations"] < 2000:
        out += [f"**Smoke run with {report['iterations']} iterations: not a measurement.**", ""]
    try:
        load1 = float(report["load_at_start"].split()[0])
    except (ValueError, IndexError):
        load1 = None
    if load1 is None or load1 > 0.5:
        out += [f"**The machine was not idle at the start (load average "
                f"{report['load_at_start'].split(' ')[0]}): these timings are not "
                "measurements.**", ""]
    out += [
        "| task | softgfn ms/it | gfnx ms/it | torchgfn ms/it | softgfn vs gfnx | vs torchgfn |",
        "|---|---|---|---|---|---|",
    ]
    for task in report["tasks"]:
        r = {lib: rows.get(task, {}).get(lib, {}) for lib in LIBRARIES}
        m = {lib: r[lib].get("median_ms_per_iteration") for lib in LIBRARIES}
        g = ratio(m["softgfn"], m["gfnx"])
        t = ratio(m["softgfn"], m["torchgfn"])

        def speed(x):
            if x is None:
                return "-"
            return f"{x:.1f}x faster" if x >= 1 else f"{x:.2f}x (slower)"

        out.append(f"| {TASK_LABELS[task]} | {fmt(m['softgfn'])} | {fmt(m['gfnx'])} | "
                   f"{fmt(m['torchgfn'])} | {speed(g)} | {speed(t)} |")
    if report.get("baseline_softgfn"):
        out += ["", f"softgfn against the baseline binary {report['baseline_softgfn']}, "
                "timed in the same invocation:", "",
                "| task | softgfn ms/it | baseline ms/it | speed-up |", "|---|---|---|---|"]
        for task in report["tasks"]:
            a = rows.get(task, {}).get("softgfn", {}).get("median_ms_per_iteration")
            b = rows.get(task, {}).get("softgfn-baseline", {}).get("median_ms_per_iteration")
            out.append(f"| {TASK_LABELS[task]} | {fmt(a)} | {fmt(b)} | "
                       f"{fmt(ratio(a, b))}{'x' if a and b else ''} |")
    out += ["", "Milliseconds per iteration are medians over all iterations (an iteration = "
            "sampling 16 trajectories, the loss, its gradients and the Adam step; gfnx's JIT "
            "compile is done ahead of time and reported apart). Ratios are peer ms / softgfn ms.",
            "", "| task | library | exact L1 | peak RSS MB (process) | mean ms/it | "
            "compile s | wall s | status |", "|---|---|---|---|---|---|---|---|"]
    for task in report["tasks"]:
        for lib in LIBRARIES + ("softgfn-baseline",):
            r = rows.get(task, {}).get(lib)
            if r is None:
                continue
            out.append(
                f"| {TASK_LABELS[task]} | {lib} | {fmt(r.get('exact_l1'), 3)} | "
                f"{fmt(r.get('peak_rss_mb_process'), 0)} | {fmt(r.get('mean_ms_per_iteration'))} | "
                f"{fmt(r.get('compile_seconds'), 1)} | {fmt(r.get('wall_seconds'), 1)} | "
                f"{r.get('status')} |")
    hw = report["hardware"]
    out += [
        "",
        "## Machine and versions",
        "",
        f"- CPU: {hw.get('Model name', '?')}, {hw.get('CPU(s)', hw.get('logical_cpus'))} "
        f"logical CPUs; memory {hw.get('MemTotal', '?')}",
        f"- load average at start: {report['load_at_start']}; at end: {report['load_at_end']}",
        f"- softgfn commit {report['softgfn_commit']} ({report['softgfn_version']}); "
        f"{report['rustc']}",
        f"- gfnx venv: {report['versions'].get('gfnx', '-')}",
        f"- torchgfn venv: {report['versions'].get('torchgfn', '-')}",
        "- full `pip freeze` of each environment: `pip-freeze-<library>.txt` beside this file;"
        " raw numbers: `results.json` and `results.csv`.",
        "",
    ]
    return "\n".join(out)


def key_versions(freeze, names):
    pins = dict(line.split("==", 1) for line in freeze.splitlines() if "==" in line)
    return ", ".join(f"{n} {pins[n]}" for n in names if n in pins)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--iterations", type=int, default=2000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cpu", type=int, default=None,
                   help="core to pin every run to (default: the last one)")
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--libraries", default=",".join(LIBRARIES))
    p.add_argument("--venv", default=os.path.join(ROOT, "target", "peers-venv"))
    p.add_argument("--softgfn", default=os.path.join(ROOT, "target", "release", "softgfn"))
    p.add_argument("--baseline-softgfn", default=None, metavar="PATH",
                   help="also time this softgfn binary (e.g. built from an earlier commit) on the "
                   "same tasks, in the same invocation, as `softgfn-baseline`")
    p.add_argument("--out", default=None,
                   help="report directory (default: docs/results/peers with 2,000 or more "
                   "iterations, else target/peers-smoke)")
    p.add_argument("--timeout", type=float, default=0, help="seconds per run (0: none)")
    p.add_argument("--no-exact", action="store_true", help="skip the exact L1 at the end")
    args = p.parse_args()
    if args.out is None:
        args.out = os.path.join(ROOT, "docs", "results", "peers") if args.iterations >= 2000 \
            else os.path.join(ROOT, "target", "peers-smoke")
    tasks = [t for t in args.tasks.split(",") if t]
    libs = [lib for lib in args.libraries.split(",") if lib]
    for t in tasks:
        if t not in TASKS:
            sys.exit(f"unknown task {t!r}; choose from {', '.join(TASKS)}")
    for lib in libs:
        if lib not in LIBRARIES:
            sys.exit(f"unknown library {lib!r}; choose from {', '.join(LIBRARIES)}")
    if args.iterations < 1:
        sys.exit("--iterations must be >= 1")
    if args.baseline_softgfn:
        if not os.access(args.baseline_softgfn, os.X_OK):
            sys.exit(f"--baseline-softgfn {args.baseline_softgfn!r} is not an executable file")
        libs.append("softgfn-baseline")
    cpu = args.cpu if args.cpu is not None else (os.cpu_count() or 1) - 1
    if shutil.which("taskset") is None:
        sys.exit("taskset (util-linux) is needed to pin the runs to one core")

    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="softgfn-peers-")
    env = dict(os.environ, **THREAD_ENV)
    report = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_at_start": load_now(),
        "iterations": args.iterations,
        "seed": args.seed,
        "cpu": cpu,
        "tasks": tasks,
        "libraries": libs,
        "thread_env": THREAD_ENV,
        "hardware": hardware(),
        "softgfn_commit": capture(["git", "rev-parse", "HEAD"]) + (
            " (dirty)" if capture(["git", "status", "--porcelain", "--untracked-files=no"])
            else ""),
        "softgfn_version": capture([args.softgfn, "--version"]),
        "baseline_softgfn": (
            f"{args.baseline_softgfn} ({capture([args.baseline_softgfn, '--version'])})"
            if args.baseline_softgfn else None),
        "rustc": capture(["rustc", "-V"]),
        "versions": {},
        "results": {},
    }
    for lib in ("gfnx", "torchgfn"):
        if lib in libs:
            freeze = capture([os.path.join(args.venv, lib, "bin", "python"), "-m", "pip",
                              "freeze"])
            with open(os.path.join(args.out, f"pip-freeze-{lib}.txt"), "w") as f:
                f.write(freeze + "\n")
            names = {"gfnx": ["gfnx", "jax", "jaxlib", "equinox", "optax", "numpy"],
                     "torchgfn": ["torchgfn", "torch", "tensordict", "numpy"]}[lib]
            report["versions"][lib] = key_versions(freeze, names)
    print(f"load at start: {report['load_at_start']}; pinning to CPU {cpu}; work dir {work}")

    for task in tasks:
        for lib in libs:
            if not lib.startswith("softgfn") and task in SOFTGFN_ONLY:
                continue
            tag = f"{lib}-{task}"
            log = os.path.join(work, tag + ".log")
            result_path = os.path.join(work, tag + ".json")
            if lib.startswith("softgfn"):
                run_dir = os.path.join(work, tag)
                binary = args.softgfn if lib == "softgfn" else args.baseline_softgfn
                cmd = [binary] + softgfn_args(task, args.iterations, args.seed, run_dir)
                if args.no_exact:
                    cmd += ["--set", "eval.exact=false"]
            else:
                py = os.path.join(args.venv, lib, "bin", "python")
                cmd = [py, os.path.join(HERE, f"{lib}_driver.py"), "--task", task,
                       "--iterations", str(args.iterations), "--seed", str(args.seed),
                       "--out", result_path]
                if args.no_exact:
                    cmd.append("--no-exact")
            print(f"[{time.strftime('%H:%M:%S')}] {tag} ...", flush=True)
            code, wall, rss = run_pinned(cmd, cpu, env, log, args.timeout)
            record = {"library": lib}
            try:
                if code != 0:
                    raise RuntimeError(f"exit code {code}")
                if lib.startswith("softgfn"):
                    record.update(read_softgfn(run_dir))
                    record["library"] = lib
                else:
                    with open(result_path) as f:
                        record.update(json.load(f))
                record["status"] = "ok"
            except (OSError, ValueError, KeyError, RuntimeError) as e:
                record["status"] = f"failed: {e} (log: {log})"
                with open(log) as f:
                    tail = f.read()[-2000:]
                print(tail)
            record["wall_seconds"] = wall
            record["peak_rss_mb_process"] = rss
            per_it = record.pop("ms_per_iteration", None)
            if per_it:
                record["ms_per_iteration_p10_p90"] = [
                    statistics.quantiles(per_it, n=10)[0], statistics.quantiles(per_it, n=10)[-1]
                ] if len(per_it) >= 10 else None
                with open(os.path.join(args.out, f"per-iteration-{tag}.json"), "w") as f:
                    json.dump(per_it, f)
            report["results"].setdefault(task, {})[lib] = record
            print(f"    {record['status']}: median {fmt(record.get('median_ms_per_iteration'))} "
                  f"ms/it, exact L1 {fmt(record.get('exact_l1'), 3)}, peak RSS {rss:.0f} MB, "
                  f"{wall:.1f} s", flush=True)

    report["load_at_end"] = load_now()
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    fields = ["task", "library", "median_ms_per_iteration", "mean_ms_per_iteration",
              "exact_l1", "peak_rss_mb_process", "peak_rss_mb_training", "compile_seconds",
              "wall_seconds", "status"]
    with open(os.path.join(args.out, "results.csv"), "w") as f:
        f.write(",".join(fields) + "\n")
        for task in tasks:
            for lib, r in report["results"].get(task, {}).items():
                r = dict(r, task=task)
                f.write(",".join("" if r.get(k) is None else str(r.get(k)).replace(",", ";")
                                 for k in fields) + "\n")
    with open(os.path.join(args.out, "README.md"), "w") as f:
        f.write(markdown(report))
    print(f"report written to {args.out}")
    failed = [f"{lib}-{t}" for t in tasks for lib, r in report["results"].get(t, {}).items()
              if r["status"] != "ok"]
    if failed:
        sys.exit(f"failed runs: {', '.join(failed)}")


if __name__ == "__main__":
    main()
