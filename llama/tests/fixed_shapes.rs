//! Fixed shapes (`llama::shapes`) on the tiny checkpoints: padding training batches to bucketed
//! widths, filler rows and scored-row buckets changes neither the loss nor the gradients (LoRA
//! and full fine-tuning); generation from bucketed prompts over bucketed KV-cache widths gives
//! the same tokens (greedy and seeded top-p, with continuous batching and shared prefixes);
//! and the shapes the model sends to the backend fall into the buckets.

use std::collections::BTreeMap;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::Device;
use llama::generate::{Generation, GenerationConfig, Sampling, generate, generate_queued};
use llama::io::host::HostTensors;
use llama::lora::{BaseWeight, LoraConfig, LoraTarget};
use llama::model::Llama;
use llama::peft::{apply_lora, load_peft_adapter, peft_adapter_tensors};
use llama::shapes::{FixedShapes, ShapeKind, ShapeLog};
use llama::train::{Batch, Encoded, collate, collate_shaped, encode_example};

mod support;
use support::{max_abs_diff, tiny_model};

/// Four prompt/response pairs of different lengths: 16 scored positions in all.
fn examples() -> Vec<Encoded> {
    [
        (vec![1, 17, 42], vec![99, 5, 127, 64, 3]),
        (vec![1, 7], vec![120, 33, 2]),
        (vec![1, 9, 9, 9, 9], vec![11, 12]),
        (vec![1, 100], vec![50, 51, 52, 53, 54, 55, 56, 57, 58]),
    ]
    .into_iter()
    .map(|(p, r)| encode_example(&[p], &[], &r, 16))
    .collect()
}

/// Widths to multiples of 8 (the longest example, 11 tokens, becomes 16) and scored rows to
/// at least 32 (16 of them fillers).
const SHAPES: FixedShapes = FixedShapes { multiple: 8 };

fn loss_and_grads(model: &Llama, batch: &Batch) -> (f32, GradientsParams) {
    let loss = model.causal_lm_loss(
        batch.tokens.clone(),
        batch.attention_mask.clone(),
        batch.labels.clone(),
    );
    let value = loss.clone().into_scalar::<f32>();
    (value, GradientsParams::from_grads(loss.backward(), model))
}

/// Every gradient of `model`'s projections and adapters, by parameter id, on the host.
fn gradients(model: &Llama, grads: &GradientsParams) -> BTreeMap<String, Vec<f32>> {
    let mut out = BTreeMap::new();
    for layer in &model.layers {
        for target in LoraTarget::ALL {
            let projection = layer.projection(target);
            let mut push = |id: burn::module::ParamId| {
                if let Some(g) = grads.get::<2>(id) {
                    let values = g.into_data().convert::<f32>().try_into_vec::<f32>();
                    out.insert(id.to_string(), values.unwrap());
                }
            };
            if let BaseWeight::Dense(weight) = &projection.weight {
                push(weight.id);
            }
            if let Some(adapter) = &projection.lora {
                push(adapter.a.id);
                push(adapter.b.id);
            }
        }
    }
    out
}

/// The tiny model with a LoRA adapter whose `B` is not zero (with PEFT's `B = 0`, `A` would
/// get no gradient).
fn adapted(device: &Device) -> Llama {
    let lora = LoraConfig {
        r: 4,
        lora_alpha: 8.0,
        lora_dropout: 0.0,
        target_modules: LoraTarget::ALL.to_vec(),
    };
    let base = || tiny_model("tiny_llama_tied", device);
    let mut tensors: HostTensors = peft_adapter_tensors(&apply_lora(base(), &lora, 3).unwrap());
    for (name, t) in tensors.iter_mut() {
        if name.contains("lora_B") {
            for (i, x) in t.data.iter_mut().enumerate() {
                *x = ((i as f32) * 0.37).sin() * 0.05;
            }
        }
    }
    load_peft_adapter(base(), &lora, &tensors).unwrap()
}

