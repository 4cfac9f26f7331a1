#!/usr/bin/env python3
"""Tiny random LLaMA checkpoints and reference logits for the `llama` crate's parity tests.

Requires (pip): numpy (tested 2.4.6), safetensors (tested 0.8.0). No torch / transformers:
the forward pass below re-implements Hugging Face `transformers`' `LlamaForCausalLM`
(modeling_llama.py, v4.4x) in plain numpy, in float64 so the reference is more exact than
either f32 implementation:

- RMSNorm: `w * x / sqrt(mean(x^2) + eps)`;
- RoPE in the rotate-half convention: `inv_freq = 1 / theta^(2i/d)`, `emb = cat(freqs, freqs)`,
  `q' = q*cos + rotate_half(q)*sin` with `rotate_half(x) = cat(-x2, x1)`; rope scaling
  `linear` (inv_freq / factor) and `llama3` (`_compute_llama3_parameters`);
- grouped-query attention: `repeat_kv` (query head h uses key/value head h // n_rep), scores
  scaled by `head_dim^-0.5`, causal mask and padding mask (masked scores set to the float32
  minimum, as HF's eager attention), softmax;
- SwiGLU MLP `down(silu(gate(x)) * up(x))`; tied or untied `lm_head`;
- position ids `cumsum(attention_mask) - 1` clamped at 0, which is what HF `generate` passes
  for padded batches (for unpadded and right-padded rows it equals `arange(seq_len)`), so a
  padded row's real-token logits equal the unpadded sequence's.

Writes, for each model, `llama/fixtures/<name>/`: `config.json`, the weights (`model.safetensors`,
or two shards plus `model.safetensors.index.json`) and `logits.json` with token batches,
attention masks, logits at every real (non-padding) position, and mean-pooled hidden states.
The reference uses the weights as stored (after rounding to the storage dtype).

Also writes `llama/fixtures/peft_adapter/`: a PEFT LoRA adapter for `tiny_llama_untied`
(`adapter_config.json`, `adapter_model.safetensors` with random non-zero `lora_A` `[r, in]` and
`lora_B` `[out, r]` in f32) and `logits.json`, the logits of the adapted model computed as PEFT
defines it: each targeted weight becomes `W + lora_alpha / r * B @ A`.

Run from the repository root: `python3 tools/reference/llama_reference.py`
"""

import json
import math
import os

import numpy as np
from safetensors.numpy import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
FIXTURES = os.path.join(ROOT, "llama", "fixtures")

BASE_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 128,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "max_position_embeddings": 256,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "hidden_act": "silu",
    "torch_dtype": "float32",
}

# (name, config overrides, storage dtype, shard count, seed)
MODELS = [
    ("tiny_llama_tied", {"tie_word_embeddings": True}, np.float16, 1, 1),
    ("tiny_llama_untied", {"tie_word_embeddings": False}, np.float16, 2, 2),
    (
        "tiny_llama_llama3",
        {
            "tie_word_embeddings": True,
            "rope_theta": 500000.0,
            "rope_scaling": {
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 16,
            },
        },
        np.float32,
        2,
        3,
    ),
]

SEQ_A = [1, 17, 42, 99, 5, 127, 64, 3, 88]
SEQ_B = [1, 7, 120, 33, 2]


def random_weights(cfg, rng):
    """HF-named weights, scaled so activations and logits are O(1) (not HF's 0.02 init)."""
    d, f, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    hd = d // cfg["num_attention_heads"]
    kv = cfg["num_key_value_heads"] * hd
    w = {"model.embed_tokens.weight": rng.normal(0.0, 2.0 / math.sqrt(d), (v, d))}

    def lin(out_f, in_f):
        return rng.normal(0.0, 1.0 / math.sqrt(in_f), (out_f, in_f))

    def norm():
        return 1.0 + 0.1 * rng.normal(size=(d,))

    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = norm()
        w[p + "self_attn.q_proj.weight"] = 2.0 * lin(d, d)
        w[p + "self_attn.k_proj.weight"] = 2.0 * lin(kv, d)
        w[p + "self_attn.v_proj.weight"] = lin(kv, d)
        w[p + "self_attn.o_proj.weight"] = lin(d, d)
        w[p + "post_attention_layernorm.weight"] = norm()
        w[p + "mlp.gate_proj.weight"] = lin(f, d)
        w[p + "mlp.up_proj.weight"] = lin(f, d)
        w[p + "mlp.down_proj.weight"] = lin(d, f)
    w["model.norm.weight"] = norm()
    if not cfg["tie_word_embeddings"]:
        w["lm_head.weight"] = lin(v, d)
    return w


