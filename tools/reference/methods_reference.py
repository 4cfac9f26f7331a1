#!/usr/bin/env python3
"""PyTorch reference values for the continual-learning methods (EWC, MAS, SI, A-GEM, LwF, the
LCIA EMA, O-LoRA, C-LoRA and TIR) on the tiny LLaMA `llama/fixtures/tiny_llama_untied` with the
PEFT LoRA adapter `llama/fixtures/peft_adapter`.

Requires (pip): torch (tested 2.15, CPU), numpy (tested 2.4.6), safetensors (tested 0.8.0).
Run from the repository root, with a Python that has them (e.g. a venv made by
`python3 -m venv /root/.cache/ref-venv && /root/.cache/ref-venv/bin/pip install torch numpy
safetensors`):

    /root/.cache/ref-venv/bin/python tools/reference/methods_reference.py

It writes `trainer/fixtures/methods/reference.json`. Everything is computed in torch float64 (the
Rust side is f32, so the reference is the more exact of the two), with autograd for gradients.

Model. The forward pass is `tools/reference/llama_reference.py`'s numpy port of Hugging Face
`LlamaForCausalLM` (RMSNorm, rotate-half RoPE, GQA with `repeat_kv`, causal + padding mask with
masked scores set to the float32 minimum, SwiGLU, untied `lm_head`, position ids
`cumsum(attention_mask) - 1` clamped at 0) re-written in torch, same math. The base weights are
used as stored (f16, widened to f64). The LoRA adapter is applied as PEFT does (no dropout):
each targeted projection (`q_proj`, `v_proj`, `down_proj`) computes
`W x + (lora_alpha / r) * B (A x)`, with `A` `[r, in]` and `B` `[out, r]`. Only the twelve
`lora_A` / `lora_B` tensors are trainable; theta0 is the adapter as stored (f32, widened). All
per-parameter quantities are keyed by PEFT name (`base_model.model.model.layers.{i}.{module}.
lora_{A|B}.weight`) and written as flat row-major lists in PEFT layout; `shapes` records the
shapes and `tensor_order` the sorted name order used wherever tensors are concatenated or drawn
in sequence.

Batches. Three fixed batches `x1`, `x2`, `memory` of two right-padded rows (length 8; rows of 8
and 6 real tokens, token 0 is padding, first token BOS = 1), with `labels` -100 on the prompt
positions (first 3-4 tokens) and on padding, else the token (HF causal-LM convention: the logits
at position i are scored against labels[i + 1]). `memory` is drawn from seeds tried in order
until the A-GEM dot product below is negative; the seed is recorded.

Losses.
- CE(theta, b) = mean over scored positions of -log softmax(logits[i])[labels[i + 1]]: exactly
  HF `LlamaForCausalLM(labels=...)` (shift, ignore_index = -100, mean).
- L_mas(theta, b) = mean over scored positions i (labels[i + 1] != -100) of sum_v logits[i, v]^2.
  Avalanche `avalanche/training/plugins/mas.py` uses `torch.norm(out, p="fro", dim=1).pow(2)
  .mean()` over a batch of per-sample class outputs; DEPARTURE: for a causal LM each scored token
  position is taken as one sample.
- KL (LwF): TRACE `model/Regular/LwF.py` as written,
  `F.kl_div(F.log_softmax(prev_logits / T, -1), F.softmax(new_logits / T, -1),
  reduction='batchmean')` with T = 2 and no T^2 factor, i.e.
  sum p_new * (log p_new - log p_prev) / batch_size; DEPARTURE: restricted to real positions
  (attention_mask == 1), summed over those positions and the vocabulary, divided by the batch
  size (2). p_new comes from the student (gradient flows through it), p_prev from the teacher
  (no gradient).

Perturbation. delta = 0.05 * standard normal from `torch.Generator().manual_seed(1234)`, drawn per
tensor in sorted PEFT-name order (`torch.randn(shape, generator=g, dtype=torch.float64)`), then
rounded to 6 decimals; the ROUNDED values are written and used, theta1 = theta0 + delta.

Quantities.
1. `grad_x1` = dCE(theta0, x1)/dtheta.
2. `ewc` (Kirkpatrick et al. 2017; Avalanche `training/plugins/ewc.py`, TRACE
   `model/Regular/EWC.py`): `fisher` = mean over batches [x1, x2] of (dCE(theta0, b)/dtheta)^2
   (empirical Fisher: squared batch-mean gradients summed, divided by the number of batches);
   `penalised_grad` = d/dtheta [CE(theta1, x1) + 0.5 * lambda * sum fisher * (theta1 - theta0)^2],
   lambda = 400 (theta* = theta0). `online_importance` = gamma * fisher + fisher_new with
   gamma = 0.5 and fisher_new the same Fisher on [x2] only at theta0 (Avalanche online mode,
   `decay_factor`).
3. `mas` (Aljundi et al. 2018; Avalanche `training/plugins/mas.py`): `importance` = mean over
   batches [x1, x2] of |dL_mas(theta0, b)/dtheta|; `penalised_grad` = d/dtheta [CE(theta1, x1) +
   lambda * sum importance * (theta1 - theta0)^2], lambda = 1 (no 1/2, as Avalanche);
   `merged` = 0.5 * importance_x1 + 0.5 * importance_x2 with importance_b = |dL_mas(theta0, b)/
   dtheta| (Avalanche's `alpha = 0.5` merge of old and new importance).
4. `si` (Zenke et al. 2017; Avalanche `training/plugins/synaptic_intelligence.py`): from theta0,
   3 steps of `torch.optim.AdamW(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0)` on
   [x1, x2, x1] with loss CE (the importance is zero on the first task, so the penalty adds
   nothing), gradients clipped by `torch.nn.utils.clip_grad_norm_(params, 1.0)` (global norm over
   the 12 tensors; scale = 1.0 / (norm + 1e-6) when that is < 1) before each step.
   trajectory += g_clipped * (theta_after - theta_before) per step; then
   importance = clamp(-trajectory / ((theta_end - theta0)^2 + xi), max=clip_to), xi = 1e-7,
   clip_to = 0.001 (Avalanche `update_ewc_data`, c = 1; no lower clamp).
   `penalised_grad` = d/dtheta [CE(theta1, x1) + lambda / 2 * sum importance *
   (theta1 - theta_end)^2], lambda = 1000. `grad_norm` is the pre-clipping global norm per step.
5. `agem` (Chaudhry et al. 2019; Avalanche `training/plugins/agem.py`): g = dCE(theta0, x1)/dtheta,
   g_ref = dCE(theta0, memory)/dtheta, flattened over the 12 tensors in sorted order;
   `dot` = <g, g_ref> (< 0 by the choice of `memory`);
   `projected` = g - (<g, g_ref> / <g_ref, g_ref>) * g_ref.
6. `lwf` (Li & Hoiem 2017; TRACE `model/Regular/LwF.py`): teacher theta0, student theta1, on x1:
   `kl` = KL above, `loss` = CE(theta1, x1) + kl (weight 1), `grad` = dloss/dtheta at theta1.
7. `ema` (LCIA; JingyangQiao/CoIN `peft/tuners/lora.py` `ema_update`): from theta0, 5 AdamW steps
   (settings as SI, clip 1.0, CE loss) on [x1, x2, x1, x2, x1]. After each optimizer step, for each
   tensor n in sorted order: on the first step ema_n = theta_n and alpha = 0.01 (CoIN's first
   call falls back to alpha 0.01 with ema = theta); from the second step on
   a = ||theta_n - ema_n||_1, b = ||g_n||_1 (this step's clipped gradient),
   c = ||g_n - g_prev_n||_1 (previous step's clipped gradient), alpha = 2 (1 + b) / (a c), and
   alpha = 0.01 unless 0 < alpha < 1 (also when a c = 0); ema_n = (1 - alpha) ema_n +
   alpha theta_n; then g_prev_n = g_n. `alpha` is 5 lists (per step) of 12 values (per tensor,
   sorted order); `alpha_raw` holds 2 (1 + b) / (a c) before the fallback (null on step 0), to
   show how close each in-range / fallback decision is to the threshold 1. The learning rate is the first of 0.01, 0.05, 0.1, 0.2 that gives a mix of
   in-range alphas and fallbacks; it is recorded as `lr`.

8. `olora` and `clora` (see `olora_reference`, `clora_reference`): the stored adapter is an
   earlier task's, folded into the base weights; the new adapter's factors are delta; the
   penalised loss's value and gradient on x1.

Values are written rounded to 8 decimals and 8 significant digits (error <= 5e-9 for |x| < 1 and
< 5e-7 for the largest values, ~30; far below the Rust tests' 1e-4 tolerance). Also written:
`losses`, a few scalar losses for debugging, and the pre-clipping gradient norms of SI and EMA.
Notes: `mas.merged` equals `mas.importance` by construction (both are the mean of the x1 and x2
importances); with clip_to = 0.001 every SI importance is clipped (`si.clipped_fraction`).
"""

