//! The frozen base kept in its storage format against the same weights dequantised to f32
//! (the reference path: [`llama::io::stored::StoredMatrix::to_f32`], whose block decoding
//! `gguf_reference.rs` checks against gguf-py), for every storable type: logits, the causal-LM
//! loss and the gradients of LoRA adapters on all seven projections, on a small random model
//! (hidden 256, so that the 256-value k-quant blocks fit) and on SmolLM2-135M (Q4_1, with the
//! q/k row permutation undone on the stored rows). Also activation checkpointing against one
//! graph.
//!
//! Tolerances (max |a − b| over max |b|): 1e-5 for f32 products (the tiles change only the
//! order of the sums), 2e-2 for bf16 weights on AVX512-BF16, whose products round the
//! activations (and the upstream gradients) to bf16 as PyTorch's bf16 matmuls do.

use std::collections::BTreeMap;

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use half::{bf16, f16};
use llama::config::LlamaConfig;
use llama::io::gguf::GgmlType;
use llama::io::host::{CheckpointTensors, HostTensor, HostTensors, is_projection_weight};
use llama::io::stored::{BasePrecision, StoredMatrix};
use llama::kernels::stored_matmul::bf16_dot_products;
use llama::lora::{LoraConfig, LoraTarget};
use llama::model::{IGNORE_INDEX, Llama};
use llama::peft::load_peft_adapter;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// f16 scale fields of each block format: (byte offset, value), chosen so that weights stay
/// within about ±0.1 whatever the random quant bytes are.
fn scale_fields(dtype: GgmlType) -> &'static [(usize, f32)] {
    match dtype {
        GgmlType::Q4_0 => &[(0, 0.012)],
        GgmlType::Q4_1 => &[(0, 0.012), (2, -0.09)],
        GgmlType::Q5_0 => &[(0, 0.006)],
        GgmlType::Q5_1 => &[(0, 0.006), (2, -0.09)],
        GgmlType::Q8_0 => &[(0, 0.0008)],
        GgmlType::Q4_K => &[(0, 0.0001), (2, 0.0008)],
        GgmlType::Q6_K => &[(208, 0.00005)],
        _ => &[],
    }
}

/// `rows × cols` random values of `dtype`: plain types from U(−0.1, 0.1), block formats as
/// random quant bytes with the scales of [`scale_fields`].
fn random_matrix(dtype: GgmlType, rows: usize, cols: usize, rng: &mut ChaCha8Rng) -> StoredMatrix {
    let values = rows * cols;
    let bytes: Vec<u8> = match dtype {
        GgmlType::BF16 => (0..values)
            .flat_map(|_| bf16::from_f32(rng.random_range(-0.1..0.1)).to_le_bytes())
            .collect(),
        GgmlType::F16 => (0..values)
            .flat_map(|_| f16::from_f32(rng.random_range(-0.1..0.1)).to_le_bytes())
            .collect(),
        _ => {
            let size = dtype.type_size() as usize;
            let blocks = values / dtype.block_size() as usize;
            let mut bytes: Vec<u8> = (0..blocks * size).map(|_| rng.random()).collect();
            for block in bytes.chunks_exact_mut(size) {
                for &(at, value) in scale_fields(dtype) {
                    block[at..at + 2].copy_from_slice(&f16::from_f32(value).to_le_bytes());
                }
            }
            bytes
        }
    };
    StoredMatrix::new(dtype, rows, cols, bytes).unwrap()
}

fn small_config() -> LlamaConfig {
    serde_json::from_value(serde_json::json!({
        "vocab_size": 96, "hidden_size": 256, "intermediate_size": 512,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": true
    }))
    .unwrap()
}

/// The small model's tensors: projections of `dtype`, the rest f32.
fn small_checkpoint(dtype: GgmlType) -> CheckpointTensors {
    let c = small_config();
    let mut rng = ChaCha8Rng::seed_from_u64(u64::from(dtype.id()));
    let (d, ff, v) = (c.hidden_size, c.intermediate_size, c.vocab_size);
    let kv = c.kv_heads() * c.head_dim();
    let mut tensors = CheckpointTensors::default();
    let mut dense = |name: String, shape: Vec<usize>, rng: &mut ChaCha8Rng, around: f32| {
        let data = (0..shape.iter().product::<usize>())
            .map(|_| around + rng.random_range(-0.1..0.1))
            .collect();
        tensors.dense.insert(name, HostTensor { shape, data });
    };
    dense(
        "model.embed_tokens.weight".into(),
        vec![v, d],
        &mut rng,
        0.0,
    );
    dense("model.norm.weight".into(), vec![d], &mut rng, 1.0);
    for i in 0..c.num_hidden_layers {
        let p = format!("model.layers.{i}.");
        dense(format!("{p}input_layernorm.weight"), vec![d], &mut rng, 1.0);
        dense(
            format!("{p}post_attention_layernorm.weight"),
            vec![d],
            &mut rng,
            1.0,
        );
        for (name, [rows, cols]) in [
            ("self_attn.q_proj", [d, d]),
            ("self_attn.k_proj", [kv, d]),
            ("self_attn.v_proj", [kv, d]),
            ("self_attn.o_proj", [d, d]),
            ("mlp.gate_proj", [ff, d]),
            ("mlp.up_proj", [ff, d]),
            ("mlp.down_proj", [d, ff]),
        ] {
            let matrix = random_matrix(dtype, rows, cols, &mut rng);
            tensors.stored.insert(format!("{p}{name}.weight"), matrix);
        }
    }
    tensors
}

