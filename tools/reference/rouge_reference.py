#!/usr/bin/env python3
"""Reference values for `inscl::metrics::rouge` and `inscl::metrics::porter`.

Needs (pip): rouge-score==0.1.2, nltk==3.10.4 (rouge-score's stemmer is NLTK's
PorterStemmer), absl-py (a rouge-score dependency). Python 3.11.

Run from the repository root, with the benchmark data checked out next to it
(default ../shared/data, or pass its path):

    python3 tools/reference/rouge_reference.py [DATA_DIR]

Writes
  shared/fixtures/rouge_reference.json   ~370 (prediction, references) cases built from real
      SuperNI outputs, with rouge-score's ROUGE-L F x 100 (max over references, as SuperNI's
      metric_max_over_ground_truths) for use_stemmer False and True, the P/R/F of the first
      reference with stemming, and SuperNI's exact match (Tk-Instruct src/compute_metrics.py).
  shared/fixtures/porter_reference.json  NLTK PorterStemmer() stems of ~4000 distinct real words
      (every distinct suffix rewrite seen in the benchmark vocabulary, the irregular forms, hand
      edge cases, and a seeded random sample of the rest).
"""

import glob
import json
import os
import random
import re
import string
import sys

from nltk.stem import porter
from rouge_score import rouge_scorer, tokenize

SEED = 20240311
N_PORTER_WORDS = 4000

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "data")

SCORERS = {
    False: rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False),
    True: rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True),
}


def normalize_answer(s):
    """SuperNI (Tk-Instruct src/compute_metrics.py): lower, drop punctuation, fix whitespace.
    Articles are kept (SuperNI comments out remove_articles)."""
    exclude = set(string.punctuation)
    return " ".join("".join(ch for ch in s.lower() if ch not in exclude).split())


def rouge_max(prediction, references, stem):
    return 100.0 * max(
        SCORERS[stem].score(target=r, prediction=prediction)["rougeL"].fmeasure for r in references
    )


def load_tasks():
    """Returns (SuperNI-CL15 test sets, SuperNI-InsCL16 task files) as lists of task objects."""

    def load(pattern):
        tasks = []
        for path in sorted(glob.glob(os.path.join(DATA, pattern))):
            with open(path, encoding="utf-8") as f:
                tasks.append(json.load(f))
        if not tasks:
            sys.exit(f"no task files {pattern} under {DATA}")
        return tasks

    return load("superni-cl15/*/test.json"), load("superni-inscl16/tasks/*.json")


def outputs(instance):
    """An instance's references; a few stored files hold a bare string instead of a list."""
    out = instance["output"]
    return out if isinstance(out, list) else [out]


def words_of(text):
    return text.split()


