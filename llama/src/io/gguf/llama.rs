//! LLaMA checkpoints from GGUF: [`LlamaConfig`] from `llama.*` metadata and tensors in
//! Hugging Face names and layouts, with llama.cpp's attention row permutation undone: f32, or
//! with the projection weights kept in their storage format ([`load_llama_with`]).

use serde_json::json;

use super::{GgufError, GgufFile};
use crate::config::LlamaConfig;
use crate::io::host::{CheckpointTensors, HostTensor, HostTensors, Keep};
use crate::io::stored::{BasePrecision, StoredMatrix};

/// Reads `path` and returns its LLaMA config and all tensors, dequantised to f32, under HF
/// names (see [`hf_name`]) with `q_proj`/`k_proj` rows restored to HF order ([`unpermute_rows`]).
///
/// # Errors
/// As [`load_llama_with`].
pub fn load_llama(
    path: impl AsRef<std::path::Path>,
) -> Result<(LlamaConfig, HostTensors), GgufError> {
    let (config, tensors) = load_llama_with(path, BasePrecision::F32)?;
    Ok((config, tensors.dense))
}

/// Reads `path` for `precision`: its LLaMA config, and its tensors under HF names (see
/// [`hf_name`]) with `q_proj`/`k_proj` rows restored to HF order ([`unpermute_rows`]). Under
/// [`BasePrecision::Stored`] the projection weights stored in a [`super::GgmlType::STORABLE`]
/// type keep their blocks, under [`BasePrecision::Bf16`] they are rounded to bf16; every other
/// tensor is dequantised to f32. Tensors are read one at a time.
///
/// # Errors
/// Everything [`GgufFile::open`], [`GgufFile::dequantize`] and [`llama_config`] report, and
/// [`GgufError::BadTensor`] for a tensor with no HF counterpart (e.g. `rope_freqs.weight`)
/// or q/k rows that do not split into heads.
pub fn load_llama_with(
    path: impl AsRef<std::path::Path>,
    precision: BasePrecision,
) -> Result<(LlamaConfig, CheckpointTensors), GgufError> {
    let file = GgufFile::open(path)?;
    let config = llama_config(&file)?;
    let mut tensors = CheckpointTensors::default();
    for info in file.tensors() {
        let bad = |reason: String| GgufError::BadTensor {
            path: file.path().to_path_buf(),
            tensor: info.name.clone(),
            reason,
        };
        let name = hf_name(&info.name)
            .ok_or_else(|| bad("no Hugging Face LLaMA counterpart".to_owned()))?;
        let heads = if name.ends_with("self_attn.q_proj.weight") {
            Some(config.num_attention_heads)
        } else if name.ends_with("self_attn.k_proj.weight") {
            Some(config.kv_heads())
        } else {
            None
        };
        let shape = info.shape();
        let row_order = match heads {
            Some(n_head) => Some(unpermuted_row_order(shape[0], n_head).ok_or_else(|| {
                bad(format!(
                    "shape {shape:?} does not split into {n_head} heads of two halves"
                ))
            })?),
            None => None,
        };
        let stored = match (Keep::choose(precision, &name, info.dtype), &shape[..]) {
            (Keep::Dense, _) => None,
            (Keep::Stored, &[rows, cols]) => Some(
                StoredMatrix::new(info.dtype, rows, cols, file.tensor_bytes(&info.name)?)
                    .map_err(|e| bad(e.to_string()))?,
            ),
            (Keep::Bf16, &[rows, cols]) => Some(StoredMatrix::bf16_from_f32(
                rows,
                cols,
                &file.dequantize(&info.name)?.data,
            )),
            _ => return Err(bad(format!("a projection weight is 2-D, not {shape:?}"))),
        };
        match stored {
            Some(matrix) => {
                let matrix = match &row_order {
                    Some(order) => matrix.with_rows_from(order),
                    None => matrix,
                };
                tensors.stored.insert(name, matrix);
            }
            None => {
                let mut tensor = file.dequantize(&info.name)?;
                if let Some(order) = &row_order {
                    tensor = rows_from(&tensor, order);
                }
                tensors.dense.insert(name, tensor);
            }
        }
    }
    Ok((config, tensors))
}

