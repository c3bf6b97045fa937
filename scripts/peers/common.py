"""Shared, library-independent pieces of the peer drivers (numpy and the standard library only).

Every driver (gfnx_driver.py, torchgfn_driver.py) imports this module, so the target distribution,
the exact terminal distribution of a learned policy, the L1 distance and the result record are
computed in one way for every library.
"""

import argparse
import json
import platform
import resource
import statistics
import sys
import time

import numpy as np

# The matched settings (issue 14): hypergrid D = 4, H = 20, standard reward.
HYPERGRID_DIM = 4
HYPERGRID_SIDE = 20
HYPERGRID_R0, HYPERGRID_R1, HYPERGRID_R2 = 1e-3, 0.5, 2.0
# Bit sequences n = 120, k = 8, the paper's transformer.
BITSEQ_N = 120
BITSEQ_K = 8
TRANSFORMER = {"layers": 3, "d_model": 64, "heads": 8, "feedforward": 64, "dropout": 0.0}

TASKS = ("tb_hypergrid", "db_hypergrid", "subtb_hypergrid", "tb_bitseq")


def parse_args(library):
    """The command line every driver shares."""
    p = argparse.ArgumentParser(description=f"{library} driver of the softgfn peer comparison")
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--iterations", type=int, default=2000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True, help="JSON file to write the result record to")
    p.add_argument("--no-exact", action="store_true", help="skip the exact L1 at the end")
    return p.parse_args()


def peak_rss_mb():
    """Peak resident set size of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def hypergrid_coords(dim=HYPERGRID_DIM, side=HYPERGRID_SIDE):
    """All states as an (side^dim, dim) int array, in C (row-major) index order."""
    return np.indices((side,) * dim).reshape(dim, -1).T.astype(np.int64)


def hypergrid_log_reward(coords, side=HYPERGRID_SIDE):
    """log R of the standard reward (R0 1e-3, R1 0.5, R2 2) for an (N, dim) array of states."""
    ax = np.abs(coords / (side - 1) - 0.5)
    r = (
        HYPERGRID_R0
        + HYPERGRID_R1 * np.prod(ax > 0.25, axis=-1)
        + HYPERGRID_R2 * np.prod((ax > 0.3) & (ax < 0.4), axis=-1)
    )
    return np.log(r)


def hypergrid_target(dim=HYPERGRID_DIM, side=HYPERGRID_SIDE):
    """The target distribution R / Z over all states, in C index order."""
    r = np.exp(hypergrid_log_reward(hypergrid_coords(dim, side), side))
    return r / r.sum()


def hypergrid_forward_mask(coords, side=HYPERGRID_SIDE):
    """Valid forward actions (N, dim + 1): step +1 in a dimension below side - 1, or stop."""
    valid = np.ones((coords.shape[0], coords.shape[1] + 1), dtype=bool)
    valid[:, :-1] = coords < side - 1
    return valid


def hypergrid_exact_terminal_distribution(probs, dim=HYPERGRID_DIM, side=HYPERGRID_SIDE):
    """Exact terminal distribution of a forward policy on the hypergrid.

    `probs` is (side^dim, dim + 1): the forward policy's action probabilities at every state in C
    index order (actions 0..dim-1 add one to that coordinate, action dim stops). The probability
    of reaching each state is pushed level by level (levels = coordinate sums, a topological
    order), and a state's terminal probability is its reach probability times its stop
    probability.
    """
    coords = hypergrid_coords(dim, side)
    n = coords.shape[0]
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (n, dim + 1):
        raise ValueError(f"policy probabilities have shape {probs.shape}, expected {(n, dim + 1)}")
    strides = [side ** (dim - 1 - d) for d in range(dim)]
    level = coords.sum(axis=1)
    order = np.argsort(level, kind="stable")
    bounds = np.searchsorted(level[order], np.arange(level.max() + 2))
    reach = np.zeros(n)
    reach[0] = 1.0
    for lv in range(level.max() + 1):
        idx = order[bounds[lv] : bounds[lv + 1]]
        for d in range(dim):
            ok = coords[idx, d] < side - 1
            src = idx[ok]
            reach[src + strides[d]] += reach[src] * probs[src, d]
    return reach * probs[:, dim]


def l1(p, q):
    """sum |p - q| (softgfn's `exact_l1`)."""
    return float(np.abs(np.asarray(p) - np.asarray(q)).sum())


def hypergrid_exact_l1(logits, coords):
    """`exact_l1` of a forward policy given its logits (N, dim + 1) at the states `coords`
    (every state, C index order): masked softmax in float64, the exact terminal distribution,
    and its L1 distance to the target."""
    logits = np.where(hypergrid_forward_mask(coords), np.asarray(logits, dtype=np.float64), -np.inf)
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    return l1(hypergrid_exact_terminal_distribution(probs), hypergrid_target())


class IterationTimer:
    """Wall time of every training iteration, in ms (time.perf_counter)."""

    def __init__(self):
        self.ms = []
        self._t0 = None

    def start(self):
        self._t0 = time.perf_counter()

    def stop(self):
        self.ms.append((time.perf_counter() - self._t0) * 1e3)


def write_result(path, library, library_version, args, timer, extra):
    """Writes the driver's result record (JSON)."""
    ms = timer.ms
    record = {
        "library": library,
        "library_version": library_version,
        "task": args.task,
        "iterations": args.iterations,
        "seed": args.seed,
        "median_ms_per_iteration": statistics.median(ms) if ms else None,
        "mean_ms_per_iteration": statistics.fmean(ms) if ms else None,
        "mean_ms_per_iteration_after_10": statistics.fmean(ms[10:]) if len(ms) > 10 else None,
        "first_iteration_ms": ms[0] if ms else None,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
    record.update(extra)
    record["ms_per_iteration"] = [round(x, 4) for x in ms]
    with open(path, "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    print(
        f"{library} {args.task}: median {record['median_ms_per_iteration']:.3f} ms/it over "
        f"{len(ms)} iterations; exact_l1 {record.get('exact_l1')}; "
        f"peak RSS (training) {record.get('peak_rss_mb_training'):.1f} MB"
    )
