#!/usr/bin/env python3
"""Reference output and gradients of the SwiGLU gate for `llama::kernels::swiglu`.

Requires (pip): torch (tested 2.15), numpy. The gate is Hugging Face `transformers`'
`LlamaMLP` (models/llama/modeling_llama.py) as written, `act_fn(gate_proj(x)) * up_proj(x)`
with `act_fn` = `torch.nn.functional.silu`, here on the projections' outputs `gate` and `up`
directly, in float64. Gradients come from torch autograd, independent of the crate's
hand-written backward pass.

`gate` and `up` are `[2, 3, 37]` (37: four 8-wide vectors and a remainder per row): normal
values times 4, with a few extremes (±30, ±90) where e^(−x) overflows or underflows float32.
Loss: `sum(output * weight)`. Writes `llama/fixtures/swiglu_reference.json` with the inputs,
`weight`, `output`, `grad_gate` and `grad_up`, all flattened row-major.

Run from the repository root: `python3 tools/reference/swiglu_reference.py`
"""

import json

import numpy as np
import torch

SHAPE = (2, 3, 37)
EXTREMES = [30.0, -30.0, 90.0, -90.0]


def main():
    rng = np.random.default_rng(20261201)
    gate = rng.normal(size=SHAPE) * 4.0
    gate.reshape(-1)[: len(EXTREMES)] = EXTREMES
    # float32 inputs, as the crate sees them, widened to float64 for the reference
    as_input = lambda a: torch.tensor(a.astype(np.float32), dtype=torch.float64, requires_grad=True)
    gate, up = as_input(gate), as_input(rng.normal(size=SHAPE) * 4.0)
    weight = torch.tensor(rng.normal(size=SHAPE).astype(np.float32), dtype=torch.float64)

    output = torch.nn.functional.silu(gate) * up
    (output * weight).sum().backward()

    flat = lambda t: [float(x) for x in t.detach().reshape(-1)]
    fixture = {
        "shape": list(SHAPE),
        "gate": flat(gate),
        "up": flat(up),
        "weight": flat(weight),
        "output": flat(output),
        "grad_gate": flat(gate.grad),
        "grad_up": flat(up.grad),
        "versions": {"torch": torch.__version__, "numpy": np.__version__},
    }
    with open("llama/fixtures/swiglu_reference.json", "w") as f:
        json.dump(fixture, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
