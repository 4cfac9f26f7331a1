#!/usr/bin/env python3
"""Random-weight LLaMA checkpoints with the layer shapes of real models, for the scale table of
`tools/bench/RESULTS.md` (driver: `tools/bench/scale.sh`).

Usage: scale_checkpoints.py SIZE FORMAT OUT
  SIZE    smollm2-360m | tinyllama-1b | llama3.2-3b | llama-7b | llama3-8b (see SIZES)
  FORMAT  bf16  -> OUT/ is an HF folder: config.json, the byte-level tokenizer of
                   llama/fixtures/byte_tokenizer (tokenizer.json, tokenizer_config.json) and
                   model-NNNNN-of-NNNNN.safetensors shards (<= 2 GiB) with their index
          q4_k | q4_0 | q8_0
                -> OUT is a GGUF file: the projection weights in that block format (q4_k
                   rows that are not whole 256-value blocks take Q5_0, as llama.cpp's
                   quantiser falls back), the embedding, norms and output head F32

Every size keeps its model's hidden size, MLP width, layer count and head counts, but takes the
fixture tokenizer's vocabulary of 259 tokens (the table says so): the compute of the decoder
layers is the model's, its embedding and output head are tiny. Weights are random: bf16 values
drawn from 256 quantiles of N(0, 0.02^2); quantised blocks are random bytes with fixed f16
scales chosen so that values stay within about +-0.05. The compute cost does not depend on the
values. Tensors are generated and written one at a time (a 7B bf16 checkpoint is 13 GB).

Needs numpy, safetensors and gguf (the bench venv of lora_throughput.sh has them).
"""

import json
import pathlib
import shutil
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOKENIZER = ROOT / "llama" / "fixtures" / "byte_tokenizer"
VOCAB = 259
SHARD_BYTES = 2 << 30

# (hidden, intermediate, layers, heads, kv heads, rope theta, tied) from each model's config.json.
SIZES = {
    "smollm2-360m": (960, 2560, 32, 15, 5, 100000.0, True),  # HuggingFaceTB/SmolLM2-360M
    "tinyllama-1b": (2048, 5632, 22, 32, 4, 10000.0, False),  # TinyLlama/TinyLlama-1.1B
    "llama3.2-3b": (3072, 8192, 28, 24, 8, 500000.0, True),  # meta-llama/Llama-3.2-3B
    "llama-7b": (4096, 11008, 32, 32, 32, 10000.0, False),  # huggyllama/llama-7b
    "llama3-8b": (4096, 14336, 32, 32, 8, 500000.0, False),  # meta-llama/Meta-Llama-3-8B
}


def config(size):
    d, ff, layers, heads, kv, theta, tied = SIZES[size]
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": VOCAB,
        "hidden_size": d, "intermediate_size": ff, "num_hidden_layers": layers,
        "num_attention_heads": heads, "num_key_value_heads": kv, "rms_norm_eps": 1e-5,
        "rope_theta": theta, "max_position_embeddings": 4096, "tie_word_embeddings": tied,
        "bos_token_id": 257, "eos_token_id": 258, "hidden_act": "silu", "torch_dtype": "bfloat16",
    }


def tensors(cfg):
    """(HF name, [out, in] or [n]) of every tensor, in file order."""
    d, ff, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    hd = d // cfg["num_attention_heads"]
    q, kv = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd
    yield "model.embed_tokens.weight", [v, d]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        yield p + "input_layernorm.weight", [d]
        for name, shape in [("self_attn.q_proj", [q, d]), ("self_attn.k_proj", [kv, d]),
                            ("self_attn.v_proj", [kv, d]), ("self_attn.o_proj", [d, q]),
                            ("mlp.gate_proj", [ff, d]), ("mlp.up_proj", [ff, d]),
                            ("mlp.down_proj", [d, ff])]:
            yield p + name + ".weight", shape
        yield p + "post_attention_layernorm.weight", [d]
    yield "model.norm.weight", [d]
    if not cfg["tie_word_embeddings"]:
        yield "lm_head.weight", [v, d]


def bf16_bits(shape, rng, table):
    """Random bf16 bit patterns (uint16) of `shape`: norms 1.0, others from `table`."""
    if len(shape) == 1:
        return np.full(shape, 0x3F80, dtype=np.uint16)
    return table[rng.integers(0, 256, size=shape, dtype=np.uint8)]


def normal_table():
    """bf16 bits of the 256 mid-quantiles of N(0, 0.02^2)."""
    from statistics import NormalDist
    values = np.array([NormalDist(0, 0.02).inv_cdf((i + 0.5) / 256) for i in range(256)],
                      dtype=np.float32)
    bits = values.view(np.uint32)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16  # round to nearest even
    return rounded.astype(np.uint16)