import json
import os
import sys

import numpy as np
import torch
from safetensors.numpy import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from llama_reference import inv_freq  # noqa: E402  (numpy, float64)

ROOT = os.path.dirname(os.path.dirname(HERE))
BASE = os.path.join(ROOT, "llama", "fixtures", "tiny_llama_untied")
ADAPTER = os.path.join(ROOT, "llama", "fixtures", "peft_adapter")
OUT = os.path.join(ROOT, "trainer", "fixtures", "methods", "reference.json")

DT = torch.float64
NEG = float(np.finfo(np.float32).min)  # HF eager attention's masked score

SEQ_LEN = 8
VOCAB = 128
X1_SEED, X2_SEED, MEMORY_SEED0 = 11, 22, 100
DELTA_SEED, DELTA_SCALE = 1234, 0.05

ADAMW = {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}
CLIP_NORM = 1.0
EWC_LAMBDA, EWC_DECAY = 400.0, 0.5
MAS_LAMBDA, MAS_ALPHA = 1.0, 0.5
SI_LR, SI_BATCHES, SI_XI, SI_CLIP_TO, SI_LAMBDA = 0.01, ["x1", "x2", "x1"], 1e-7, 0.001, 1000.0
LWF_T, LWF_WEIGHT = 2.0, 1.0
EMA_BATCHES = ["x1", "x2", "x1", "x2", "x1"]
EMA_LRS = [0.01, 0.05, 0.1, 0.2]
EMA_FALLBACK = 0.01


