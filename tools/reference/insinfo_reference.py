#!/usr/bin/env python3
"""Reference values for `inscl::insinfo` and the allocators and InsInfo shares of `inscl::replay`.

Writes shared/fixtures/insinfo.json, read by shared/tests/insinfo_reference.rs and
shared/tests/replay_reference.rs.

Needs: Python 3.11 (3.12 changed the built-in sum() of floats to a compensated sum, which moves
the last digit of some "statistics" values and of the generated "insinfo_shares" scores) and
nltk == 3.10.x (pip install nltk==3.10.*; only the Snowball stemmer is used, no NLTK data
download). Run from the repository root:

    PYTHONHASHSEED=1 python3 tools/reference/insinfo_reference.py

(InsInfo sums math.log over a Python set, whose order follows the string hash seed; any seed
gives values within 1e-12, which is all the tests ask, and seed 1 reproduces the committed
fixture bit for bit.)

Independent of the Rust code: NLTK's SnowballStemmer("english") stands in for rust-stemmers, the
Levenshtein distance is a plain dynamic programme and InsInfo uses math.log.

Allocation ("allocation" cases) follows the official InsCL code (InsCL.py, `cal_dynamic_num`) and
records two answers per case:

- "dynamic_official": `cal_dynamic_num` as written: norm = [w / sum(W)], quota = int(norm *
  budget), then, if the quotas fall short, one extra instance for each w in
  `sorted(norm)[-add_num:]` at `norm.index(w)` (and, if over, one fewer for each w in
  `sorted(norm)[:del_num]`). `list.index` returns the first of exactly tied tasks every time,
  so that task may receive several extras while its twins get none. null where the official
  code raises: all distances 0 (ZeroDivisionError in its `normalization`).
- "dynamic_spread": the project's named departure (`inscl::replay::allocate_dynamic`): the same
  floors, the extras one each to distinct tasks, largest W first and ties to the earlier task
  (cycling if ever more extras than tasks); an excess is taken back one at a time from the
  non-empty quotas of the smallest W, ties the later task first; all distances 0 -> uniform.
- "ties_differ": whether "dynamic_official" is a list that differs from "dynamic_spread"; the
  script asserts that this happens only where distances tie exactly. The Rust tests expect
  `allocate_dynamic` to equal "dynamic_spread" everywhere and "dynamic_official" wherever it
  is a list and "ties_differ" is false.

InsInfo shares ("insinfo_shares" cases) follow the official `sample_example` for a quota at
least the number of instructions: scores normalised and sorted descending as the official
`ins_list`/`score_list`; instruction i first gets int(score_i * quota) instances, raised to 1
when below 1, and only those raised instructions start in the protected `single_ins_ls`. The
official trim then removes random examples of unprotected instructions, so an instruction whose
share was exactly 1 can lose its only instance ("official_may_drop": some share is exactly 1 and
the initial total exceeds the quota). The project's named departure: every instruction keeps
at least one instance. "official_sample_raises": the official code would fail on the case
(`random.sample(ins_data, n)` with fewer instances than n, or too few instances in the task to
reach the quota), where the Rust sampler cycles.
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


def allocate_official(w, budget):
    """InsCL.py `cal_dynamic_num` as written, from the distances on; None where it raises."""
    total = sum(w)
    try:
        norm = [x / total for x in w]  # `normalization`: ZeroDivisionError when sum(W) == 0
    except ZeroDivisionError:
        return None
    quotas = [int(x * budget) for x in norm]
    sorted_norm = sorted(norm)
    if sum(quotas) > budget:
        for x in sorted_norm[:sum(quotas) - budget]:
            quotas[norm.index(x)] -= 1
    if sum(quotas) < budget:
        for x in sorted_norm[-(budget - sum(quotas)):]:
            quotas[norm.index(x)] += 1
    assert sum(quotas) == budget, "inconsistent total number!"  # the official assertion
    return quotas


def allocate_spread(w, budget):
    """The project's departure: extras to distinct tasks (largest W first, ties the earlier)."""
    total = sum(w)
    if not w or total <= 0:
        return allocate_uniform(len(w), budget)
    quotas = [int(x / total * budget) for x in w]
    largest_first = sorted(range(len(w)), key=lambda j: -w[j])  # stable: ties keep task order
    smallest_first = largest_first[::-1]  # ties: the later task first
    assigned, k = sum(quotas), 0
    while assigned > budget:
        j = smallest_first[k % len(w)]
        if quotas[j] > 0:
            quotas[j] -= 1
            assigned -= 1
        k += 1
    for k in range(budget - assigned):
        quotas[largest_first[k % len(w)]] += 1
    return quotas