def write_bf16(cfg, out, rng):
    from safetensors.numpy import save_file
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg, indent=1))
    for f in ["tokenizer.json", "tokenizer_config.json"]:
        shutil.copy(TOKENIZER / f, out / f)
    table = normal_table()
    shards, current, size = [], {}, 0
    for name, shape in tensors(cfg):
        nbytes = 2 * int(np.prod(shape))
        if current and size + nbytes > SHARD_BYTES:
            shards.append(current)
            current, size = {}, 0
        current[name] = shape
        size += nbytes
    shards.append(current)
    weight_map = {}
    for k, shard in enumerate(shards):
        file = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        # safetensors' numpy API has no bfloat16: write uint16 bits, then patch the dtype in
        # the header (same byte length: "U16" -> "BF16" changes it, so rewrite the header).
        arrays = {name: bf16_bits(shape, rng, table) for name, shape in shard.items()}
        path = out / file
        save_file(arrays, str(path), metadata={"format": "pt"})
        del arrays
        retag_bf16(path)
        weight_map.update({name: file for name in shard})
        print(f"{file}: {len(shard)} tensors", file=sys.stderr)
    total = sum(2 * int(np.prod(s)) for _, s in tensors(cfg))
    (out / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1))


def retag_bf16(path):
    """Rewrites a safetensors file's header so that its U16 tensors read as BF16, streaming
    the data (a shard is up to 2 GiB)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        for name, info in header.items():
            if name != "__metadata__" and info["dtype"] == "U16":
                info["dtype"] = "BF16"
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * (-(8 + len(text)) % 8)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as g:
            g.write(len(text).to_bytes(8, "little"))
            g.write(text)
            shutil.copyfileobj(f, g, 64 << 20)
    tmp.replace(path)


# Bytes per block, f16 scale fields (byte offset, value) of each GGUF block format.
BLOCKS = {
    "q4_0": (32, 18, [(0, 0.006)]),  # x = d (q - 8): |x| <= 0.05
    "q8_0": (32, 34, [(0, 0.0004)]),  # x = d q: |x| <= 0.05
    "q4_k": (256, 144, [(0, 0.00005), (2, 0.0004)]),  # x = d sc q - dmin m
    "q5_0": (32, 22, [(0, 0.003)]),  # x = d (q - 16)
}


def block_format(fmt, cols):
    """The format a projection with `cols` inputs takes: llama.cpp's fallback for k-quants."""
    return "q5_0" if fmt == "q4_k" and cols % 256 else fmt


def random_blocks(rows, cols, fmt, rng):
    block, size, scales = BLOCKS[fmt]
    data = rng.integers(0, 256, size=(rows * cols // block, size), dtype=np.uint8)
    for offset, value in scales:
        data[:, offset:offset + 2] = np.frombuffer(np.float16(value).tobytes(), dtype=np.uint8)
    return data.reshape(rows, cols // block * size)


def write_gguf(cfg, out, fmt, rng):
    import gguf
    qtypes = {"q4_0": gguf.GGMLQuantizationType.Q4_0, "q8_0": gguf.GGMLQuantizationType.Q8_0,
              "q4_k": gguf.GGMLQuantizationType.Q4_K, "q5_0": gguf.GGMLQuantizationType.Q5_0}
    out.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(out), "llama")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_vocab_size(cfg["vocab_size"])
    names = {"model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output",
             "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q",
             "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}

    def gguf_name(hf):
        stem = hf[: -len(".weight")]
        if stem in names:
            return names[stem] + ".weight"
        _, _, layer, part = stem.split(".", 3)
        return f"blk.{layer}.{names[part]}.weight"

    plan = []
    for name, shape in tensors(cfg):
        projection = name.endswith("_proj.weight")
        if projection:
            block, size, _ = BLOCKS[block_format(fmt, shape[1])]
            byte_shape = (shape[0], shape[1] // block * size)
            w.add_tensor_info(gguf_name(name), byte_shape, np.dtype(np.uint8),
                              byte_shape[0] * byte_shape[1],
                              raw_dtype=qtypes[block_format(fmt, shape[1])])
        else:
            w.add_tensor_info(gguf_name(name), shape, np.dtype(np.float32),
                              4 * int(np.prod(shape)))
        plan.append((name, shape, projection))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for name, shape, projection in plan:
        if projection:
            w.write_tensor_data(random_blocks(shape[0], shape[1], block_format(fmt, shape[1]), rng))
        elif len(shape) == 1:
            w.write_tensor_data(np.ones(shape, dtype=np.float32))
        else:
            w.write_tensor_data(rng.normal(0, 0.02, size=shape).astype(np.float32))
    w.close()


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in SIZES or sys.argv[2] not in ["bf16", "q4_k", "q4_0", "q8_0"]:
        sys.exit(__doc__)
    size, fmt, out = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
    cfg = config(size)
    rng = np.random.default_rng(0)
    if fmt == "bf16":
        write_bf16(cfg, out, rng)
    else:
        write_gguf(cfg, out, fmt, rng)


if __name__ == "__main__":
    main()