/// The same tensors with every stored matrix dequantised to f32: the reference model's.
fn dequantised(tensors: &CheckpointTensors) -> CheckpointTensors {
    let mut dense = tensors.dense.clone();
    for (name, matrix) in &tensors.stored {
        let shape = matrix.shape().to_vec();
        dense.insert(
            name.clone(),
            HostTensor {
                shape,
                data: matrix.to_f32(),
            },
        );
    }
    CheckpointTensors::dense(dense)
}

/// A PEFT adapter of rank 4 on all seven projections with random `A` and `B` (so that both
/// have gradients), the same for every model of `config`.
fn random_adapter(config: &LlamaConfig) -> (LoraConfig, HostTensors) {
    let lora = LoraConfig {
        r: 4,
        lora_alpha: 8.0,
        lora_dropout: 0.0,
        target_modules: LoraTarget::ALL.to_vec(),
    };
    let (d, ff) = (config.hidden_size, config.intermediate_size);
    let (q, kv) = (
        config.num_attention_heads * config.head_dim(),
        config.kv_heads() * config.head_dim(),
    );
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut tensors = HostTensors::new();
    for layer in 0..config.num_hidden_layers {
        for target in LoraTarget::ALL {
            let [input, output] = match target {
                LoraTarget::QProj => [d, q],
                LoraTarget::KProj | LoraTarget::VProj => [d, kv],
                LoraTarget::OProj => [q, d],
                LoraTarget::GateProj | LoraTarget::UpProj => [d, ff],
                LoraTarget::DownProj => [ff, d],
            };
            let prefix = format!(
                "base_model.model.model.layers.{layer}.{}",
                target.module_path()
            );
            for (factor, shape) in [("lora_A", [4, input]), ("lora_B", [output, 4])] {
                let data = (0..shape[0] * shape[1])
                    .map(|_| rng.random_range(-0.05..0.05))
                    .collect();
                tensors.insert(
                    format!("{prefix}.{factor}.weight"),
                    HostTensor {
                        shape: shape.to_vec(),
                        data,
                    },
                );
            }
        }
    }
    (lora, tensors)
}

/// What the comparison looks at: logits `[b, s, V]`, the loss, and each adapter factor's
/// gradient (layer by layer, A then B of each target).
struct Outputs {
    logits: Vec<f32>,
    loss: f32,
    grads: Vec<Vec<f32>>,
}

/// Two rows of `length` tokens, the second right-padded by 3; labels on the last half.
fn batch(vocab: usize, length: usize, device: &Device) -> [Tensor<2, Int>; 3] {
    let tokens: Vec<i64> = (0..2 * length)
        .map(|i| ((i * 37 + 5) % vocab) as i64)
        .collect();
    let mask: Vec<i64> = (0..2 * length)
        .map(|i| i64::from(i < 2 * length - 3))
        .collect();
    let labels: Vec<i64> = (0..2 * length)
        .map(|i| {
            if i % length < length / 2 || mask[i] == 0 {
                IGNORE_INDEX
            } else {
                tokens[i]
            }
        })
        .collect();
    let t = |v: Vec<i64>| Tensor::<2, Int>::from_data(TensorData::new(v, [2, length]), device);
    [t(tokens), t(mask), t(labels)]
}

fn outputs(model: &Llama, length: usize) -> Outputs {
    let device = model.embed_tokens.weight.val().device();
    let [tokens, mask, labels] = batch(model.config().vocab_size, length, &device);
    let logits = model
        .valid()
        .forward(tokens.clone().inner(), mask.clone().inner())
        .into_data()
        .try_into_vec::<f32>()
        .unwrap();
    let gradients = llama::train::accumulate_gradients(
        model,
        &[llama::train::Batch {
            tokens,
            attention_mask: mask,
            labels,
            n_tokens: 2 * length,
            n_scored: 1,
        }],
        &llama::train::causal_lm_loss,
    );
    let mut grads = Vec::new();
    for layer in &model.layers {
        for target in LoraTarget::ALL {
            let adapter = layer.projection(target).lora.as_ref().unwrap();
            for id in [adapter.a.id, adapter.b.id] {
                let g = gradients.grads.get::<2>(id).expect("an adapter gradient");
                grads.push(g.into_data().try_into_vec::<f32>().unwrap());
            }
        }
    }
    Outputs {
        logits,
        loss: gradients.loss as f32,
        grads,
    }
}