#[test]
fn padding_to_fixed_shapes_changes_no_loss_or_gradient() {
    let device = Device::default().autodiff();
    let data = examples();
    let rows: Vec<&Encoded> = data.iter().collect();
    for (finetuning, model) in [
        ("lora", adapted(&device)),
        ("full", tiny_model("tiny_llama_tied", &device)),
    ] {
        let exact = collate(&rows, &device);
        let padded = collate_shaped(&rows, Some(SHAPES), 6, &device);
        assert_eq!(exact.tokens.dims(), [4, 11]);
        assert_eq!(padded.tokens.dims(), [6, 16]);
        assert_eq!(
            (padded.n_tokens, padded.n_scored),
            (exact.n_tokens, exact.n_scored)
        );
        let (loss, grads) = loss_and_grads(&model, &exact);
        let shaped = model.clone().with_fixed_shapes(Some(SHAPES));
        let log = ShapeLog::start();
        let (padded_loss, padded_grads) = loss_and_grads(&shaped, &padded);
        assert_eq!(
            log.shapes(ShapeKind::ScoredRows),
            [vec![32]].into(),
            "16 scored rows and 16 fillers"
        );
        assert_eq!(log.shapes(ShapeKind::Forward), [vec![6, 16, 16]].into());
        drop(log);
        // f32 sums over other widths and the ln V taken off: a few ulps of the loss.
        assert!(
            (loss - padded_loss).abs() <= 2e-6 * loss.abs(),
            "{finetuning}: loss {loss} unpadded, {padded_loss} padded"
        );
        let (grads, padded_grads) = (gradients(&model, &grads), gradients(&shaped, &padded_grads));
        assert!(!grads.is_empty());
        assert_eq!(
            grads.keys().collect::<Vec<_>>(),
            padded_grads.keys().collect::<Vec<_>>()
        );
        for (id, g) in &grads {
            let scale = g.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            let error = max_abs_diff(g, &padded_grads[id]);
            assert!(
                error <= 1e-5 * scale.max(1e-3),
                "{finetuning}: gradient {id}: max error {error} (max |g| {scale})"
            );
        }
    }
}

/// Every forward shape `[b, s, t]` in the log: widths `s` (prefill) and `t` in the buckets.
fn assert_bucketed(log: &ShapeLog) {
    let shapes = log.shapes(ShapeKind::Forward);
    assert!(!shapes.is_empty());
    for shape in &shapes {
        let [_, s, t] = shape[..] else {
            panic!("{shape:?}")
        };
        assert!(
            (s == 1 || s % SHAPES.multiple == 0) && t % SHAPES.multiple == 0,
            "{shapes:?}"
        );
    }
}

#[test]
fn fixed_shapes_generate_the_same_tokens_in_bucketed_shapes() {
    let device = Device::default();
    let model = tiny_model("tiny_llama_tied", &device).no_grad();
    let shaped = model.clone().with_fixed_shapes(Some(SHAPES));
    let prompts: Vec<Vec<u32>> = vec![vec![1, 17, 42, 99, 5, 127], vec![1, 7], vec![1, 64, 3, 88]];
    for sampling in [
        Sampling::Greedy,
        Sampling::TopP {
            temperature: 1.5,
            top_p: 0.9,
        },
    ] {
        let config = GenerationConfig {
            max_new_tokens: 10,
            sampling,
            eos_token_ids: vec![],
            seed: 11,
        };
        let exact = generate(&model, &prompts, &config).unwrap();
        let log = ShapeLog::start();
        let padded = generate(&shaped, &prompts, &config).unwrap();
        assert_eq!(padded.tokens, exact.tokens, "{sampling:?}");
        assert_eq!(padded.finished, exact.finished);
        // Prefill: 3 rows × 8 positions (6 rounded up); then decoding attends over 16
        // positions (9 to 16 written) and 24 (17 written).
        assert_eq!(
            log.shapes(ShapeKind::Forward),
            [vec![3, 1, 16], vec![3, 1, 24], vec![3, 8, 8]].into(),
            "{sampling:?}"
        );
    }
}

/// Continuous batching (two rows at a time, rows stopping at an EOS token at different steps,
/// the next prompt joining) and prompts sharing a prefix of 40 tokens with an earlier one
/// (their cache reused, the rest prefilled after it): the same tokens with fixed shapes.
#[test]
fn fixed_shapes_keep_continuous_batching_and_shared_prefixes_exact() {
    let device = Device::default();
    let model = tiny_model("tiny_llama_tied", &device).no_grad();
    let shaped = model.clone().with_fixed_shapes(Some(SHAPES));
    let instruction: Vec<u32> = (0..40).map(|i| 1 + (i * 37 % 120) as u32).collect();
    let with_instruction = |tail: &[u32]| [instruction.as_slice(), tail].concat();
    let prompts = vec![
        vec![1, 7, 19],
        with_instruction(&[5, 6]),
        with_instruction(&[9, 10, 11, 12, 13]),
        vec![1, 64, 3, 88, 21],
        with_instruction(&[77]),
    ];
    let run = |model: &Llama, config: &GenerationConfig| -> Generation {
        generate_queued(model, &prompts, config, 2, &mut |_| {
            std::ops::ControlFlow::Continue(())
        })
        .unwrap()
    };
    let mut config = GenerationConfig {
        max_new_tokens: 12,
        sampling: Sampling::Greedy,
        eos_token_ids: vec![],
        seed: 5,
    };
    // An EOS token that the second prompt produces third: its row stops early.
    config.eos_token_ids = vec![run(&model, &config).tokens[1][2]];
    let exact = run(&model, &config);
    assert!(exact.stats.reused_prompt_tokens > 0, "{:?}", exact.stats);
    let log = ShapeLog::start();
    let padded = run(&shaped, &config);
    assert_eq!(padded.tokens, exact.tokens);
    assert_eq!(padded.finished, exact.finished);
    assert!(padded.finished.iter().any(|&f| f), "an EOS ends a row");
    assert_bucketed(&log);
}