def inv_freq(cfg):
    hd = cfg["hidden_size"] // cfg["num_attention_heads"]
    inv = 1.0 / (cfg["rope_theta"] ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
    scaling = cfg.get("rope_scaling")
    if scaling is None:
        return inv
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind == "linear":
        return inv / scaling["factor"]
    assert kind == "llama3", kind
    factor = scaling["factor"]
    low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
    old_ctx = scaling["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
    wavelen = 2 * math.pi / inv
    scaled = np.where(wavelen > low_wavelen, inv / factor, inv)
    smooth = (old_ctx / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
    return np.where(medium, smoothed, scaled)


def rms_norm(x, w, eps):
    return w * (x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def silu(x):
    return x / (1.0 + np.exp(-x))


def forward(cfg, w, tokens, mask):
    """Returns (logits [b, s, V], hidden_states list of [b, s, d], HF `output_hidden_states`)."""
    tokens, mask = np.asarray(tokens), np.asarray(mask)
    b, s = tokens.shape
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg["hidden_size"] // nh
    eps = cfg["rms_norm_eps"]
    pos = np.maximum(np.cumsum(mask, axis=1) - 1, 0)  # [b, s]
    freqs = pos[..., None] * inv_freq(cfg)[None, None, :]
    emb = np.concatenate([freqs, freqs], axis=-1)  # [b, s, hd]
    cos, sin = np.cos(emb)[:, None], np.sin(emb)[:, None]  # [b, 1, s, hd]
    causal = np.tril(np.ones((s, s), dtype=bool))
    allowed = causal[None, None] & (mask[:, None, None, :] == 1)  # [b, 1, s, s]
    neg = float(np.finfo(np.float32).min)

    h = w["model.embed_tokens.weight"][tokens]
    hidden = [h]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        x = rms_norm(h, w[p + "input_layernorm.weight"], eps)
        q = (x @ w[p + "self_attn.q_proj.weight"].T).reshape(b, s, nh, hd).transpose(0, 2, 1, 3)
        k = (x @ w[p + "self_attn.k_proj.weight"].T).reshape(b, s, nkv, hd).transpose(0, 2, 1, 3)
        v = (x @ w[p + "self_attn.v_proj.weight"].T).reshape(b, s, nkv, hd).transpose(0, 2, 1, 3)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = np.repeat(k, nh // nkv, axis=1)  # repeat_kv: head h uses kv head h // n_rep
        v = np.repeat(v, nh // nkv, axis=1)
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd)
        scores = np.where(allowed, scores, neg)
        scores = scores - scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=-1, keepdims=True)
        attn = (probs @ v).transpose(0, 2, 1, 3).reshape(b, s, nh * hd)
        h = h + attn @ w[p + "self_attn.o_proj.weight"].T
        x = rms_norm(h, w[p + "post_attention_layernorm.weight"], eps)
        gate = silu(x @ w[p + "mlp.gate_proj.weight"].T)
        up = x @ w[p + "mlp.up_proj.weight"].T
        h = h + (gate * up) @ w[p + "mlp.down_proj.weight"].T
        hidden.append(h)
    h = rms_norm(h, w["model.norm.weight"], eps)
    hidden[-1] = h  # HF: the last entry of `hidden_states` is after the final norm
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return h @ head.T, hidden


def pad(seqs, left):
    s = max(len(x) for x in seqs)
    tokens, mask = [], []
    for x in seqs:
        p = s - len(x)
        tokens.append([0] * p + x if left else x + [0] * p)
        mask.append([0] * p + [1] * len(x) if left else [1] * len(x) + [0] * p)
    return tokens, mask


def save_weights(path, weights, dtype, shards):
    stored = {k: v.astype(dtype) for k, v in weights.items()}
    names = sorted(stored)
    if shards == 1:
        save_file(stored, os.path.join(path, "model.safetensors"))
    else:
        weight_map = {}
        per = math.ceil(len(names) / shards)
        for i in range(shards):
            fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            part = names[i * per : (i + 1) * per]
            save_file({k: stored[k] for k in part}, os.path.join(path, fname))
            weight_map.update({k: fname for k in part})
        total = sum(v.nbytes for v in stored.values())
        with open(os.path.join(path, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    return {k: v.astype(np.float64) for k, v in stored.items()}


def rounded(a):
    return np.round(a, 6).tolist()


# PEFT adapter on this base: (base, r, lora_alpha, target modules, seed)
ADAPTER = ("tiny_llama_untied", 4, 8.0, ["self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj"], 7)


def write_adapter(cfg, w):
    base, r, alpha, targets, seed = ADAPTER
    rng = np.random.default_rng(seed)
    path = os.path.join(FIXTURES, "peft_adapter")
    os.makedirs(path, exist_ok=True)
    factors, adapted = {}, dict(w)
    for i in range(cfg["num_hidden_layers"]):
        for module in targets:
            weight = f"model.layers.{i}.{module}.weight"
            out_f, in_f = w[weight].shape
            a = rng.normal(0.0, 1.0 / math.sqrt(in_f), (r, in_f)).astype(np.float32)
            b = rng.normal(0.0, 0.25, (out_f, r)).astype(np.float32)
            prefix = f"base_model.model.model.layers.{i}.{module}"
            factors[prefix + ".lora_A.weight"] = a
            factors[prefix + ".lora_B.weight"] = b
            adapted[weight] = w[weight] + alpha / r * (b.astype(np.float64) @ a.astype(np.float64))
    save_file(factors, os.path.join(path, "adapter_model.safetensors"))
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base,
        "r": r,
        "lora_alpha": alpha,
        "lora_dropout": 0.0,
        "bias": "none",
        "target_modules": [m.split(".")[-1] for m in targets],
    }
    with open(os.path.join(path, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2)
    tokens, mask = pad([SEQ_A, SEQ_B], left=False)
    logits, _ = forward(cfg, adapted, tokens, mask)
    real = [
        rounded(logits[row, [j for j, m in enumerate(mask[row]) if m == 1]])
        for row in range(len(tokens))
    ]
    reference = {"base": base, "tokens": tokens, "attention_mask": mask, "logits": real}
    with open(os.path.join(path, "logits.json"), "w") as f:
        json.dump(reference, f, separators=(",", ":"))
    print("peft_adapter", sorted(os.listdir(path)))


def main():
    for name, overrides, dtype, shards, seed in MODELS:
        cfg = dict(BASE_CONFIG, **overrides)
        path = os.path.join(FIXTURES, name)
        os.makedirs(path, exist_ok=True)
        for f in os.listdir(path):
            if f.endswith(".safetensors") or f.endswith(".index.json"):
                os.remove(os.path.join(path, f))
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        w = save_weights(path, random_weights(cfg, np.random.default_rng(seed)), dtype, shards)

        # Independent check of the padding semantics: each padded row's real positions must
        # reproduce the unpadded sequence's logits.
        single = {}
        for seq in (SEQ_A, SEQ_B):
            single[len(seq)] = forward(cfg, w, [seq], [[1] * len(seq)])[0][0]

        cases = []
        for case, (tokens, mask) in {
            "single": ([SEQ_A], [[1] * len(SEQ_A)]),
            "right_padded": pad([SEQ_A, SEQ_B], left=False),
            "left_padded": pad([SEQ_B, SEQ_A], left=True),
        }.items():
            logits, hidden = forward(cfg, w, tokens, mask)
            m = np.asarray(mask, dtype=np.float64)
            real = []
            for r in range(len(tokens)):
                idx = [j for j in range(len(mask[r])) if mask[r][j] == 1]
                ref = single[len(idx)]
                assert np.max(np.abs(logits[r, idx] - ref)) < 1e-9, (name, case)
                real.append(rounded(logits[r, idx]))
            pooled = {
                str(layer): rounded((hidden[layer] * m[..., None]).sum(1) / m.sum(1)[:, None])
                for layer in (1, cfg["num_hidden_layers"])
            }
            cases.append(
                {
                    "name": case,
                    "tokens": tokens,
                    "attention_mask": mask,
                    "logits": real,
                    "mean_pooled_hidden": pooled,
                }
            )
        with open(os.path.join(path, "logits.json"), "w") as f:
            json.dump({"model": name, "cases": cases}, f, separators=(",", ":"))
        sizes = {f: os.path.getsize(os.path.join(path, f)) for f in sorted(os.listdir(path))}
        print(name, sizes)
        if name == ADAPTER[0]:
            write_adapter(cfg, w)


if __name__ == "__main__":
    main()