/// LLaMA hyper-parameters from GGUF metadata (llama.cpp's `LLM_KV_*` keys for arch `llama`).
///
/// `vocab_size` is the length of `tokenizer.ggml.tokens` (falling back to `llama.vocab_size`);
/// `tie_word_embeddings` is true when there is no `output.weight` tensor (llama.cpp then
/// uses `token_embd.weight` as the output head); `rope_scaling` is set for
/// `llama.rope.scaling.type = "linear"` (as HF `{"rope_type": "linear", "factor": f}`).
///
/// # Errors
/// [`GgufError::MissingKey`] / [`GgufError::BadValue`] for required keys
/// (`general.architecture` = `"llama"`, `llama.embedding_length`, `llama.block_count`,
/// `llama.feed_forward_length`, `llama.attention.head_count`); [`GgufError::BadValue`] for a
/// rope scaling type other than none/linear, or a head size (`llama.rope.dimension_count`)
/// that is not `embedding_length / head_count`.
pub fn llama_config(file: &GgufFile) -> Result<LlamaConfig, GgufError> {
    let arch = file.get_str("general.architecture")?;
    if arch != "llama" {
        return Err(bad_value(
            file,
            "general.architecture",
            arch,
            "expected \"llama\"",
        ));
    }
    let optional_usize = |key: &str| file.metadata(key).map(|_| file.get_usize(key)).transpose();
    let optional_f64 = |key: &str| file.metadata(key).map(|_| file.get_f64(key)).transpose();
    let optional_u32 = |key: &str| -> Result<Option<u32>, GgufError> {
        match optional_usize(key)? {
            None => Ok(None),
            Some(v) => u32::try_from(v)
                .map(Some)
                .map_err(|_| bad_value(file, key, v, "token id exceeds u32")),
        }
    };

    let hidden_size = file.get_usize("llama.embedding_length")?;
    let num_attention_heads = file.get_usize("llama.attention.head_count")?;
    if num_attention_heads == 0 || !hidden_size.is_multiple_of(num_attention_heads) {
        return Err(bad_value(
            file,
            "llama.attention.head_count",
            num_attention_heads,
            &format!("does not divide embedding_length {hidden_size}"),
        ));
    }
    if let Some(rot) = optional_usize("llama.rope.dimension_count")?
        && rot != hidden_size / num_attention_heads
    {
        return Err(bad_value(
            file,
            "llama.rope.dimension_count",
            rot,
            "partial rotary embeddings are not supported (expected embedding_length / head_count)",
        ));
    }
    let vocab_size = match file.metadata("tokenizer.ggml.tokens") {
        Some(_) => file.get_array("tokenizer.ggml.tokens")?.len(),
        None => file.get_usize("llama.vocab_size")?,
    };
    let rope_scaling = match file.metadata("llama.rope.scaling.type") {
        None => None,
        Some(_) => match file.get_str("llama.rope.scaling.type")? {
            "none" => None,
            "linear" => Some(json!({
                "rope_type": "linear",
                "factor": file.get_f64("llama.rope.scaling.factor")?,
            })),
            other => {
                return Err(bad_value(
                    file,
                    "llama.rope.scaling.type",
                    other,
                    "supported: none, linear",
                ));
            }
        },
    };
    Ok(LlamaConfig {
        vocab_size,
        hidden_size,
        intermediate_size: file.get_usize("llama.feed_forward_length")?,
        num_hidden_layers: file.get_usize("llama.block_count")?,
        num_attention_heads,
        num_key_value_heads: optional_usize("llama.attention.head_count_kv")?,
        // llama.cpp's own default when the key is absent (LLaMA-1 era files).
        rms_norm_eps: optional_f64("llama.attention.layer_norm_rms_epsilon")?.unwrap_or(1e-5),
        rope_theta: optional_f64("llama.rope.freq_base")?.unwrap_or(10_000.0),
        rope_scaling,
        max_position_embeddings: optional_usize("llama.context_length")?.unwrap_or(2048),
        tie_word_embeddings: file.tensor("output.weight").is_none(),
        bos_token_id: optional_u32("tokenizer.ggml.bos_token_id")?,
        eos_token_id: optional_u32("tokenizer.ggml.eos_token_id")?.map(|id| json!(id)),
    })
}

fn bad_value(file: &GgufFile, key: &str, value: impl std::fmt::Display, reason: &str) -> GgufError {
    GgufError::BadValue {
        path: file.path().to_path_buf(),
        key: key.to_owned(),
        value: value.to_string(),
        reason: reason.to_owned(),
    }
}

