#!/usr/bin/env python3
"""Reference values for `inscl::insinfo` and the allocators of `inscl::replay`.

Writes shared/fixtures/insinfo.json, read by shared/tests/insinfo_reference.rs and
shared/tests/replay_reference.rs.

Needs: Python >= 3.10, nltk == 3.10.x (pip install nltk; only the Snowball stemmer is used, no
NLTK data download). Run from the repository root:

    python3 tools/reference/insinfo_reference.py

Independent of the Rust code: NLTK's SnowballStemmer("english") stands in for rust-stemmers, the
Levenshtein distance is a plain dynamic programme, InsInfo uses math.log, and the allocation
follows the official InsCL code (cal_dynamic_num: int(w / sum(w) * budget), then one extra
instance for each of the tasks with the largest distance), with ties broken towards the earlier
task.
"""

import json
import math
import random
import re
import struct
from collections import Counter
from pathlib import Path

from nltk.stem.snowball import SnowballStemmer

STEMMER = SnowballStemmer("english")
OUT = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "insinfo.json"


def normalize(tag, stem):
    """Lower-case, ASCII letters only, collapse whitespace, Snowball-stem each word."""
    words = re.sub(r"[^a-z]+", " ", tag.lower()).split()
    if stem:
        words = [STEMMER.stem(w) for w in words]
    return " ".join(words) or None


def levenshtein(a, b):
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def similarity(a, b):
    if not a and not b:
        return 1.0
    return 1.0 - levenshtein(a, b) / max(len(a), len(b))


def merge(tag_sets, threshold):
    """Leader clustering: most frequent tag first (ties: smallest), absorbing similar tags."""
    freq = Counter(t for s in tag_sets for t in s)
    order = sorted(freq, key=lambda t: (-freq[t], t))
    canonical = {}
    for i, leader in enumerate(order):
        if leader in canonical:
            continue
        canonical[leader] = leader
        for cand in order[i + 1:]:
            if cand not in canonical and similarity(leader, cand) >= threshold:
                canonical[cand] = leader
    return [sorted({canonical[t] for t in s}) for s in tag_sets]


def insinfo(tags, n, freq):
    return sum(math.log(n / freq[t]) for t in set(tags))


def allocate_uniform(tasks, budget):
    return [budget // tasks + (j < budget % tasks) for j in range(tasks)]


def allocate_dynamic(w, budget):
    total = sum(w)
    if total <= 0:
        return allocate_uniform(len(w), budget)
    quotas = [int(x / total * budget) for x in w]
    assert sum(quotas) <= budget
    largest_first = sorted(range(len(w)), key=lambda j: (-w[j], j))
    for k in range(budget - sum(quotas)):
        quotas[largest_first[k % len(w)]] += 1
    return quotas


def main():
    rng = random.Random(20240311)

    raw_tags = [
        "Math-Problems ", "data analysis", "Creative Writing!!", "Coding_2 (Python3)",
        "information extraction", "sentiment-analysis", "generalization", "relational databases",
        "skis", "dying", "news", "Summarizations", "Question Answering", "multi-step reasoning",
        "   ", "123", "Café Reviews", "argued", "happily", "conditional probability", "ÉCOLE",
        "naïve bayes", "Translation / Localisation", "JSON-formatting", "knowledge QA",
        "running", "historical-events", "e-mail writing", "grammar_correction", "Puzzles & Riddles",
    ]
    normalize_cases = [
        {"raw": t, "stemmed": normalize(t, True), "unstemmed": normalize(t, False)}
        for t in raw_tags
    ]

    spellings = ["summarize", "summarise", "summarization", "color", "colour", "math", "maths",
                 "mathematics", "translation", "translate", "code generation", "code generator",
                 "question answer", "question answering", "poem", "poetry", "email", "e mail"]
    merge_sets = [sorted(set(rng.sample(spellings, rng.randint(1, 4)))) for _ in range(25)]
    merge_cases = [
        {"threshold": th, "expected": merge(merge_sets, th)} for th in (0.6, 0.75, 0.85, 0.95)
    ]

    vocab = [f"tag{chr(97 + i)}" for i in range(12)]
    weights = [1.0 / (i + 1) for i in range(len(vocab))]
    tasks = []
    for _ in range(4):
        task = []
        for _ in range(rng.randint(3, 8)):
            k = rng.randint(0, 4)
            task.append(sorted(set(rng.choices(vocab, weights=weights, k=k))))
        tasks.append(task)
    # Every instruction carries "common" in the last task, so its rare-vs-common contrast differs.
    tasks[-1] = [sorted(set(s) | {"common"}) for s in tasks[-1]]
    statistics = []
    for seen in range(1, len(tasks) + 1):
        instructions = [s for task in tasks[:seen] for s in task]
        n = len(instructions)
        freq = Counter(t for s in instructions for t in set(s))
        scores, normalized = [], []
        for task in tasks[:seen]:
            raw = [insinfo(s, n, freq) for s in task]
            total = sum(raw)
            scores.append(raw)
            normalized.append([x / total for x in raw] if total > 0 else [1 / len(raw)] * len(raw))
        statistics.append({"tasks_seen": seen, "instructions": n,
                           "frequencies": dict(sorted(freq.items())),
                           "insinfo": scores, "normalized": normalized})

    allocation = []
    for _ in range(40):
        n = rng.randint(1, 15)
        kind = rng.random()
        if kind < 0.3:
            w = [rng.choice([0.1, 0.25, 0.5]) for _ in range(n)]  # many ties
        elif kind < 0.4:
            w = [0.0] * n
        else:
            w = [rng.uniform(0.0, 2.0) for _ in range(n)]
        budget = 200 * rng.randint(0, 15) + rng.randint(0, 3)
        # The IEEE-754 bits pin the exact doubles, whatever the JSON float parser does.
        bits = [struct.unpack("<Q", struct.pack("<d", x))[0] for x in w]
        allocation.append({"distances": w, "distance_bits": bits, "budget": budget,
                           "dynamic": allocate_dynamic(w, budget),
                           "uniform": allocate_uniform(n, budget)})

    fixture = {
        "source": "tools/reference/insinfo_reference.py (nltk SnowballStemmer('english'))",
        "normalize": normalize_cases,
        "merge": {"tag_sets": merge_sets, "cases": merge_cases},
        "statistics": {"tasks": tasks, "stages": statistics},
        "allocation": allocation,
    }
    OUT.write_text(json.dumps(fixture, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
