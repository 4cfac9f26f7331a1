#!/usr/bin/env python3
"""Power calculation for a `trainer study`: how many paired (seed, order) cells a comparison
needs. Reads `study.json`, takes each paired comparison's observed sd of the differences
(a − b over matched cells) and gives the number of pairs n at which a two-sided paired test at
level 0.05 has 80% power for a true mean difference δ:

    n = ((t_{1-α/2, n-1} + t_{1-β, n-1}) · sd / δ)²,  iterated from the normal quantiles

(the paired t-test's sample size, e.g. Chow, Shao & Wang, "Sample Size Calculations in Clinical
Research", §3.1). `trainer study` reports an exact sign-flip permutation test, whose power with
these n is close to the t-test's for roughly normal differences; that is an approximation, and
with a pilot of a few pairs the sd itself is uncertain (its 95% interval is printed).

Usage: tools/study_power.py STUDY_FOLDER_OR_JSON [--metric ap] [--delta 2,3,5] [--arm A]
"""
import argparse
import json
import math
import os
import statistics

# Student-t quantiles by the Cornish-Fisher series in the normal quantile (Abramowitz & Stegun
# 26.7.5): at the 0.975 level off by -0.032 at df = 2, -0.004 at df = 3, under 1e-3 from df = 4
# (checked against scipy.stats.t.ppf); the sample sizes below start at df = 1 and rarely end
# below df = 5.
def t_quantile(p, df):
    z = statistics.NormalDist().inv_cdf(p)
    g1 = (z ** 3 + z) / 4
    g2 = (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96
    g3 = (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384
    g4 = (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z) / 92160
    return z + g1 / df + g2 / df ** 2 + g3 / df ** 3 + g4 / df ** 4


def pairs_needed(sd, delta, alpha=0.05, power=0.8):
    """Smallest n with (t_{1-α/2,n-1} + t_{power,n-1})·sd/δ ≤ √n."""
    if delta <= 0 or sd <= 0:
        return None
    n = 2
    while n < 10_000:
        need = ((t_quantile(1 - alpha / 2, n - 1) + t_quantile(power, n - 1)) * sd / delta) ** 2
        if need <= n:
            return n
        n += 1
    return None


def chi2_interval_of_sd(sd, n):
    """95% interval of the sd from n pairs (chi-square with n-1 df, Wilson–Hilferty)."""
    df = n - 1
    def chi2(p):
        z = statistics.NormalDist().inv_cdf(p)
        return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3
    return sd * math.sqrt(df / chi2(0.975)), sd * math.sqrt(df / chi2(0.025))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study")
    parser.add_argument("--metric", default="ap")
    parser.add_argument("--delta", default="2,3,5")
    parser.add_argument("--arm", default="inscl", help="only comparisons that involve this arm")
    args = parser.parse_args()
    path = args.study if args.study.endswith(".json") else os.path.join(args.study, "study.json")
    study = json.load(open(path))
    deltas = [float(d) for d in args.delta.split(",")]
    print(f"{args.metric}: pairs for 80% power, two-sided α = 0.05 (paired t approximation)")
    print(f"{'comparison (a - b)':28} {'n':>3} {'mean':>7} {'sd':>6} {'sd 95% CI':>15} "
          f"{'n(observed)':>11} " + " ".join(f"{'n(δ=' + format(d, 'g') + ')':>8}" for d in deltas))
    for comparison in study["comparisons"]:
        a, b = comparison["a"], comparison["b"]
        if args.arm and args.arm not in (a, b) and not any(args.arm in x.split("+") for x in (a, b)):
            continue
        paired = comparison["metrics"].get(args.metric)
        if not paired:
            continue
        diff = paired["difference"]
        n, mean, sd = diff["n"], diff["mean"], diff.get("sd")
        if sd is None or n < 2:
            continue
        low, high = chi2_interval_of_sd(sd, n) if n > 2 else (float("nan"), float("nan"))
        observed = pairs_needed(sd, abs(mean))
        cells = [pairs_needed(sd, d) for d in deltas]
        show = lambda v: "-" if v is None else str(v)
        print(f"{a + ' - ' + b:28} {n:>3} {mean:>7.2f} {sd:>6.2f} [{low:5.2f}, {high:6.2f}] "
              f"{show(observed):>11} " + " ".join(f"{show(c):>8}" for c in cells))


if __name__ == "__main__":
    main()
