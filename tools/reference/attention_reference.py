#!/usr/bin/env python3
"""Reference output and gradients of masked grouped-query attention for `llama::kernels::attention`.

Requires (pip): torch (tested 2.15), numpy. The forward pass is Hugging Face `transformers`'
`eager_attention_forward` (models/llama/modeling_llama.py) as written: `repeat_kv` on keys and
values, `matmul(q, kᵀ) * scaling`, plus the additive mask (0 where a query may attend, the
float32 minimum where it may not), softmax in float32 semantics (here float64), `matmul` with
the values. Gradients come from torch autograd in float64, independent of the crate's
hand-written backward pass.

Two cases, each a batch of two rows, row 0 unpadded and row 1 left-padded, so that row 1's
first queries may attend to nothing:
- `attention_reference.json`: 5 positions, 4 query heads on 2 key/value heads, padding 2
  (small enough that the flex kernel runs its heads on one thread).
- `attention_reference_long.json`: 70 positions (more than one block of the flex kernel's 32
  query rows, more than one 8-wide vector of scores per row, and enough work for its heads
  to run in parallel), 2 query heads on 1 key/value head, head dimension 8, padding 37 (the
  whole first block of row 1 fully blocked).

HF's float32-minimum fill averages V at the fully blocked queries, where the crate outputs
zeros (a deliberate departure, tested as its own case); no real position reads those
queries, so the loss weights `weight` are 0 on them and the gradients below do not depend on
what those rows output.

Loss: `sum(output * weight)`. Each fixture holds the
inputs (`query` `[b, h, s, d]`, `key`/`value` `[b, h_kv, t, d]` before `repeat_kv`,
`attention_mask` `[b, t]`, `weight`), `output` and the gradients `grad_query`, `grad_key`,
`grad_value` (after summing over the repeated heads), all flattened row-major.

Run from the repository root: `python3 tools/reference/attention_reference.py`
"""

import json
import math

import numpy as np
import torch

CASES = [
    # file, seed, batch, heads, kv_heads, seq, head_dim, padding of row 1
    ("attention_reference", 20261130, 2, 4, 2, 5, 8, 2),
    ("attention_reference_long", 20261201, 2, 2, 1, 70, 8, 37),
]


def repeat_kv(x, n_rep):
    """HF `repeat_kv`: [b, h_kv, t, d] -> [b, h_kv * n_rep, t, d]."""
    b, h_kv, t, d = x.shape
    return x[:, :, None, :, :].expand(b, h_kv, n_rep, t, d).reshape(b, h_kv * n_rep, t, d)


def additive_mask(attention_mask):
    """HF's 4-D causal mask from a [b, t] padding mask: 0 = attend, float32 min = blocked."""
    b, t = attention_mask.shape
    causal = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
    blocked = causal[None, :, :] | (attention_mask[:, None, :] == 0)
    mask = torch.zeros(b, 1, t, t, dtype=torch.float64)
    return mask.masked_fill(blocked[:, None, :, :], torch.finfo(torch.float32).min)


def eager_attention(query, key, value, attention_mask):
    h, h_kv, d = query.shape[1], key.shape[1], query.shape[3]
    scaling = d**-0.5
    key, value = repeat_kv(key, h // h_kv), repeat_kv(value, h // h_kv)
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    weights = weights + additive_mask(attention_mask)
    weights = torch.softmax(weights, dim=-1)
    return torch.matmul(weights, value)


def write_case(name, seed, B, H, H_KV, S, D, PADDING):
    rng = np.random.default_rng(seed)
    tensor = lambda *shape: torch.tensor(rng.normal(size=shape), dtype=torch.float64, requires_grad=True)
    query, key, value = tensor(B, H, S, D), tensor(B, H_KV, S, D), tensor(B, H_KV, S, D)
    attention_mask = torch.ones(B, S, dtype=torch.int64)
    attention_mask[1, :PADDING] = 0
    weight = torch.tensor(rng.normal(size=(B, H, S, D)), dtype=torch.float64)
    weight[1, :, :PADDING, :] = 0.0

    output = eager_attention(query, key, value, attention_mask)
    (output * weight).sum().backward()

    # 9 significant digits: float32 precision, which is what the crate reads
    flat = lambda t: [float(f"{float(x):.9g}") for x in t.detach().reshape(-1)]
    fixture = {
        "shape": {"batch": B, "heads": H, "kv_heads": H_KV, "seq": S, "head_dim": D},
        "scale": 1.0 / math.sqrt(D),
        "query": flat(query),
        "key": flat(key),
        "value": flat(value),
        "attention_mask": [int(x) for x in attention_mask.reshape(-1)],
        "weight": flat(weight),
        "output": flat(output),
        "grad_query": flat(query.grad),
        "grad_key": flat(key.grad),
        "grad_value": flat(value.grad),
        "versions": {"torch": torch.__version__, "numpy": np.__version__},
    }
    with open(f"llama/fixtures/{name}.json", "w") as f:
        json.dump(fixture, f, indent=1)
        f.write("\n")


def main():
    for case in CASES:
        write_case(*case)


if __name__ == "__main__":
    main()