/// max |a − b| / max |b|.
fn relative_error(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f32, |m, x| m.max(x.abs())).max(1e-12);
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
        / scale
}

fn assert_close(found: &Outputs, expected: &Outputs, tolerance: f32, what: &str) {
    let e = relative_error(&found.logits, &expected.logits);
    assert!(e < tolerance, "{what}: logits off by {e}");
    let e = ((found.loss - expected.loss) / expected.loss).abs();
    assert!(
        e < tolerance,
        "{what}: loss {} against {}",
        found.loss,
        expected.loss
    );
    for (i, (g, r)) in found.grads.iter().zip(&expected.grads).enumerate() {
        let e = relative_error(g, r);
        assert!(e < tolerance, "{what}: adapter gradient {i} off by {e}");
    }
}

/// The tolerance of a type's products (see the module docs).
fn tolerance(dtype: GgmlType) -> f32 {
    if dtype == GgmlType::BF16 && bf16_dot_products() {
        2e-2
    } else {
        1e-5
    }
}

fn adapted(config: &LlamaConfig, tensors: CheckpointTensors, checkpoint: bool) -> Llama {
    let device = Device::default().autodiff();
    let (lora, adapter) = random_adapter(config);
    let model = Llama::from_checkpoint(config, tensors, &device)
        .unwrap()
        .with_layer_checkpointing(checkpoint);
    load_peft_adapter(model, &lora, &adapter).unwrap()
}

#[test]
fn every_storage_type_matches_its_f32_dequantisation() {
    let config = small_config();
    for dtype in GgmlType::STORABLE {
        let tensors = small_checkpoint(dtype);
        let reference = outputs(&adapted(&config, dequantised(&tensors), false), 10);
        let stored = outputs(&adapted(&config, tensors, false), 10);
        assert!(reference.loss.is_finite());
        assert_close(&stored, &reference, tolerance(dtype), dtype.name());
    }
}

/// Per-layer recomputation gives one graph's gradients, on a stored and a dense base.
#[test]
fn checkpointed_layers_give_the_same_gradients() {
    let config = small_config();
    let tensors = small_checkpoint(GgmlType::Q4_1);
    for (base, what) in [
        (tensors.clone(), "stored Q4_1"),
        (dequantised(&tensors), "f32"),
    ] {
        let whole = outputs(&adapted(&config, base.clone(), false), 10);
        let checkpointed = outputs(&adapted(&config, base, true), 10);
        assert_close(&checkpointed, &whole, 1e-5, what);
    }
}

/// With LoRA dropout, the recomputation draws the masks of the first pass: two checkpointed
/// steps from the same seed give the same gradients, and the loss matches the loss that
/// the same masks give without recomputation only in distribution (not checked).
#[test]
fn checkpointed_dropout_is_repeatable() {
    let config = small_config();
    let device = Device::default().autodiff();
    let run = || {
        let (mut lora, adapter) = random_adapter(&config);
        lora.lora_dropout = 0.3;
        let model = Llama::from_checkpoint(&config, small_checkpoint(GgmlType::Q8_0), &device)
            .unwrap()
            .with_layer_checkpointing(true);
        let model = load_peft_adapter(model, &lora, &adapter).unwrap();
        device.seed(5);
        outputs(&model, 8)
    };
    let (first, second) = (run(), run());
    assert!(first.loss.is_finite());
    assert_eq!(first.grads, second.grads);
}

/// The asset, or a `skipped:` line.
fn smollm2() -> Option<std::path::PathBuf> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../assets/SmolLM2-135M-Instruct.Q4_1.gguf");
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "skipped: stored_base::smollm2_q4_1_stored_matches_f32 (no {}; run scripts/fetch-assets)",
            path.display()
        );
        None
    }
}

/// SmolLM2's Q4_1 projections kept as stored: each dequantises to the f32 reader's tensor
/// bit for bit (q/k rows unpermuted on the stored rows), and the model's logits, loss and
/// adapter gradients match the f32 model's.
#[test]
fn smollm2_q4_1_stored_matches_f32() {
    let Some(path) = smollm2() else { return };
    let (config, stored) = llama::io::gguf::load_llama_with(&path, BasePrecision::Stored).unwrap();
    let (_, dense) = llama::io::gguf::load_llama_with(&path, BasePrecision::F32).unwrap();
    assert_eq!(stored.stored.len(), 7 * config.num_hidden_layers);
    let mut types = BTreeMap::new();
    for (name, matrix) in &stored.stored {
        assert!(is_projection_weight(name));
        *types.entry(matrix.dtype().name()).or_insert(0) += 1;
        assert!(matrix.to_f32() == dense.dense[name].data, "{name}");
    }
    assert!(types.contains_key("Q4_1"), "{types:?}");
    let reference = outputs(&adapted(&config, dense, false), 12);
    let found = outputs(&adapted(&config, stored, false), 12);
    assert_close(&found, &reference, 1e-4, "SmolLM2 Q4_1");
}
