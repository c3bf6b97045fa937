#!/usr/bin/env python3
"""Checks softgfn's TensorBoard event files with TensorBoard's own reader.

Usage: check-tensorboard.py DIR [DIR ...]

Every DIR is a run directory (with metrics.jsonl and tb/) or a directory above run directories
(a suite's results: every run directory under it is checked). For each run, TensorBoard's
EventAccumulator loads RUN/tb and the script asserts that

- there is a scalar series for every number of the run's records (loss, log_z_learned, exact_l1,
  ms_per_iteration, environment metrics such as modes_found, ...), and no other series;
- each series has exactly one point per record that holds the number, at step = iteration (so a
  resumed run repeats no step), in the records' order;
- every value equals the record's value rounded to float32.

Needs the `tensorboard` Python package (.ci/run installs a pinned version into .ci/venv).
"""

import json
import math
import struct
import sys
from pathlib import Path

from tensorboard.backend.event_processing import event_accumulator


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def expected_series(records):
    """tag -> [(step, value)] from metrics.jsonl records (every number but the iteration)."""
    series = {}
    for r in records:
        for key, value in r.items():
            if key == "iteration" or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if not math.isfinite(value):
                continue
            series.setdefault(key, []).append((r["iteration"], f32(float(value))))
    return series


def check_run(run):
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    if not records:
        raise AssertionError(f"{run}: no records")
    tb = run / "tb"
    if not any(tb.glob("events.out.tfevents.*")):
        raise AssertionError(f"{run}: no event files in {tb}")
    acc = event_accumulator.EventAccumulator(str(tb), size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    got_tags = set(acc.Tags()["scalars"])
    want = expected_series(records)
    if got_tags != set(want):
        raise AssertionError(
            f"{run}: tags differ; missing {sorted(set(want) - got_tags)}, unexpected {sorted(got_tags - set(want))}"
        )
    for tag, points in want.items():
        got = [(e.step, e.value) for e in acc.Scalars(tag)]
        if [s for s, _ in got] != [s for s, _ in points]:
            raise AssertionError(f"{run}: {tag}: steps {[s for s, _ in got]} != records' {[s for s, _ in points]}")
        for (step, v), (_, w) in zip(got, points):
            if v != w:
                raise AssertionError(f"{run}: {tag} at step {step}: {v} != {w}")
    for tag in ("loss", "ms_per_iteration", "log_z_learned"):
        if tag not in got_tags:
            raise AssertionError(f"{run}: no `{tag}` series")
    steps = [r["iteration"] for r in records]
    print(f"{run}: {len(got_tags)} tags, steps {steps[0]}..{steps[-1]} ({len(steps)} records) match metrics.jsonl")
    return len(got_tags)


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    runs = []
    for d in map(Path, argv):
        if (d / "metrics.jsonl").is_file():
            runs.append(d)
        else:
            runs.extend(sorted(p.parent for p in d.rglob("metrics.jsonl")))
    if not runs:
        print(f"no run directories under {' '.join(argv)}", file=sys.stderr)
        return 1
    for run in runs:
        check_run(run)
    print(f"{len(runs)} run(s): TensorBoard reads every scalar of every record")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
