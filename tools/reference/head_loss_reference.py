#!/usr/bin/env python3
"""Reference loss and hidden-state gradient of the output head's cross-entropy for
`llama::kernels::head_loss`.

Requires (pip): torch (tested 2.15), numpy. As in Hugging Face `LlamaForCausalLM`: logits =
`hidden @ weight.T` (`lm_head`, no bias), then `torch.nn.CrossEntropyLoss`, here with
`reduction="sum"` (the crate divides by the number of scored positions afterwards), in float64;
the gradient with respect to `hidden` comes from torch autograd.

Writes `llama/fixtures/head_loss_reference.json`: `hidden` `[n, d]`, `weight` `[V, d]`,
`targets` `[n]` (flattened row-major), `loss` and `grad_hidden` `[n, d]`. The logits are spread
(weights of scale 3) so that the softmax is far from uniform, and the targets include the first
and last token ids.

Run from the repository root: `python3 tools/reference/head_loss_reference.py`
"""

import json

import numpy as np
import torch

N, D, V = 7, 16, 50


def main():
    rng = np.random.default_rng(20261201)
    hidden = torch.tensor(rng.normal(size=(N, D)), dtype=torch.float64, requires_grad=True)
    weight = torch.tensor(3.0 * rng.normal(size=(V, D)) / np.sqrt(D), dtype=torch.float64)
    targets = torch.tensor([0, V - 1, *rng.integers(0, V, size=N - 2)], dtype=torch.int64)

    logits = hidden @ weight.T
    loss = torch.nn.CrossEntropyLoss(reduction="sum")(logits, targets)
    loss.backward()

    flat = lambda t: [float(x) for x in t.detach().reshape(-1)]
    fixture = {
        "shape": {"rows": N, "hidden": D, "vocab": V},
        "hidden": flat(hidden),
        "weight": flat(weight),
        "targets": [int(y) for y in targets],
        "loss": float(loss.detach()),
        "grad_hidden": flat(hidden.grad),
        "versions": {"torch": torch.__version__, "numpy": np.__version__},
    }
    with open("llama/fixtures/head_loss_reference.json", "w") as f:
        json.dump(fixture, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
