#!/usr/bin/env python3
"""Reference values for `inscl::metrics::study` (the statistics of `trainer study`).

Writes shared/fixtures/study_reference.json, read by shared/tests/study_reference.rs.

Needs: Python >= 3.10, scipy == 1.17.x, numpy (pip install scipy numpy). Run from the
repository root:

    python3 tools/reference/study_reference.py

Independent of the Rust code: scipy.stats.t for the t-interval of the mean,
scipy.stats.permutation_test (paired samples, exact: n_resamples=inf, two-sided) for the
sign-flip p-value, scipy.stats.bootstrap (percentile, 100,000 resamples) for the bootstrap
interval, which the Rust side, drawing its own 10,000 resamples, matches only within
Monte-Carlo error.
"""

import json
from pathlib import Path

import numpy as np
from scipy import stats

OUT = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "study_reference.json"


def describe(values):
    x = np.asarray(values, dtype=float)
    n = len(x)
    mean = float(x.mean())
    sd = float(x.std(ddof=1))
    t = float(stats.t.ppf(0.975, n - 1))
    half = t * sd / np.sqrt(n)
    return {"n": n, "mean": mean, "sd": sd, "t": t, "ci95": [mean - half, mean + half]}


def paired(a, b, seed):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    exact = stats.permutation_test(
        (a, b), lambda x, y, axis: np.mean(x - y, axis=axis), permutation_type="samples",
        vectorized=True, n_resamples=np.inf, alternative="two-sided")
    boot = stats.bootstrap(
        ((a - b),), np.mean, method="percentile", n_resamples=100_000, confidence_level=0.95,
        rng=np.random.default_rng(seed))
    return {"difference": describe(a - b), "p_value": float(exact.pvalue),
            "bootstrap_ci95": [float(boot.confidence_interval.low),
                               float(boot.confidence_interval.high)]}


def main():
    rng = np.random.default_rng(20261130)
    describe_cases = []
    for n in (2, 3, 5, 6, 12):
        values = [round(float(v), 3) for v in rng.normal(40.0, 8.0, n)]
        describe_cases.append({"values": values, **describe(values)})
    paired_cases = []
    for n, shift in ((3, 0.0), (6, 2.5), (6, -0.5), (9, 4.0), (12, 1.0)):
        a = [round(float(v), 3) for v in rng.normal(50.0, 6.0, n)]
        b = [round(x - shift + float(e), 3) for x, e in zip(a, rng.normal(0.0, 3.0, n))]
        paired_cases.append({"a": a, "b": b, **paired(a, b, n)})
    fixture = {
        "source": "tools/reference/study_reference.py (scipy " + __import__("scipy").__version__ + ")",
        "describe": describe_cases,
        "paired": paired_cases,
    }
    OUT.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