/// The HF `LlamaForCausalLM` name of a llama.cpp tensor name (`convert_hf_to_gguf.py`'s
/// tensor map read backwards), or `None` for names without one.
///
/// `token_embd` → `model.embed_tokens`, `output_norm` → `model.norm`, `output` → `lm_head`,
/// and per layer `blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate,
/// ffn_up, ffn_down}` → `model.layers.N.{input_layernorm, self_attn.q_proj, ..k_proj, ..v_proj,
/// ..o_proj, post_attention_layernorm, mlp.gate_proj, mlp.up_proj, mlp.down_proj}`.
pub fn hf_name(gguf_name: &str) -> Option<String> {
    let (stem, suffix) = gguf_name.rsplit_once('.')?;
    if !matches!(suffix, "weight" | "bias") {
        return None;
    }
    let hf_stem = match stem {
        "token_embd" => "model.embed_tokens".to_owned(),
        "output_norm" => "model.norm".to_owned(),
        "output" => "lm_head".to_owned(),
        _ => {
            let (layer, part) = stem.strip_prefix("blk.")?.split_once('.')?;
            let layer: usize = layer.parse().ok()?;
            let hf_part = match part {
                "attn_norm" => "input_layernorm",
                "attn_q" => "self_attn.q_proj",
                "attn_k" => "self_attn.k_proj",
                "attn_v" => "self_attn.v_proj",
                "attn_output" => "self_attn.o_proj",
                "ffn_norm" => "post_attention_layernorm",
                "ffn_gate" => "mlp.gate_proj",
                "ffn_up" => "mlp.up_proj",
                "ffn_down" => "mlp.down_proj",
                _ => return None,
            };
            format!("model.layers.{layer}.{hf_part}")
        }
    };
    Some(format!("{hf_stem}.{suffix}"))
}

/// Undoes llama.cpp's row permutation of a q/k projection (`[rows, cols]`, row-major).
///
/// `convert_hf_to_gguf.py` stores `permute(W, n_head)` =
/// `W.reshape(n_head, 2, rows / n_head / 2, cols).swapaxes(1, 2).reshape(rows, cols)`, which
/// turns HF's rotate-half RoPE layout (per head: first half, second half) into interleaved
/// pairs. So GGUF row `h·hd + 2j + i` holds HF row `h·hd + i·hd/2 + j`; this returns the HF
/// order. `n_head` is the head count for q and the KV head count for k. Also applies to a
/// 1-D bias (`cols` = 1).
///
/// Returns `None` when the row count is zero or not a multiple of `2·n_head`.
pub fn unpermute_rows(t: &HostTensor, n_head: usize) -> Option<HostTensor> {
    let order = unpermuted_row_order(*t.shape.first()?, n_head)?;
    Some(rows_from(t, &order))
}

/// For each HF row of a permuted q/k projection with `rows` rows, the GGUF row holding it
/// (see [`unpermute_rows`]); `None` when `rows` is zero or not a multiple of `2·n_head`.
pub fn unpermuted_row_order(rows: usize, n_head: usize) -> Option<Vec<usize>> {
    if n_head == 0 || rows == 0 || !rows.is_multiple_of(2 * n_head) {
        return None;
    }
    let half = rows / n_head / 2;
    let mut order = vec![0; rows];
    for h in 0..n_head {
        for i in 0..2 {
            for j in 0..half {
                order[h * 2 * half + i * half + j] = h * 2 * half + 2 * j + i;
            }
        }
    }
    Some(order)
}

/// `t` with row `i` taken from row `order[i]`.
fn rows_from(t: &HostTensor, order: &[usize]) -> HostTensor {
    let cols = t.data.len() / order.len();
    let mut data = Vec::with_capacity(t.data.len());
    for &row in order {
        data.extend_from_slice(&t.data[row * cols..(row + 1) * cols]);
    }
    HostTensor {
        shape: t.shape.clone(),
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hf_names() {
        assert_eq!(
            hf_name("token_embd.weight").unwrap(),
            "model.embed_tokens.weight"
        );
        assert_eq!(hf_name("output.weight").unwrap(), "lm_head.weight");
        assert_eq!(hf_name("output_norm.weight").unwrap(), "model.norm.weight");
        assert_eq!(
            hf_name("blk.12.attn_output.weight").unwrap(),
            "model.layers.12.self_attn.o_proj.weight"
        );
        assert_eq!(
            hf_name("blk.0.ffn_norm.weight").unwrap(),
            "model.layers.0.post_attention_layernorm.weight"
        );
        assert_eq!(
            hf_name("blk.3.attn_q.bias").unwrap(),
            "model.layers.3.self_attn.q_proj.bias"
        );
        assert_eq!(hf_name("rope_freqs.weight"), None);
        assert_eq!(hf_name("blk.x.attn_q.weight"), None);
        assert_eq!(hf_name("blk.0.attn_q"), None);
    }

    #[test]
    fn unpermute_one_head() {
        // One head of 4 rows: GGUF order is HF rows [0, 2, 1, 3].
        let t = HostTensor {
            shape: vec![4, 1],
            data: vec![0.0, 2.0, 1.0, 3.0],
        };
        assert_eq!(
            unpermute_rows(&t, 1).unwrap().data,
            vec![0.0, 1.0, 2.0, 3.0]
        );
        assert_eq!(unpermute_rows(&t, 3), None);
    }
}
