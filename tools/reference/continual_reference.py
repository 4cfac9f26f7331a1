#!/usr/bin/env python3
"""Reference values for `inscl::metrics::continual`, computed independently with numpy on a
full T x T matrix (NaN above the diagonal: tasks not yet trained are never evaluated).

Needs (pip): numpy (tested with 2.4.6). Python 3.11.

Run from the repository root:

    python3 tools/reference/continual_reference.py

Writes shared/fixtures/continual_reference.json: seeded random lower-triangular score matrices
(T = 1..8, scores in [0, 100]) with zero-shot scores and single-task upper bounds, and
AP, AP per stage, F.Ra, BWT, FWT, Relative Gain per stage and forgetting rates.
"""

import json
import os

import numpy as np

SEED = 20240311
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def metrics(R, zero_shot, upper):
    T = R.shape[0]
    L = T - 1
    diag = np.diag(R)
    seen = ~np.isnan(R)
    ap_per_stage = np.nanmean(R, axis=1)
    if L == 0:
        forgetting = bwt = 0.0
        rates = []
    else:
        # Best score of task j at any stage before the last, minus its final score.
        best_before_last = np.nanmax(R[:L, :L], axis=0)
        forgetting = float(np.mean(best_before_last - R[L, :L]))
        bwt = float(np.mean(R[L, :L] - diag[:L]))
        rates = [None if d == 0 else float((d - f) / d) for d, f in zip(diag[:L], R[L, :L])]
    ratio = np.where(seen, R / upper[None, :] * 100.0, np.nan)
    return {
        "ap": float(ap_per_stage[-1]),
        "ap_per_stage": ap_per_stage.tolist(),
        "forgetting": forgetting,
        "bwt": bwt,
        "fwt": float(np.mean(diag - zero_shot)),
        "relative_gain_per_stage": np.nanmean(ratio, axis=1).tolist(),
        "forgetting_rate": rates,
    }


def main():
    rng = np.random.default_rng(SEED)
    cases = []
    for T in [1, 2, 3, 3, 4, 5, 5, 6, 7, 8, 8, 8]:
        R = np.full((T, T), np.nan)
        for i in range(T):
            R[i, : i + 1] = np.round(rng.uniform(0, 100, size=i + 1), 3)
        if T >= 3:
            R[1, 0] = 0.0  # a zero score below the diagonal
        if T >= 4:
            R[2, 2] = 0.0  # a zero diagonal entry: undefined forgetting rate
        zero_shot = np.round(rng.uniform(0, 60, size=T), 3)
        upper = np.round(rng.uniform(50, 100, size=T), 3)
        case = {
            "rows": [R[i, : i + 1].tolist() for i in range(T)],
            "zero_shot": zero_shot.tolist(),
            "upper": upper.tolist(),
        }
        case.update(metrics(R, zero_shot, upper))
        cases.append(case)
    path = os.path.join(ROOT, "shared", "fixtures", "continual_reference.json")
    with open(path, "w") as f:
        json.dump({"generator": "tools/reference/continual_reference.py", "cases": cases}, f, indent=1)
    print(f"{len(cases)} cases -> {path}")


if __name__ == "__main__":
    main()
