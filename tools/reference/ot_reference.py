#!/usr/bin/env python3
"""Reference values for the optimal-transport layer (shared/src/ot), computed with POT.

Requires (pip):  pot==0.9.7.post1  numpy  scipy (installed with POT)
Run from the repository root:

    python3 tools/reference/ot_reference.py

It writes shared/fixtures/ot_reference.json, read by shared/tests/ot_reference.rs via
include_str!. Points are drawn with seeded numpy generators as float32 (the type the Rust
PointCloud holds) and written as the exact decimal of each float32 value, so Rust parses the
very same numbers; POT then works on float64 copies, as the Rust code does.

Contents:
- "cost_matrices": a small case (5 x 4 points, d = 3) with ot.dist for all three metrics;
- "cases": random clouds (n != m, non-uniform and zero weights, d from 3 to 64, all three
  metrics) with ot.emd2, ot.sinkhorn2(method="sinkhorn_log") for two epsilons, and
  ot.bregman.empirical_sinkhorn_divergence(method="sinkhorn_log") for the first epsilon;
- "assignments": square clouds (n from 1 to 200, all three metrics) with the optimal
  assignment of scipy.optimize.linear_sum_assignment on ot.dist and ot.emd2 under uniform
  weights (the two agree: an assignment problem, Birkhoff-von Neumann), for
  shared/src/ot/assignment.rs and the assignment path of emd.
"""

import json
import pathlib

import numpy as np
import ot
import scipy
from scipy.optimize import linear_sum_assignment

OUT = pathlib.Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "ot_reference.json"
MAX_ITER = 1000  # POT's default numItermax for ot.sinkhorn
TOL = 1e-9  # POT's default stopThr


def cloud(rng, n, d):
    return rng.standard_normal((n, d)).astype(np.float32)


def weights(rng, n, kind):
    if kind == "uniform":
        return np.full(n, 1.0 / n)
    w = rng.uniform(0.1, 1.0, n)
    if kind == "sparse":
        w[::4] = 0.0  # zero-weight points must be skipped by the solvers
    return w / w.sum()


def floats(a):
    # float(np.float32) is exact in float64; repr gives a decimal that round-trips.
    return [float(v) for v in np.asarray(a).ravel()]


def main():
    print("POT", ot.__version__)
    rng = np.random.default_rng(20240311)
    x, y = cloud(rng, 5, 3), cloud(rng, 4, 3)
    cost_matrices = {
        "dim": 3,
        "x": floats(x),
        "y": floats(y),
        "costs": {
            metric: floats(ot.dist(x.astype(np.float64), y.astype(np.float64), metric=metric))
            for metric in ("cosine", "sqeuclidean", "euclidean")
        },
    }

    specs = [
        # name, seed, n, m, d, metric, weight kind, epsilons
        ("uniform_square_cosine", 1, 20, 20, 8, "cosine", "uniform", [0.05, 0.5]),
        ("nonuniform_rect_sqeuclidean", 2, 30, 17, 16, "sqeuclidean", "random", [2.0, 10.0]),
        ("nonuniform_wide_euclidean", 3, 12, 40, 64, "euclidean", "random", [0.5, 2.0]),
        ("zero_weights_cosine", 4, 25, 25, 3, "cosine", "sparse", [0.05, 0.2]),
        ("larger_cosine", 5, 60, 45, 32, "cosine", "random", [0.05, 0.5]),
        ("tall_sqeuclidean_lowdim", 6, 50, 7, 3, "sqeuclidean", "random", [0.5, 2.0]),
    ]
    cases = []
    for name, seed, n, m, d, metric, wkind, epsilons in specs:
        r = np.random.default_rng(seed)
        xs, xt = cloud(r, n, d), cloud(r, m, d)
        a, b = weights(r, n, wkind), weights(r, m, wkind)
        xs64, xt64 = xs.astype(np.float64), xt.astype(np.float64)
        M = ot.dist(xs64, xt64, metric=metric)
        sinkhorn = [
            {
                "epsilon": eps,
                "cost": float(
                    ot.sinkhorn2(a, b, M, eps, method="sinkhorn_log", numItermax=MAX_ITER, stopThr=TOL)
                ),
            }
            for eps in epsilons
        ]
        divergence = float(
            ot.bregman.empirical_sinkhorn_divergence(
                xs64, xt64, epsilons[0], a, b, metric=metric,
                numIterMax=MAX_ITER, stopThr=TOL, method="sinkhorn_log",
            )
        )
        cases.append({
            "name": name,
            "dim": d,
            "metric": metric,
            "x": floats(xs),
            "y": floats(xt),
            "a": floats(a),
            "b": floats(b),
            "emd2": float(ot.emd2(a, b, M, numItermax=1_000_000)),
            "sinkhorn": sinkhorn,
            "divergence": {"epsilon": epsilons[0], "value": divergence},
        })
        print(f"{name}: emd2={cases[-1]['emd2']:.10f} div={divergence:.10f}")

    assignments = []
    for name, seed, n, d, metric in [
        ("single_point", 7, 1, 4, "cosine"),
        ("small_sqeuclidean", 8, 7, 3, "sqeuclidean"),
        ("medium_euclidean", 9, 60, 16, "euclidean"),
        ("large_cosine", 10, 200, 8, "cosine"),
    ]:
        r = np.random.default_rng(seed)
        xs, xt = cloud(r, n, d), cloud(r, n, d)
        M = ot.dist(xs.astype(np.float64), xt.astype(np.float64), metric=metric)
        rows, cols = linear_sum_assignment(M)
        assert (rows == np.arange(n)).all()
        w = np.full(n, 1.0 / n)
        assignments.append({
            "name": name,
            "dim": d,
            "metric": metric,
            "x": floats(xs),
            "y": floats(xt),
            "col_of_row": [int(c) for c in cols],
            "cost": float(M[rows, cols].sum()),
            "emd2": float(ot.emd2(w, w, M, numItermax=1_000_000)),
        })
        print(f"{name}: assignment cost={assignments[-1]['cost']:.12f} emd2*n={assignments[-1]['emd2'] * n:.12f}")

    payload = {
        "generator": "tools/reference/ot_reference.py",
        "pot_version": ot.__version__,
        "scipy_version": scipy.__version__,
        "sinkhorn_max_iter": MAX_ITER,
        "sinkhorn_tol": TOL,
        "cost_matrices": cost_matrices,
        "cases": cases,
        "assignments": assignments,
    }
    OUT.write_text(json.dumps(payload, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
