#!/usr/bin/env python3
"""Reference values for llama::io::gguf, from the `gguf` Python package (llama.cpp's own reader).

Needs: pip install gguf==0.19.0 numpy   (numpy 1.26 or 2.x)
Run:   scripts/fetch-assets && python3 tools/reference/gguf_reference.py
Writes llama/fixtures/gguf_reference.json (< 300 KB):

- `quant_sizes`: (ggml id, block size, bytes per block) of every type from gguf.GGML_QUANT_SIZES.
- `random_blocks`: for each type llama::io::gguf dequantises, two blocks of seeded random bytes
  (f16 scales forced finite) and their values from gguf.quants.dequantize. Needs no asset.
- `unpermute`: a small [rows, cols] array, its llama.cpp permutation (convert_hf_to_gguf.py's
  `permute`) and the head counts, so Rust's inverse can be checked against numpy.
- `file`: for assets/SmolLM2-135M-Instruct.Q4_1.gguf, scalar metadata, array lengths and
  first elements, the full tensor directory, sampled dequantised values of several tensors
  of each type present, and the first rows of blk.0 attn_q / attn_k with the permutation
  undone (HF row order).
"""

import importlib.metadata
import json
import pathlib

import gguf
import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize

ROOT = pathlib.Path(__file__).resolve().parents[2]
ASSET = ROOT / "assets" / "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = ROOT / "llama" / "fixtures" / "gguf_reference.json"

DEQUANTIZABLE = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q6_K"]
# Byte offsets of the f16 scales in each block layout (ggml-common.h), kept finite in random blocks.
F16_FIELDS = {"F16": [0], "Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0],
              "Q4_K": [0, 2], "Q6_K": [208]}


def permute(w, n_head, n_head_kv=None):
    """convert_hf_to_gguf.py LlamaModel.permute (HF rotate-half rows -> interleaved pairs)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def unpermute(w, n_head):
    """The inverse of permute(w, n_head)."""
    return (w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def floats(a):
    return [float(x) for x in np.asarray(a, dtype=np.float32).ravel()]


def random_blocks(rng):
    out = {}
    for name in DEQUANTIZABLE:
        qtype = T[name]
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        raw = rng.integers(0, 256, size=(2, size), dtype=np.uint8)
        if name == "F32":
            raw = rng.normal(size=2 * block).astype("<f4").view(np.uint8).reshape(2, size)
        elif name == "BF16":
            raw = (rng.normal(size=2).astype("<f4").view("<u4") >> 16).astype("<u2").view(np.uint8)
            raw = raw.reshape(2, size)
        for at in F16_FIELDS.get(name, []):
            raw[:, at:at + 2] = rng.normal(scale=0.05, size=2).astype("<f2").view(np.uint8).reshape(2, 2)
        values = dequantize(raw.reshape(-1), qtype)
        out[name] = {"bytes": raw.reshape(-1).tobytes().hex(), "values": floats(values)}
    return out


def metadata_json(reader):
    scalars, arrays = {}, {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        value = field.contents()
        if isinstance(value, list):
            arrays[key] = {"len": len(value), "first": value[:24], "last": value[-3:]}
        else:
            scalars[key] = value
    return scalars, arrays


def file_reference():
    reader = gguf.GGUFReader(ASSET)
    scalars, arrays = metadata_json(reader)
    tensors = [{"name": t.name, "dims": [int(d) for d in t.shape], "type": t.tensor_type.name,
                "offset": int(t.data_offset - reader.data_offset)} for t in reader.tensors]
    by_name = {t.name: t for t in reader.tensors}

    def values(name):
        t = by_name[name]
        # GGUFReader gives the row-major array with numpy shape = reversed GGUF dims.
        return dequantize(t.data, t.tensor_type).reshape(-1)

    samples = {}
    per_type = {}
    for t in reader.tensors:
        per_type.setdefault(t.tensor_type.name, []).append(t.name)
    for names in per_type.values():
        picks = sorted({names[0], names[len(names) // 2], names[-1]})
        for name in picks:
            v = values(name)
            mid = len(v) // 2
            samples[name] = {"len": len(v), "ranges": [
                {"start": 0, "values": floats(v[:64])},
                {"start": mid, "values": floats(v[mid:mid + 64])},
                {"start": len(v) - 32, "values": floats(v[-32:])},
            ]}

    heads = int(reader.fields["llama.attention.head_count"].contents())
    kv_heads = int(reader.fields["llama.attention.head_count_kv"].contents())
    hf_rows = {}
    for gguf_name, hf_name, n_head in [("blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight", heads),
                                        ("blk.0.attn_k.weight", "model.layers.0.self_attn.k_proj.weight", kv_heads)]:
        t = by_name[gguf_name]
        w = dequantize(t.data, t.tensor_type).reshape(int(t.shape[1]), int(t.shape[0]))
        hf = unpermute(w, n_head)
        assert np.array_equal(permute(hf, heads, n_head if n_head != heads else None), w)
        # Rows 0..3 and 32..35: the first head's two halves (head_dim 64), which the permutation interleaves.
        hf_rows[hf_name] = {str(r): floats(hf[r, :48]) for r in [0, 1, 2, 3, 32, 33, 34, 35]}
    return {"asset": ASSET.name, "data_offset": int(reader.data_offset), "metadata": scalars,
            "arrays": arrays, "tensors": tensors, "samples": samples, "hf_rows": hf_rows}


def main():
    rng = np.random.default_rng(20240311)
    n_head, n_head_kv, head_dim, cols = 4, 2, 6, 3
    base = np.arange(n_head * head_dim * cols, dtype=np.float32).reshape(-1, cols)
    base_kv = np.arange(n_head_kv * head_dim * cols, dtype=np.float32).reshape(-1, cols)
    fixture = {
        "generator": (f"tools/reference/gguf_reference.py (gguf {importlib.metadata.version('gguf')}, "
                      f"numpy {np.__version__})"),
        "quant_sizes": {t.name: [t.value, *gguf.GGML_QUANT_SIZES[t]] for t in T},
        "random_blocks": random_blocks(rng),
        "unpermute": {
            "n_head": n_head, "n_head_kv": n_head_kv, "cols": cols,
            "q_hf": floats(base), "q_gguf": floats(permute(base, n_head, n_head)),
            "k_hf": floats(base_kv), "k_gguf": floats(permute(base_kv, n_head, n_head_kv)),
        },
        "file": file_reference(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(fixture, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
