"""Checks of common.py against exact answers (run with either peer environment's python).

    target/peers-venv/gfnx/bin/python scripts/peers/test_common.py

run.sh runs it before any measurement; it exits non-zero on the first failure.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import numpy as np  # noqa: E402


def brute_force_terminal(probs, dim, side):
    """Terminal distribution by enumerating every trajectory (tiny grids only)."""
    strides = [side ** (dim - 1 - d) for d in range(dim)]
    out = np.zeros(side**dim)

    def walk(coords, p):
        idx = sum(c * s for c, s in zip(coords, strides))
        out[idx] += p * probs[idx, dim]
        for d in range(dim):
            if coords[d] < side - 1:
                nxt = list(coords)
                nxt[d] += 1
                walk(nxt, p * probs[idx, d])

    walk([0] * dim, 1.0)
    return out


def check(name, ok):
    print(("ok   " if ok else "FAIL ") + name)
    if not ok:
        sys.exit(1)


def main():
    rng = np.random.default_rng(0)
    for dim, side in [(1, 4), (2, 3), (3, 4), (2, 6)]:
        coords = common.hypergrid_coords(dim, side)
        valid = common.hypergrid_forward_mask(coords, side)
        logits = np.where(valid, rng.normal(size=valid.shape), -np.inf)
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        exact = common.hypergrid_exact_terminal_distribution(probs, dim, side)
        brute = brute_force_terminal(probs, dim, side)
        check(f"exact terminal distribution = enumeration of trajectories, D={dim} H={side}",
              np.allclose(exact, brute, atol=1e-12) and abs(exact.sum() - 1) < 1e-12)

    # A policy that always steps in dimension 0 until the wall, then stops: all mass on
    # (side - 1, 0, ..., 0).
    dim, side = 3, 5
    coords = common.hypergrid_coords(dim, side)
    probs = np.zeros((coords.shape[0], dim + 1))
    at_wall = coords[:, 0] == side - 1
    probs[~at_wall, 0] = 1.0
    probs[at_wall, dim] = 1.0
    dist = common.hypergrid_exact_terminal_distribution(probs, dim, side)
    check("deterministic policy puts all mass on one corner",
          dist[(side - 1) * side ** (dim - 1)] == 1.0 and dist.sum() == 1.0)

    # Standard reward on 20^4: values and the known number of 2.5-reward states per corner.
    coords = common.hypergrid_coords()
    r = np.exp(common.hypergrid_log_reward(coords))
    check("standard reward takes the values R0, R0 + R1, R0 + R1 + R2",
          np.allclose(sorted(set(np.round(r, 9))), [1e-3, 0.501, 2.501]))
    # 0.3 < |x / 19 - 0.5| < 0.4 holds at x in {2, 3, 16, 17}: 4^4 states get R2.
    check("256 states of reward R0 + R1 + R2 on 20^4", int((r > 2.5).sum()) == 4**4)
    target = common.hypergrid_target()
    check("target sums to one", abs(target.sum() - 1) < 1e-12)
    check("l1 is sum |p - q|", common.l1([0.5, 0.5], [1.0, 0.0]) == 1.0)
    check("index order is C order", list(coords[21]) == [0, 0, 1, 1])
    # Z = 20^4 R0 + 10^4 R1 + 4^4 R2 (10 values of x have |x / 19 - 0.5| > 0.25).
    check("Z = 5672 (log Z 8.6433, softgfn's log_z_true)", abs(r.sum() - 5672.0) < 1e-6)
    print("all checks passed")


if __name__ == "__main__":
    main()
