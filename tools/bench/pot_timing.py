#!/usr/bin/env python3
"""Time POT on the inputs of shared/benches/ot.rs and compare with the criterion results.

Requires (pip):  pot==0.9.7.post1  numpy
Run from the repository root, after the Rust benchmark:

    cargo bench -p inscl --bench ot          # writes target/criterion/**/new/estimates.json
    python3 tools/bench/pot_timing.py [--target-dir DIR] [--sizes 100 500 1000 2000] [--repeats 3]

DIR defaults to $CARGO_TARGET_DIR or ./target. For each n it builds the same two clouds as
the Rust bench (n x 576, float32, from the integer hash below), converts them to float64 and
times ot.dist(metric="cosine") + ot.emd2 and ot.dist + ot.sinkhorn2(method="sinkhorn_log",
reg=0.05), best of --repeats, in ms. Ours is read from criterion: the best sample
(new/sample.json, time / iterations) and the mean estimate (new/estimates.json). Ratios are
POT best / ours best, the statistic least disturbed by other load on the machine. "ours" is
`emd` as it runs (uniform square problems go to the assignment solver); "simplex" is the
same problem forced through the network simplex (criterion group cost_emd_simplex), POT's
algorithm. It also prints POT's exact W, to compare with the value the Rust solver gives.
"""

import argparse
import json
import os
import pathlib
import time

import numpy as np
import ot

DIM = 576
EPSILON = 0.05
MASK = np.uint64(0xFFFFFFFF)


def cloud(seed, n):
    """Mirror of `point(seed, index)` in shared/benches/ot.rs (32-bit multiply-xorshift)."""
    idx = np.arange(n * DIM, dtype=np.uint64)
    h = (idx * np.uint64(0x9E3779B1) + np.uint64((seed * 0x85EBCA77) & 0xFFFFFFFF) + np.uint64(1)) & MASK
    h ^= h >> np.uint64(15)
    h = (h * np.uint64(0x2C1B3C6D)) & MASK
    h ^= h >> np.uint64(12)
    h = (h * np.uint64(0x297A2D39)) & MASK
    h ^= h >> np.uint64(15)
    return (h.astype(np.float64) / 4294967296.0 * 2.0 - 1.0).astype(np.float32).reshape(n, DIM)


def best_of(repeats, fn):
    times, value = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return min(times), value


def criterion_ms(target_dir, group, n):
    """(best sample, mean estimate) in ms, or (None, None) if the bench has not run."""
    new = pathlib.Path(target_dir) / "criterion" / group / str(n) / "new"
    if not (new / "sample.json").exists():
        return None, None
    sample = json.loads((new / "sample.json").read_text())
    best = min(t / i for t, i in zip(sample["times"], sample["iters"]))
    mean = json.loads((new / "estimates.json").read_text())["mean"]["point_estimate"]
    return best / 1e6, mean / 1e6  # ns -> ms


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target-dir", default=os.environ.get("CARGO_TARGET_DIR", "target"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500, 1000, 2000])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    print(f"POT {ot.__version__}, d = {DIM}, cosine, uniform weights, times in ms")
    header = (
        f"{'n':>5} | {'POT dist':>9} {'POT emd2':>9} {'POT total':>9} | {'ours':>8} {'(mean)':>8} {'ratio':>6} "
        f"| {'simplex':>8} {'ratio':>6} "
        f"| {'POT sk':>9} {'ours sk':>8} {'(mean)':>8} {'ratio':>6} | W (POT)"
    )
    print(header)
    print("-" * len(header))
    for n in args.sizes:
        x = cloud(1, n).astype(np.float64)
        y = cloud(2, n).astype(np.float64)
        w = np.full(n, 1.0 / n)
        t_dist, M = best_of(args.repeats, lambda: ot.dist(x, y, metric="cosine"))
        t_emd, W = best_of(args.repeats, lambda: ot.emd2(w, w, M, numItermax=10_000_000))
        t_sk, _ = best_of(
            args.repeats,
            lambda: ot.sinkhorn2(w, w, ot.dist(x, y, metric="cosine"), EPSILON, method="sinkhorn_log"),
        )
        ours, ours_mean = criterion_ms(args.target_dir, "cost_emd", n)
        simplex, _ = criterion_ms(args.target_dir, "cost_emd_simplex", n)
        ours_sk, ours_sk_mean = criterion_ms(args.target_dir, "cost_sinkhorn", n)
        pot_total = t_dist + t_emd

        def fmt(v):
            return f"{v:8.1f}" if v is not None else f"{'-':>8}"

        def ratio(p, o):
            return f"{p / o:5.1f}x" if o else f"{'-':>6}"

        print(
            f"{n:>5} | {t_dist:9.1f} {t_emd:9.1f} {pot_total:9.1f} | {fmt(ours)} {fmt(ours_mean)} "
            f"{ratio(pot_total, ours)} | {fmt(simplex)} {ratio(pot_total, simplex)} | {t_sk:9.1f} {fmt(ours_sk)} {fmt(ours_sk_mean)} "
            f"{ratio(t_sk, ours_sk)} | {W:.12f}"
        )


if __name__ == "__main__":
    main()