# O-LoRA's lamda_1 default (run_uie_lora.py) and a non-zero lamda_2 (its scripts use 0-0.3) so
# that the L2 term is exercised.
OLORA_LAMBDA1 = 0.5
OLORA_LAMBDA2 = 0.1

# C-LoRA: λ for the tiny fixture, where the folded adapter's update has elements of ~0.1 rms and
# δ's ~0.01, so the penalty (~0.3) and its gradient are of the cross-entropy's order.
CLORA_LAMBDA = 10.0

# TIR: λ on the normalised importance and a made-up distance matrix among 3 seen tasks.
TIR_LAMBDA = 1e6
TIR_DISTANCES = [[0.0, 0.3, 0.5], [0.3, 0.0, 0.4], [0.5, 0.4, 0.0]]

# ---------------------------------------------------------------- model


def load_base():
    with open(os.path.join(BASE, "config.json")) as f:
        cfg = json.load(f)
    index = os.path.join(BASE, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    w = {}
    for name in files:
        for k, v in load_file(os.path.join(BASE, name)).items():
            w[k] = torch.tensor(v.astype(np.float64), dtype=DT)
    return cfg, w


def load_adapter():
    with open(os.path.join(ADAPTER, "adapter_config.json")) as f:
        acfg = json.load(f)
    theta = {
        k: torch.tensor(v.astype(np.float64), dtype=DT)
        for k, v in load_file(os.path.join(ADAPTER, "adapter_model.safetensors")).items()
    }
    return acfg, dict(sorted(theta.items()))


def rms_norm(x, w, eps):
    return w * (x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


class Model:
    def __init__(self):
        self.cfg, self.w = load_base()
        self.acfg, self.theta0 = load_adapter()
        self.scale = self.acfg["lora_alpha"] / self.acfg["r"]
        self.inv = torch.tensor(inv_freq(self.cfg), dtype=DT)

    def proj(self, x, theta, layer, module):
        y = x @ self.w[f"model.layers.{layer}.{module}.weight"].T
        prefix = f"base_model.model.model.layers.{layer}.{module}"
        a = theta.get(prefix + ".lora_A.weight")
        if a is not None:
            b = theta[prefix + ".lora_B.weight"]
            y = y + self.scale * ((x @ a.T) @ b.T)
        return y

    def logits(self, theta, batch):
        """HF LlamaForCausalLM logits [b, s, V] with the adapter `theta` applied."""
        cfg, w = self.cfg, self.w
        tokens = torch.tensor(batch["tokens"], dtype=torch.long)
        mask = torch.tensor(batch["attention_mask"], dtype=torch.long)
        b, s = tokens.shape
        nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
        hd = cfg["hidden_size"] // nh
        eps = cfg["rms_norm_eps"]
        pos = torch.clamp(torch.cumsum(mask, 1) - 1, min=0).to(DT)
        freqs = pos[..., None] * self.inv[None, None, :]
        emb = torch.cat([freqs, freqs], dim=-1)
        cos, sin = emb.cos()[:, None], emb.sin()[:, None]  # [b, 1, s, hd]
        causal = torch.tril(torch.ones(s, s, dtype=torch.bool))
        allowed = causal[None, None] & (mask[:, None, None, :] == 1)

        h = w["model.embed_tokens.weight"][tokens]
        for i in range(cfg["num_hidden_layers"]):
            p = f"model.layers.{i}."
            x = rms_norm(h, w[p + "input_layernorm.weight"], eps)
            q = self.proj(x, theta, i, "self_attn.q_proj").reshape(b, s, nh, hd).transpose(1, 2)
            k = self.proj(x, theta, i, "self_attn.k_proj").reshape(b, s, nkv, hd).transpose(1, 2)
            v = self.proj(x, theta, i, "self_attn.v_proj").reshape(b, s, nkv, hd).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            k = k.repeat_interleave(nh // nkv, dim=1)  # repeat_kv
            v = v.repeat_interleave(nh // nkv, dim=1)
            scores = q @ k.transpose(-1, -2) / (hd**0.5)
            scores = torch.where(allowed, scores, torch.tensor(NEG, dtype=DT))
            probs = torch.softmax(scores, dim=-1)
            attn = (probs @ v).transpose(1, 2).reshape(b, s, nh * hd)
            h = h + self.proj(attn, theta, i, "self_attn.o_proj")
            x = rms_norm(h, w[p + "post_attention_layernorm.weight"], eps)
            gate = torch.nn.functional.silu(self.proj(x, theta, i, "mlp.gate_proj"))
            up = self.proj(x, theta, i, "mlp.up_proj")
            h = h + self.proj(gate * up, theta, i, "mlp.down_proj")
        h = rms_norm(h, w["model.norm.weight"], eps)
        head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
        return h @ head.T


# ---------------------------------------------------------------- losses


def scored(batch):
    """[b, s-1] bool: logits position i is scored (labels[i + 1] != -100), and the targets."""
    labels = torch.tensor(batch["labels"], dtype=torch.long)[:, 1:]
    return labels != -100, labels


def ce(model, theta, batch):
    logits = model.logits(theta, batch)[:, :-1]
    keep, labels = scored(batch)
    logp = torch.log_softmax(logits, dim=-1)
    nll = -logp.gather(-1, labels.clamp(min=0)[..., None])[..., 0]
    return nll[keep].mean()


def mas_loss(model, theta, batch):
    logits = model.logits(theta, batch)[:, :-1]
    keep, _ = scored(batch)
    return (logits[keep] ** 2).sum(-1).mean()


def lwf_kl(model, teacher, student, batch):
    with torch.no_grad():
        prev = model.logits(teacher, batch)
    new = model.logits(student, batch)
    real = torch.tensor(batch["attention_mask"]) == 1
    log_prev = torch.log_softmax(prev / LWF_T, dim=-1)
    log_new = torch.log_softmax(new / LWF_T, dim=-1)
    kl = (log_new.exp() * (log_new - log_prev)).sum(-1)  # [b, s]
    return kl[real].sum() / len(batch["tokens"])


def grad(fn, theta):
    """(value, {name: d fn / d theta_name}) at `theta`."""
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in theta.items()}
    value = fn(leaves)
    gs = torch.autograd.grad(value, list(leaves.values()))
    return value.detach(), {k: g.detach() for k, g in zip(leaves, gs)}


def flat(t):
    return torch.cat([v.reshape(-1) for v in t.values()])


# ---------------------------------------------------------------- batches


def make_batch(seed, lengths=(8, 6), prompts=(4, 3)):
    rng = np.random.default_rng(seed)
    tokens, mask, labels = [], [], []
    for n, p in zip(lengths, prompts):
        row = [1] + rng.integers(3, VOCAB, size=n - 1).tolist()
        pad = SEQ_LEN - n
        tokens.append(row + [0] * pad)
        mask.append([1] * n + [0] * pad)
        labels.append([-100] * p + row[p:] + [-100] * pad)
    return {"seed": seed, "tokens": tokens, "attention_mask": mask, "labels": labels}


# ---------------------------------------------------------------- training loops


def train(model, batches, lr, on_step=None):
    """AdamW + clip_grad_norm_ on CE; calls on_step(step, g_clipped, before, after)."""
    params = [torch.nn.Parameter(v.detach().clone()) for v in model.theta0.values()]
    names = list(model.theta0)
    opt = torch.optim.AdamW(params, lr=lr, **ADAMW)
    norms = []
    for step, batch in enumerate(batches):
        opt.zero_grad()
        loss = ce(model, dict(zip(names, params)), batch)
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(params, CLIP_NORM)))
        g = {n: p.grad.detach().clone() for n, p in zip(names, params)}
        before = {n: p.detach().clone() for n, p in zip(names, params)}
        opt.step()
        after = {n: p.detach().clone() for n, p in zip(names, params)}
        if on_step is not None:
            on_step(step, g, before, after)
    return {n: p.detach().clone() for n, p in zip(names, params)}, norms


def ema_run(model, batches, lr):
    names = list(model.theta0)
    state = {"ema": {}, "g_prev": {}, "alpha": [], "raw": []}

    def on_step(step, g, before, after):
        row, raw_row = [], []
        for n in names:
            theta = after[n]
            if step == 0:
                alpha, raw = EMA_FALLBACK, None
                state["ema"][n] = theta.clone()
            else:
                ema = state["ema"][n]
                a = float((theta - ema).abs().sum())
                b = float(g[n].abs().sum())
                c = float((g[n] - state["g_prev"][n]).abs().sum())
                raw = 2.0 * (1.0 + b) / (a * c) if a * c != 0.0 else float("inf")
                alpha = raw if 0.0 < raw < 1.0 else EMA_FALLBACK
                state["ema"][n] = (1.0 - alpha) * ema + alpha * theta
            state["g_prev"][n] = g[n].clone()
            row.append(alpha)
            raw_row.append(raw)
        state["alpha"].append(row)
        state["raw"].append(raw_row)

    theta_end, norms = train(model, batches, lr, on_step)
    return theta_end, state["ema"], state["alpha"], state["raw"], norms


# ---------------------------------------------------------------- output


def sig(x):
    """Rounded to 8 decimals and to 8 significant digits (keeps the fixture smaller)."""
    return float(f"{round(float(x), 8):.8g}")


def tensors(t):
    """Per-tensor values to 6 significant digits (relative error ≤ 5e-7, far inside the tests'
    1e-4; keeps the fixture small)."""
    return {k: [float(f"{x:.6g}") for x in v.reshape(-1).tolist()] for k, v in t.items()}


def fold_adapter(theta_old):
    """A fresh model whose base weights have the adapter `theta_old` folded in (W + s·B A)."""
    folded = Model()
    for name, a_old in theta_old.items():
        if not name.endswith(".lora_A.weight"):
            continue
        module = name[len("base_model.model."):-len(".lora_A.weight")]
        b_old = theta_old[name.replace("lora_A", "lora_B")]
        folded.w[module + ".weight"] = folded.w[module + ".weight"] + folded.scale * (b_old @ a_old)
    return folded


def olora_reference(model, theta_old, delta, batch):
    """O-LoRA (cmnfriend/O-LoRA src/uie_trainer_lora.py, training_step): the stored adapter is
    the frozen one of an earlier task, folded into W (W + s·B_old A_old, the same forward as
    O-LoRA's unmerged old adapter without dropout); the new adapter's factors are δ. Loss =
    CE + λ1·Σ_modules Σ|A_old A_newᵀ| + λ2·Σ_new factors ‖θ‖₂ (unsquared Frobenius norm)."""
    folded = fold_adapter(theta_old)

    def loss(th):
        orth = sum(torch.abs(theta_old[n] @ th[n].T).sum() for n in th if n.endswith("lora_A.weight"))
        l2 = sum(torch.linalg.norm(th[n]) for n in th)
        return ce(folded, th, batch) + OLORA_LAMBDA1 * orth + OLORA_LAMBDA2 * l2, orth, l2

    value, g = grad(lambda th: loss(th)[0], delta)
    _, orth, l2 = loss(delta)
    return {
        "lambda1": OLORA_LAMBDA1, "lambda2": OLORA_LAMBDA2, "batch": "x1", "new_adapter": "delta",
        "orthogonal": sig(float(orth)), "l2": sig(float(l2)), "loss": sig(float(value)),
        "grad": tensors(g),
    }


def clora_reference(model, theta_old, delta, batch):
    """C-LoRA (Smith et al., arXiv 2304.06027, Sec. 4): the stored adapter is the finished one of
    an earlier task, folded into W (as in `olora_reference`); the new adapter's factors are δ.
    Loss = CE + λ·Σ_modules ‖P ⊙ ΔW‖²_F with P = s·B_old A_old the earlier update and
    ΔW = s·B_new A_new the new one (PEFT layout [out, in]; ⊙ elementwise)."""
    folded = fold_adapter(theta_old)

    def penalty(th):
        total = 0.0
        for n in th:
            if not n.endswith("lora_A.weight"):
                continue
            b = n.replace("lora_A", "lora_B")
            past = folded.scale * (theta_old[b] @ theta_old[n])
            update = folded.scale * (th[b] @ th[n])
            total = total + ((past * update) ** 2).sum()
        return total

    value, g = grad(lambda th: ce(folded, th, batch) + CLORA_LAMBDA * penalty(th), delta)
    return {
        "lambda": CLORA_LAMBDA, "batch": "x1", "new_adapter": "delta",
        "penalty": sig(CLORA_LAMBDA * float(penalty(delta))), "loss": sig(float(value)),
        "grad": tensors(g),
    }


def tir_reference(theta0, theta1, fisher_x1, fisher_x2, ce_x1_grad_at_theta1):
    """TIR as the CLMM code writes it (cl_learner/tir.py, task_encoder.py): each task's EWC
    importance normalised to sum 1 over all parameters, the elementwise max kept with the id of
    the task that gave it; before task t, Ω̃ = Ω·(1 − s(t, Id)) with s = sigmoid of the z-scored
    pairwise similarities (torch.std, unbiased), here x = 1 − W from a given distance matrix;
    penalty ½λ Σ Ω̃ (θ − θ*)² with θ* = θ at the end of the previous task (θ0 here)."""
    names = list(theta0)
    total1 = sum(float(fisher_x1[n].sum()) for n in names)
    total2 = sum(float(fisher_x2[n].sum()) for n in names)
    n1 = {n: fisher_x1[n] / total1 for n in names}
    n2 = {n: fisher_x2[n] / total2 for n in names}
    importance = {n: torch.maximum(n1[n], n2[n]) for n in names}
    source = {n: (n2[n] > n1[n]).to(DT) for n in names}
    w = torch.tensor(TIR_DISTANCES, dtype=DT)
    t = len(TIR_DISTANCES) - 1
    iu = torch.triu_indices(t + 1, t + 1, offset=1)
    pairs = 1.0 - w[iu[0], iu[1]]
    raw = 1.0 - w[t, :t]
    sim = torch.sigmoid((raw - pairs.mean()) / pairs.std())
    scaled = {n: importance[n] * (1.0 - sim[source[n].long()]) for n in names}
    grads = {n: ce_x1_grad_at_theta1[n] + TIR_LAMBDA * scaled[n] * (theta1[n] - theta0[n])
             for n in names}
    return {
        "lambda": TIR_LAMBDA, "distances": TIR_DISTANCES,
        "similarity": [sig(float(x)) for x in sim],
        "importance": tensors(importance), "source": tensors(source),
        "scaled": tensors(scaled), "penalised_grad": tensors(grads),
    }


def main():
    torch.set_default_dtype(DT)
    model = Model()
    theta0 = model.theta0
    names = list(theta0)
    assert len(names) == 12, names

    batches = {"x1": make_batch(X1_SEED), "x2": make_batch(X2_SEED, prompts=(3, 4))}

    # delta (rounded, and the rounded values are used)
    gen = torch.Generator().manual_seed(DELTA_SEED)
    delta = {}
    for n in names:
        d = DELTA_SCALE * torch.randn(theta0[n].shape, generator=gen, dtype=DT)
        delta[n] = torch.round(d, decimals=6)
    theta1 = {n: theta0[n] + delta[n] for n in names}

    def ce_of(batch):
        return lambda th: ce(model, th, batch)

    x1, x2 = batches["x1"], batches["x2"]
    ce_x1_0, g_x1 = grad(ce_of(x1), theta0)
    ce_x2_0, g_x2 = grad(ce_of(x2), theta0)
    ce_x1_1, _ = grad(ce_of(x1), theta1)

    # A-GEM memory batch: first seed giving a negative dot product
    seed = MEMORY_SEED0
    while True:
        memory = make_batch(seed)
        ce_mem, g_ref = grad(ce_of(memory), theta0)
        dot = float(flat(g_x1) @ flat(g_ref))
        if dot < 0:
            break
        seed += 1
    batches["memory"] = memory
    gf, rf = flat(g_x1), flat(g_ref)
    coef = float(gf @ rf) / float(rf @ rf)
    proj_flat = gf - coef * rf
    assert abs(float(proj_flat @ rf)) < 1e-12
    projected, off = {}, 0
    for n in names:
        k = theta0[n].numel()
        projected[n] = proj_flat[off : off + k].reshape(theta0[n].shape)
        off += k

    # EWC
    fisher = {n: (g_x1[n] ** 2 + g_x2[n] ** 2) / 2 for n in names}
    fisher_new = {n: g_x2[n] ** 2 for n in names}
    online = {n: EWC_DECAY * fisher[n] + fisher_new[n] for n in names}

    def ewc_obj(th):
        pen = sum((fisher[n] * (th[n] - theta0[n]) ** 2).sum() for n in names)
        return ce(model, th, x1) + 0.5 * EWC_LAMBDA * pen

    ewc_loss, ewc_grad = grad(ewc_obj, theta1)

    # MAS
    mas_x1_0, m1 = grad(lambda th: mas_loss(model, th, x1), theta0)
    mas_x2_0, m2 = grad(lambda th: mas_loss(model, th, x2), theta0)
    imp1 = {n: m1[n].abs() for n in names}
    imp2 = {n: m2[n].abs() for n in names}
    mas_imp = {n: (imp1[n] + imp2[n]) / 2 for n in names}
    mas_merged = {n: (1 - MAS_ALPHA) * imp1[n] + MAS_ALPHA * imp2[n] for n in names}

    def mas_obj(th):
        pen = sum((mas_imp[n] * (th[n] - theta0[n]) ** 2).sum() for n in names)
        return ce(model, th, x1) + MAS_LAMBDA * pen

    mas_pen_loss, mas_grad = grad(mas_obj, theta1)

    # SI
    trajectory = {n: torch.zeros_like(theta0[n]) for n in names}

    def si_step(step, g, before, after):
        for n in names:
            trajectory[n] += g[n] * (after[n] - before[n])

    si_end, si_norms = train(model, [batches[b] for b in SI_BATCHES], SI_LR, si_step)
    # Avalanche's cum_trajectory C (c = 1), before the sign flip and the clamp.
    si_cumulative = {n: trajectory[n] / ((si_end[n] - theta0[n]) ** 2 + SI_XI) for n in names}
    si_imp = {
        n: torch.clamp(-si_cumulative[n], max=SI_CLIP_TO)
        for n in names
    }

    def si_obj(th):
        pen = sum((si_imp[n] * (th[n] - si_end[n]) ** 2).sum() for n in names)
        return ce(model, th, x1) + SI_LAMBDA / 2 * pen

    si_pen_loss, si_grad = grad(si_obj, theta1)

    # LwF
    kl = lwf_kl(model, theta0, theta1, x1).detach()
    lwf_loss, lwf_grad = grad(
        lambda th: ce(model, th, x1) + LWF_WEIGHT * lwf_kl(model, theta0, th, x1), theta1
    )

    # EMA (LCIA)
    for lr in EMA_LRS:
        ema_end, ema, alphas, raw, ema_norms = ema_run(
            model, [batches[b] for b in EMA_BATCHES], lr
        )
        later = [a for row in alphas[1:] for a in row]
        in_range = sum(a != EMA_FALLBACK for a in later)
        if 0 < in_range < len(later):
            break
    else:
        raise SystemExit(f"no learning rate in {EMA_LRS} mixes in-range alphas and fallbacks")

    out = {
        "description": "tools/reference/methods_reference.py: torch float64 reference values "
        "for EWC, MAS, SI, A-GEM, LwF and the LCIA EMA on tiny_llama_untied + peft_adapter",
        "model": "llama/fixtures/tiny_llama_untied",
        "adapter": "llama/fixtures/peft_adapter",
        "lora_scale": model.scale,
        "tensor_order": names,
        "shapes": {n: list(theta0[n].shape) for n in names},
        "batches": batches,
        "delta": {"seed": DELTA_SEED, "scale": DELTA_SCALE, "rounded_decimals": 6,
                  "values": tensors(delta)},
        "losses": {
            "ce_x1_theta0": sig(ce_x1_0),
            "ce_x2_theta0": sig(ce_x2_0),
            "ce_memory_theta0": sig(ce_mem),
            "ce_x1_theta1": sig(ce_x1_1),
            "mas_x1_theta0": sig(mas_x1_0),
            "mas_x2_theta0": sig(mas_x2_0),
        },
        "grad_x1": tensors(g_x1),
        "ewc": {
            "lambda": EWC_LAMBDA,
            "batches": ["x1", "x2"],
            "fisher": tensors(fisher),
            "penalised_loss": sig(ewc_loss),
            "penalised_grad": tensors(ewc_grad),
            "online": {"decay": EWC_DECAY, "new_batches": ["x2"],
                       "online_importance": tensors(online)},
        },
        "mas": {
            "lambda": MAS_LAMBDA,
            "batches": ["x1", "x2"],
            "importance": tensors(mas_imp),
            "penalised_loss": sig(mas_pen_loss),
            "penalised_grad": tensors(mas_grad),
            "merge_alpha": MAS_ALPHA,
        },
        "si": {
            "lr": SI_LR, "betas": list(ADAMW["betas"]), "eps": ADAMW["eps"],
            "weight_decay": ADAMW["weight_decay"], "clip_norm": CLIP_NORM,
            "steps": len(SI_BATCHES), "batches": SI_BATCHES,
            "xi": SI_XI, "clip_to": SI_CLIP_TO, "lambda": SI_LAMBDA,
            "grad_norm": [sig(x) for x in si_norms],
            "trajectory": tensors(trajectory),
            "cumulative": tensors(si_cumulative),
            "importance": tensors(si_imp),
            "clipped_fraction": sig(sum(float((si_imp[n] >= SI_CLIP_TO).sum()) for n in names)
                                    / sum(theta0[n].numel() for n in names)),
            "theta_end": tensors(si_end),
            "penalised_loss": sig(si_pen_loss),
            "penalised_grad": tensors(si_grad),
        },
        "agem": {
            "memory_seed": seed,
            "dot": sig(dot),
            "ref_sq_norm": sig(float(rf @ rf)),
            "g_ref": tensors(g_ref),
            "projected": tensors(projected),
        },
        "lwf": {
            "temperature": LWF_T, "weight": LWF_WEIGHT, "batch": "x1",
            "kl": sig(kl), "loss": sig(lwf_loss),
            "grad": tensors(lwf_grad),
        },
        "ema": {
            "lr": lr, "betas": list(ADAMW["betas"]), "eps": ADAMW["eps"],
            "weight_decay": ADAMW["weight_decay"], "clip_norm": CLIP_NORM,
            "steps": len(EMA_BATCHES), "batches": EMA_BATCHES, "fallback_alpha": EMA_FALLBACK,
            "grad_norm": [sig(x) for x in ema_norms],
            "tensor_order": names,
            "alpha": [[sig(a) for a in row] for row in alphas],
            "alpha_raw": [[None if a is None else sig(a) for a in row] for row in raw],
            "ema": tensors(ema),
            "theta_end": tensors(ema_end),
        },
    }
    out["olora"] = olora_reference(model, theta0, delta, x1)
    out["clora"] = clora_reference(model, theta0, delta, x1)
    fisher_x1 = {n: g_x1[n] ** 2 for n in names}
    fisher_x2 = {n: g_x2[n] ** 2 for n in names}
    _, g_x1_theta1 = grad(ce_of(x1), theta1)
    out["tir"] = tir_reference(theta0, theta1, fisher_x1, fisher_x2, g_x1_theta1)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(out, f, separators=(",", ":"))

    def mx(t):
        return max(float(v.abs().max()) for v in t.values())

    print(f"wrote {os.path.relpath(OUT, ROOT)} ({os.path.getsize(OUT)} bytes)")
    print(f"agem: memory seed {seed}, dot {dot:.6g}")
    print(f"ema: lr {lr}, {in_range}/{len(later)} in-range alphas after step 1")
    for i, row in enumerate(alphas):
        print(f"  step {i}: " + " ".join(f"{a:.4g}" for a in row))
    margin = min(abs(a - 1.0) for row in raw[1:] for a in row)
    print(f"  closest raw alpha to the threshold 1: |alpha - 1| = {margin:.3g}")
    for key, t in [("delta", delta), ("grad_x1", g_x1), ("ewc.fisher", fisher),
                   ("ewc.penalised_grad", ewc_grad), ("ewc.online_importance", online),
                   ("mas.importance", mas_imp), ("mas.penalised_grad", mas_grad),
                   ("si.trajectory", trajectory),
                   ("si.importance", si_imp), ("si.theta_end", si_end),
                   ("si.penalised_grad", si_grad), ("agem.g_ref", g_ref),
                   ("agem.projected", projected), ("lwf.grad", lwf_grad),
                   ("ema.ema", ema), ("ema.theta_end", ema_end)]:
        print(f"  max |{key}| = {mx(t):.4g}")
    print(f"losses: ce_x1 {float(ce_x1_0):.6g}, kl {float(kl):.6g}, lwf {float(lwf_loss):.6g}")
    print(f"clora: penalty {out['clora']['penalty']:.6g}, loss {out['clora']['loss']:.6g}, "
          f"max |grad| {max(abs(x) for v in out['clora']['grad'].values() for x in v):.4g}")


if __name__ == "__main__":
    main()
