#!/usr/bin/env python3
"""Summarises the forgetting sweep (tools/forgetting_sweep.sh): per point and strategy the mean,
sd and 95% Student-t interval over seeds of AP, F.Ra and BWT (ROUGE-L x 100, as
`results.json`), and the mean wall time per run (sum of the stage files' `wall_seconds`).
Prints the README table and writes studies/forgetting-sweep.json (every run's metrics, R matrix,
settings and wall time) beside it.

Usage: tools/forgetting_sweep.py [RUNS=runs/forgetting-sweep]
"""
import glob
import json
import os
import re
import statistics
import sys

# Two-sided 95% Student-t quantiles t_{0.975, df} (scipy.stats.t.ppf(0.975, df)).
T975 = {1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.7764, 5: 2.5706, 6: 2.4469, 7: 2.3646,
        8: 2.3060, 9: 2.2622, 10: 2.2281, 11: 2.2010, 12: 2.1788, 13: 2.1604, 14: 2.1448,
        15: 2.1314, 19: 2.0930, 29: 2.0452}

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def runs(folder):
    """Every finished run folder `<point>-<strategy>-s<seed>` under `folder`."""
    for results_file in sorted(glob.glob(os.path.join(folder, "*", "results.json"))):
        run = os.path.dirname(results_file)
        match = re.fullmatch(r"(.+)-(none|random|inscl|dynamic|insinfo)-s(\d+)", os.path.basename(run))
        if not match:
            continue
        manifest = json.load(open(os.path.join(run, "run.json")))
        results = json.load(open(results_file))
        if len(results["scores"]) < len(manifest["tasks"]):
            continue  # unfinished
        stages = glob.glob(os.path.join(run, "stages", "stage-*.json"))
        config = manifest["config"]
        yield {
            "point": match.group(1),
            "strategy": match.group(2),
            "seed": int(match.group(3)),
            "tasks": [t["name"] for t in manifest["tasks"]],
            "settings": {
                "max_train": config["data"].get("max_train"),
                "max_test": config["data"].get("max_test"),
                "lr": config["training"]["lr"],
                "epochs": config["training"]["epochs"],
                "finetuning": config["training"]["method"],
                "alpha": config["strategy"]["alpha"],
            },
            "ap": results["summary"]["ap"],
            "forgetting": results["summary"]["forgetting"],
            "bwt": results["summary"]["bwt"],
            "fwt": results["summary"]["fwt"],
            "scores": results["scores"],
            "wall_seconds": sum(json.load(open(s)).get("wall_seconds", 0.0) for s in stages),
        }


def interval(values):
    """`mean [low, high]` (95% t-interval) or the one value."""
    mean = statistics.mean(values)
    if len(values) < 2:
        return f"{mean:.1f}"
    half = T975[len(values) - 1] * statistics.stdev(values) / len(values) ** 0.5
    return f"{mean:.1f} [{mean - half:.1f}, {mean + half:.1f}]"


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "runs", "forgetting-sweep")
    records = list(runs(folder))
    groups = {}
    for r in records:
        groups.setdefault((r["point"], r["strategy"]), []).append(r)
    print("| point | strategy | seeds | AP | F.Ra | BWT | min/run |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for (point, strategy), rows in groups.items():
        print(f"| {point} | {strategy} | {len(rows)} | "
              + " | ".join(interval([r[k] for r in rows]) for k in ("ap", "forgetting", "bwt"))
              + f" | {statistics.mean(r['wall_seconds'] for r in rows) / 60:.1f} |")
    out = os.path.join(ROOT, "studies", "forgetting-sweep.json")
    with open(out, "w") as f:
        json.dump({"kind": "forgetting-sweep", "runs": records}, f, indent=1)
    print(f"\nwrote {os.path.relpath(out, ROOT)} ({len(records)} runs)")


if __name__ == "__main__":
    main()