def insinfo_share(rng):
    """One `sample_example` case with quota >= instructions, as the official code sets it up."""
    m = rng.randint(2, 10)
    raw = [0.0 if rng.random() < 0.1 else rng.expovariate(1.0) ** 3 for _ in range(m)]
    if sum(raw) == 0:
        raw[0] = 1.0
    raw.sort(reverse=True)  # get_InsInfo_dic sorts by score, then normalises
    scores = [x / sum(raw) for x in raw]
    quota = rng.randint(m, 4 * m)
    shares = [int(r * quota) for r in scores]
    initial = [max(1, s) for s in shares]
    protected = [i for i, s in enumerate(shares) if s < 1]  # single_ins_ls before the trim
    # Enough instances for random.sample, except in a few cases (the official code raises).
    counts = [a + rng.randint(0, 4) for a in initial]
    if rng.random() < 0.15:
        counts[rng.randrange(m)] = 1
    total = sum(initial)
    raises = (any(c < a for c, a in zip(counts, initial))
              or (total < quota and sum(counts) < quota))
    return {"counts": counts, "scores": scores, "score_bits": [float_bits(x) for x in scores],
            "quota": quota, "official_initial": initial, "official_protected": protected,
            "official_initial_total": total,
            "official_may_drop": total > quota and any(s == 1 for s in shares),
            "official_sample_raises": raises}


def float_bits(x):
    """The IEEE-754 bits that pin the exact double, whatever the JSON float parser does."""
    return struct.unpack("<Q", struct.pack("<d", x))[0]


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
        official = allocate_official(w, budget)
        spread = allocate_spread(w, budget)
        assert official is not None or sum(w) == 0
        if official is not None and official != spread:
            tied = {x for x in w if w.count(x) > 1}
            assert tied, f"official and spread differ without tied distances: {w}"
        allocation.append({"distances": w, "distance_bits": [float_bits(x) for x in w],
                           "budget": budget, "dynamic_official": official,
                           "dynamic_spread": spread,
                           "ties_differ": official is not None and official != spread,
                           "uniform": allocate_uniform(n, budget)})

    # A stream of its own, so that the cases above keep their values.
    share_rng = random.Random(20240312)
    insinfo_shares = [insinfo_share(share_rng) for _ in range(20)]

    fixture = {
        "source": "tools/reference/insinfo_reference.py (nltk SnowballStemmer('english'))",
        "normalize": normalize_cases,
        "merge": {"tag_sets": merge_sets, "cases": merge_cases},
        "statistics": {"tasks": tasks, "stages": statistics},
        "allocation": allocation,
        "insinfo_shares": insinfo_shares,
    }
    OUT.write_text(json.dumps(fixture, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
    differ = sum(c["ties_differ"] for c in allocation)
    raises = sum(c["dynamic_official"] is None for c in allocation)
    drop = sum(c["official_may_drop"] for c in insinfo_shares)
    print(f"allocation: {len(allocation)} cases, {differ} official != spread (exact ties), "
          f"{raises} where the official code raises (all distances 0)")
    print(f"insinfo_shares: {len(insinfo_shares)} cases, {drop} where the official trim may "
          f"drop an instruction, "
          f"{sum(c['official_sample_raises'] for c in insinfo_shares)} where it raises")


if __name__ == "__main__":
    main()