def rouge_cases(cl15, inscl, rng):
    tasks = cl15 + inscl
    stemmer = porter.PorterStemmer()
    cases = []

    def add(kind, prediction, references):
        cases.append({"kind": kind, "prediction": prediction, "references": references})

    def cross_instance(task):
        # Prefer a pair with some token overlap (up to 20 tries) so that most cases exercise
        # the LCS rather than score 0.
        inst = task["Instances"]
        for _ in range(20):
            a, b = rng.sample(range(len(inst)), 2)
            if rouge_max(outputs(inst[a])[0], outputs(inst[b]), True) > 0:
                break
        add("cross_instance", outputs(inst[a])[0], outputs(inst[b]))

    # 1. Output of one instance against the references of another instance of the same task
    #    (all 15 CL tasks x 6, plus 40 SuperNI-InsCL16 tasks x 1).
    for task in cl15:
        for _ in range(6):
            cross_instance(task)
    for task in rng.sample([t for t in inscl if len(t["Instances"]) >= 2], 40):
        cross_instance(task)
    # 2. Truncations and reorderings of a reference (prefix, suffix, dropped words, shuffles).
    long_outputs = [o for t in tasks for i in t["Instances"] for o in outputs(i) if len(words_of(o)) >= 6]
    for out in rng.sample(long_outputs, 50):
        w = words_of(out)
        k = rng.randrange(1, len(w))
        choice = rng.randrange(4)
        if choice == 0:
            pred = " ".join(w[:k])
        elif choice == 1:
            pred = " ".join(w[k:])
        elif choice == 2:
            pred = " ".join(x for x in w if rng.random() < 0.7)
        else:
            pred = " ".join(rng.sample(w, len(w)))
        add("truncation", pred, [out])
    # 3. A span of the instance input as prediction (extractive-looking guesses).
    for task in rng.sample(tasks, 30):
        inst = rng.choice(task["Instances"])
        w = words_of(inst["input"])
        start = rng.randrange(len(w))
        add("input_span", " ".join(w[start:start + rng.randrange(1, 25)]), outputs(inst))
    # 4. Multi-reference: exact reference with perturbations, against several references.
    multi = [i for t in tasks for i in t["Instances"] if len(outputs(i)) >= 2]
    for inst in rng.sample(multi, min(20, len(multi))):
        add("multi_reference", rng.choice(outputs(inst)).upper(), outputs(inst))
    # 5. Inflected or pre-stemmed variants of a reference (only stemming makes them match).
    inflect = [lambda w: w + "s", lambda w: w + "ed", lambda w: w + "ing", lambda w: w + "ly", stemmer.stem]
    for out in rng.sample(long_outputs, 40):
        pred = " ".join(rng.choice(inflect)(w) if rng.random() < 0.5 else w for w in words_of(out))
        add("inflection", pred, [out])
    # 6. Case / punctuation / number / unicode / whitespace edge cases on real outputs.
    short_outputs = [o for t in tasks for i in t["Instances"] for o in outputs(i) if 0 < len(o) < 80]
    perturb = [
        lambda s: s.upper(),
        lambda s: s.lower() + ".",
        lambda s: "  " + s.replace(" ", "\n\t ") + " !!",
        lambda s: s.replace(" ", ", "),
        lambda s: s + " 1,000,000 2.5 3rd",
        lambda s: "The " + s,
        lambda s: "A " + s + " an",
        lambda s: s.replace("e", "é").replace("o", "ö"),
        lambda s: s.replace("k", "\u212a").replace("K", "\u212a"),  # Kelvin sign lower-cases to k
        lambda s: s.replace("i", "\u0130"),  # İ lower-cases to i + combining dot
        lambda s: s + " 😀 中文 ﬁne",
        lambda s: s.replace(" ", "\u00a0"),
        lambda s: s.replace(" ", "\u001f"),
        lambda s: s.replace(" ", "-"),
        lambda s: s.replace("'", "\u2019"),
        lambda s: s.replace("s ", "ing "),
        lambda s: "".join(s.split()),
        lambda s: s[: len(s) // 2],
    ]
    for out in rng.sample(short_outputs, 72):
        add("edge", rng.choice(perturb)(out), [out])
    for f in perturb:
        out = rng.choice(short_outputs)
        add("edge", out, [f(out)])
    # 7. Degenerate inputs.
    some = rng.choice(short_outputs)
    for pred, refs in [
        ("", [some]),
        (some, [""]),
        ("", [""]),
        ("   \n", [some]),
        ("!!! ... ???", [some]),
        (some, ["", some]),
        ("中文", ["中文"]),
        ("yes", ["Yes", "No"]),
        ("the", ["a"]),
        ("a the", ["the a"]),
        ("Innings dying skies", ["inning die sky"]),
        ("generalization relational conditional", ["general relate condition"]),
        ("yyyy yyyyy", ["yyyy"]),
    ]:
        add("degenerate", pred, refs)
    for case in cases:
        pred, refs = case["prediction"], case["references"]
        case["rouge_l"] = rouge_max(pred, refs, False)
        case["rouge_l_stem"] = rouge_max(pred, refs, True)
        first = SCORERS[True].score(target=refs[0], prediction=pred)["rougeL"]
        case["first_stem"] = {"precision": first.precision, "recall": first.recall, "fmeasure": first.fmeasure}
        case["exact_match"] = 100.0 * max(normalize_answer(pred) == normalize_answer(r) for r in refs)
    return cases


def porter_words(tasks, rng):
    stemmer = porter.PorterStemmer()
    vocab = set()
    for task in tasks:
        texts = [i["input"] for i in task["Instances"]] + [o for i in task["Instances"] for o in outputs(i)]
        definition = task["Definition"]
        texts += definition if isinstance(definition, list) else [definition]
        for text in texts:
            vocab.update(tokenize.tokenize(text, None))
    vocab = sorted(vocab)
    # Cover every distinct suffix rewrite (word tail -> stem tail after the common prefix).
    by_rewrite = {}
    for w in vocab:
        s = stemmer.stem(w)
        k = len(os.path.commonprefix([w, s]))
        by_rewrite.setdefault((w[k:], s[k:]), []).append(w)
    chosen = {rng.choice(ws) for ws in by_rewrite.values()}
    chosen |= set(stemmer.pool)
    chosen |= {
        "y", "by", "yy", "yyyy", "ies", "dies", "flies", "died", "spied", "enjoy", "happy", "sky",
        "generalli", "analogi", "geologi", "theologi", "radicalli", "hopefulli", "controll",
        "roll", "feed", "agreed", "bled", "sing", "hopping", "falling", "hissing", "fizzed",
        "failing", "filing", "ow", "owed", "oed", "ape", "aping", "syzygy", "1990s", "2nd",
        "caresses", "ponies", "ties", "caress", "cats", "conflated", "troubled", "sized",
    }
    rest = [w for w in vocab if w not in chosen]
    chosen |= set(rng.sample(rest, N_PORTER_WORDS - len(chosen)))
    return [[w, stemmer.stem(w)] for w in sorted(chosen)], len(vocab), len(by_rewrite)


def main():
    rng = random.Random(SEED)
    cl15, inscl = load_tasks()
    cases = rouge_cases(cl15, inscl, rng)
    words, vocab_size, rewrites = porter_words(cl15 + inscl, rng)
    out = os.path.join(ROOT, "shared", "fixtures")
    with open(os.path.join(out, "rouge_reference.json"), "w", encoding="utf-8") as f:
        json.dump({"generator": "tools/reference/rouge_reference.py", "rouge_score": "0.1.2", "cases": cases},
                  f, ensure_ascii=False, indent=0)
    with open(os.path.join(out, "porter_reference.json"), "w", encoding="utf-8") as f:
        json.dump({"generator": "tools/reference/rouge_reference.py", "nltk": "3.10.4", "words": words},
                  f, ensure_ascii=False, indent=0)
    print(f"{len(cases)} ROUGE cases; {len(words)} stems ({vocab_size} distinct words, {rewrites} rewrites)")


if __name__ == "__main__":
    main()
