"""Independent reference for `trainer plan` (InsCL replay planning), used by trainer/tests/plan_cli.rs.

Builds a 4-task sequence from the first four categories of the InsCL16 curriculum order
(real SuperNI instructions, instance counts and metadata tags; embeddings are seeded random
float32 vectors because this check is about the planning arithmetic, not the model), then
computes with POT and NLTK what the Rust planner must reproduce:
  - the pairwise Wasserstein matrix (exact OT, cosine cost, "real" instruction weights);
  - per stage the budget alpha*(i-1) and InsCL's dynamic quotas (floor of W_j/sum W * budget,
    remainder +1 to the largest W, ties to the earlier task);
  - InsInfo per instruction, normalised within each previous task (tags normalised: lower-case,
    letters and spaces, collapsed whitespace, Snowball English stem per word).

Needs: pip install pot==0.9.7.post1 numpy nltk==3.10.4
Run from the repo root: python3 tools/reference/plan_reference.py [../shared/data/superni-inscl16]
Writes shared/fixtures/plan_input.json and shared/fixtures/plan_expected.json.
"""
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import ot
from nltk.stem.snowball import SnowballStemmer

DATA = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/superni-inscl16")
OUT = Path("shared/fixtures")
ALPHA, DIM, SEED, CATEGORIES = 200, 16, 7, 4
stemmer = SnowballStemmer("english")


def as_list(value):
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def raw_tags(task):
    tags = []
    for field in ("Categories", "Reasoning", "Domains"):
        for value in as_list(task.get(field)):
            tags.extend(part.strip() for part in value.split("->"))
    return tags


def normalize(tag):
    text = re.sub(r"[^a-z ]", " ", tag.lower())
    words = text.split()
    return " ".join(stemmer.stem(w) for w in words) or None


categories = json.loads((DATA / "categories.json").read_text())
order = categories["orders"]["curriculum"][:CATEGORIES]
rng = np.random.default_rng(SEED)
tasks = []
for name in order:
    instructions = []
    for task_name in categories["categories"][name]:
        task = json.loads((DATA / "tasks" / f"{task_name}.json").read_text())
        definition = " ".join(as_list(task["Definition"]))
        instructions.append({
            "id": task_name,
            "text": definition,
            "count": len(task["Instances"]),
            "tags": raw_tags(task),
            "embedding": [float(v) for v in rng.standard_normal(DIM).astype(np.float32)],
        })
    tasks.append({"name": name, "instructions": instructions})

clouds = [np.array([q["embedding"] for q in t["instructions"]], dtype=np.float32).astype(np.float64) for t in tasks]
weights = [np.array([q["count"] for q in t["instructions"]], dtype=np.float64) for t in tasks]
weights = [w / w.sum() for w in weights]
T = len(tasks)
distances = [[0.0] * T for _ in range(T)]
for i in range(T):
    for j in range(i + 1, T):
        M = ot.dist(clouds[i], clouds[j], metric="cosine")
        distances[i][j] = distances[j][i] = float(ot.emd2(weights[i], weights[j], M))


def allocate_dynamic(w, budget):
    total = sum(w)
    quotas = [math.floor(x / total * budget) for x in w]
    rest = budget - sum(quotas)
    by_distance = sorted(range(len(w)), key=lambda j: (-w[j], j))
    for j in by_distance[:rest]:
        quotas[j] += 1
    return quotas


tag_sets = [[sorted({t for t in map(normalize, q["tags"]) if t}) for q in task["instructions"]] for task in tasks]
stages = []
for t in range(T):
    budget = ALPHA * t
    row = distances[t][:t]
    quotas = allocate_dynamic(row, budget) if t else []
    seen = [s for task_sets in tag_sets[: t + 1] for s in task_sets]
    n = len(seen)
    freq = {}
    for s in seen:
        for tag in s:
            freq[tag] = freq.get(tag, 0) + 1
    previous = []
    for j in range(t):
        scores = [sum(math.log(n / freq[tag]) for tag in s) for s in tag_sets[j]]
        total = sum(scores)
        scores = [x / total for x in scores] if total > 0 else [1 / len(scores)] * len(scores)
        previous.append({"task": tasks[j]["name"], "distance": row[j], "quota": quotas[j], "insinfo": scores})
    stages.append({"stage": t + 1, "task": tasks[t]["name"], "budget": budget, "previous": previous})

OUT.mkdir(parents=True, exist_ok=True)
(OUT / "plan_input.json").write_text(json.dumps({"tasks": tasks}, indent=1) + "\n")
expected = {"alpha": ALPHA, "tasks": [t["name"] for t in tasks], "distances": distances, "stages": stages}
(OUT / "plan_expected.json").write_text(json.dumps(expected, indent=1) + "\n")
print(f"wrote {OUT}/plan_input.json and plan_expected.json ({T} tasks)")
