//! Response-only causal-LM loss against the reference logits, LoRA training with AdamW on the
//! tiny checkpoint (loss decreases, frozen weights bit-identical), a PEFT adapter against the
//! numpy reference (`tools/reference/llama_reference.py`), dropout, initialisation and export.

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use llama::io::host::{HostTensors, parameters_on_host};
use llama::lora::{LoraConfig, LoraError, LoraTarget};
use llama::model::{IGNORE_INDEX, Llama};
use llama::peft::{
    apply_lora, load_peft_adapter, merge_lora, peft_adapter_config, peft_adapter_tensors,
    read_peft_adapter,
};

mod support;
use support::{fixture, frozen, tiny_model};

fn ints(rows: &[Vec<i64>], device: &Device) -> Tensor<2, Int> {
    let data: Vec<i64> = rows.concat();
    Tensor::from_data(TensorData::new(data, [rows.len(), rows[0].len()]), device)
}

fn scalar(t: Tensor<1>) -> f32 {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()[0]
}

/// Prompt tokens (first `prompt_len`) and padding are labelled -100.
fn labels(tokens: &[i64], mask: &[i64], prompt_len: usize) -> Vec<i64> {
    tokens
        .iter()
        .zip(mask)
        .enumerate()
        .map(|(i, (&t, &m))| {
            if i < prompt_len || m == 0 {
                IGNORE_INDEX
            } else {
                t
            }
        })
        .collect()
}

#[test]
fn response_only_loss_matches_reference_logits() {
    let device = Device::default();
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("tiny_llama_untied/logits.json")).unwrap(),
    )
    .unwrap();
    let case = &reference["cases"][0];
    let tokens: Vec<i64> = serde_json::from_value(case["tokens"][0].clone()).unwrap();
    let logits: Vec<Vec<f64>> = serde_json::from_value(case["logits"][0].clone()).unwrap();
    let mask = vec![1; tokens.len()];
    let prompt_len = 4;
    // Host cross-entropy from the numpy reference logits: positions i ≥ prompt_len - 1 predict
    // token i + 1.
    let n = tokens.len();
    let want: f64 = (prompt_len - 1..n - 1)
        .map(|i| {
            let row = &logits[i];
            let max = row.iter().copied().fold(f64::MIN, f64::max);
            let lse = max + row.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
            lse - row[tokens[i + 1] as usize]
        })
        .sum::<f64>()
        / (n - prompt_len) as f64;
    let model = tiny_model("tiny_llama_untied", &device);
    let got = scalar(model.causal_lm_loss(
        ints(std::slice::from_ref(&tokens), &device),
        ints(std::slice::from_ref(&mask), &device),
        ints(&[labels(&tokens, &mask, prompt_len)], &device),
    ));
    assert!(
        (f64::from(got) - want).abs() < 1e-5,
        "loss {got} vs reference {want}"
    );
}

fn lora_config() -> LoraConfig {
    LoraConfig {
        r: 4,
        lora_alpha: 8.0,
        lora_dropout: 0.0,
        target_modules: LoraTarget::ALL.to_vec(),
    }
}

#[test]
fn lora_training_lowers_loss_and_keeps_base_weights_bit_identical() {
    let device = Device::default().autodiff();
    let mut model = apply_lora(tiny_model("tiny_llama_tied", &device), &lora_config(), 0).unwrap();
    let before = parameters_on_host(&model);
    let adapters: Vec<&String> = before.keys().filter(|k| k.ends_with(".lora.a")).collect();
    assert_eq!(adapters.len(), 2 * 7, "{adapters:?}");
    assert!(
        before.contains_key("embed_tokens.weight")
            && !before.contains_key("embed_tokens.weight.lora.a")
    );

    // A right-padded batch: 3 prompt tokens each, the rest is the response to learn.
    let rows = [
        vec![1, 17, 42, 99, 5, 127, 64, 3],
        vec![1, 7, 120, 33, 2, 0, 0, 0],
    ];
    let masks = [vec![1; 8], vec![1, 1, 1, 1, 1, 0, 0, 0]];
    let label_rows: Vec<Vec<i64>> = rows
        .iter()
        .zip(&masks)
        .map(|(t, m)| labels(t, m, 3))
        .collect();
    let (tokens, mask, labels) = (
        ints(&rows, &device),
        ints(&masks, &device),
        ints(&label_rows, &device),
    );

    let mut optimizer = AdamWConfig::new().with_weight_decay(0.01).init();
    let mut losses = Vec::new();
    for _ in 0..10 {
        let loss = model.causal_lm_loss(tokens.clone(), mask.clone(), labels.clone());
        losses.push(scalar(loss.clone()));
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(1e-2, model, grads);
    }
    let after = parameters_on_host(&model);
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(losses[9] < 0.8 * losses[0], "losses {losses:?}");
    assert_eq!(
        frozen(&after),
        frozen(&before),
        "frozen base weights changed"
    );
    let moved = adapters.iter().filter(|k| {
        let b = k.replace(".lora.a", ".lora.b");
        after[&b].data != before[&b].data
    });
    assert_eq!(
        moved.count(),
        adapters.len(),
        "every adapter's B factor trains"
    );

    // PEFT export: `B_peft @ A_peft * alpha / r` equals the merged weight minus the base.
    let peft = peft_adapter_tensors(&model);
    assert_eq!(peft.len(), 2 * 2 * 7);
    let a = &peft["base_model.model.model.layers.1.mlp.down_proj.lora_A.weight"];
    let b = &peft["base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"];
    assert_eq!(
        (a.shape.clone(), b.shape.clone()),
        (vec![4, 128], vec![64, 4])
    );
    let merged = parameters_on_host(&merge_lora(model.clone().valid()));
    let base = &after["layers.1.mlp.down_proj.weight"]; // burn layout [in = 128, out = 64]
    let merged = &merged["layers.1.mlp.down_proj.weight"];
    for o in 0..64 {
        for i in 0..128 {
            let delta: f32 = (0..4)
                .map(|k| b.data[o * 4 + k] * a.data[k * 128 + i])
                .sum::<f32>()
                * 2.0;
            let want = merged.data[i * 64 + o] - base.data[i * 64 + o];
            assert!((delta - want).abs() < 1e-5, "({o}, {i}): {delta} vs {want}");
        }
    }

    // Round trip through a safetensors file.
    let path = std::env::temp_dir().join(format!("llama-lora-{}.safetensors", std::process::id()));
    llama::io::safetensors::save_host_tensors(&path, &peft).unwrap();
    let mut back = HostTensors::new();
    llama::io::safetensors::read_file_into(&path, &mut back).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(back, peft);
}

/// A frozen output head (LoRA) takes `llama::kernels::head_loss::head_nll_sum`, a trained one burn's
/// log-softmax of the logits: both give the same loss and the same adapter gradients.
#[test]
fn frozen_and_trained_heads_give_the_same_loss_and_adapter_gradients() {
    let device = Device::default().autodiff();
    let frozen_head =
        apply_lora(tiny_model("tiny_llama_tied", &device), &lora_config(), 0).unwrap();
    let mut trained_head = frozen_head.clone();
    trained_head.embed_tokens.weight = trained_head.embed_tokens.weight.set_require_grad(true);
    let rows = [
        vec![1, 17, 42, 99, 5, 127, 64, 3],
        vec![1, 7, 120, 33, 2, 9, 0, 0],
    ];
    let masks = [vec![1; 8], vec![1, 1, 1, 1, 1, 1, 0, 0]];
    let label_rows: Vec<Vec<i64>> = rows
        .iter()
        .zip(&masks)
        .map(|(t, m)| labels(t, m, 2))
        .collect();
    let run = |model: &Llama| {
        let loss = model.causal_lm_loss(
            ints(&rows, &device),
            ints(&masks, &device),
            ints(&label_rows, &device),
        );
        let gradients = loss.clone().backward();
        let adapter_grads: Vec<f32> = model
            .layers
            .iter()
            .flat_map(|layer| [&layer.self_attn.q_proj, &layer.mlp.down_proj])
            .flat_map(|projection| {
                let b = projection.lora.as_ref().unwrap().b.val();
                b.grad(&gradients)
                    .unwrap()
                    .into_data()
                    .try_into_vec::<f32>()
                    .unwrap()
            })
            .collect();
        (scalar(loss), adapter_grads)
    };
    let (frozen_loss, frozen_grads) = run(&frozen_head);
    let (trained_loss, trained_grads) = run(&trained_head);
    assert!(
        (frozen_loss - trained_loss).abs() < 1e-5,
        "{frozen_loss} vs {trained_loss}"
    );
    assert!(frozen_grads.iter().any(|g| *g != 0.0));
    let error = frozen_grads
        .iter()
        .zip(&trained_grads)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(error < 1e-5, "adapter gradients differ by {error}");
}

#[test]
fn target_modules_select_adapted_weights() {
    let device = Device::default();
    let only_q = LoraConfig {
        target_modules: vec![LoraTarget::QProj, LoraTarget::DownProj],
        ..lora_config()
    };
    let adapted = parameters_on_host(
        &apply_lora(tiny_model("tiny_llama_untied", &device), &only_q, 0).unwrap(),
    );
    let mut names: Vec<&str> = adapted
        .keys()
        .filter_map(|k| k.strip_suffix(".lora.a"))
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "layers.0.mlp.down_proj",
            "layers.0.self_attn.q_proj",
            "layers.1.mlp.down_proj",
            "layers.1.self_attn.q_proj"
        ]
    );
    assert_eq!(
        adapted["layers.0.self_attn.q_proj.lora.a"].shape,
        vec![64, 4]
    );
    assert_eq!(
        adapted["layers.0.self_attn.q_proj.lora.b"].shape,
        vec![4, 64]
    );
    let config = peft_adapter_config(&only_q);
    assert_eq!(
        config["target_modules"],
        serde_json::json!(["q_proj", "down_proj"])
    );
    assert_eq!(config["r"], 4);

    let bad = LoraConfig {
        r: 0,
        ..lora_config()
    };
    assert_eq!(
        apply_lora(tiny_model("tiny_llama_untied", &device), &bad, 0).unwrap_err(),
        LoraError::InvalidConfig { r: 0, targets: 7 }
    );
    let bad = LoraConfig {
        lora_dropout: 1.0,
        ..lora_config()
    };
    assert_eq!(
        apply_lora(tiny_model("tiny_llama_untied", &device), &bad, 0).unwrap_err(),
        LoraError::InvalidDropout(1.0)
    );
}

/// The PEFT adapter fixture and its configuration (r 4, alpha 8, q/v/down).
fn peft_fixture() -> (LoraConfig, HostTensors) {
    read_peft_adapter(&fixture("peft_adapter")).unwrap()
}

/// Max |logit - reference| over the real positions of the fixture's right-padded batch.
fn adapter_logit_error(model: &Llama, device: &Device) -> f64 {
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("peft_adapter/logits.json")).unwrap(),
    )
    .unwrap();
    let tokens: Vec<Vec<i64>> = serde_json::from_value(reference["tokens"].clone()).unwrap();
    let mask: Vec<Vec<i64>> = serde_json::from_value(reference["attention_mask"].clone()).unwrap();
    let want: Vec<Vec<Vec<f64>>> = serde_json::from_value(reference["logits"].clone()).unwrap();
    let logits = model.forward(ints(&tokens, device), ints(&mask, device));
    let [_, s, v] = logits.dims();
    let got = logits
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap();
    let mut worst = 0.0f64;
    for (row, positions) in want.iter().enumerate() {
        for (pos, expected) in positions.iter().enumerate() {
            let at = (row * s + pos) * v;
            for (k, e) in expected.iter().enumerate() {
                worst = worst.max((f64::from(got[at + k]) - e).abs());
            }
        }
    }
    worst
}

#[test]
fn peft_adapter_matches_the_reference_forward_unmerged_and_merged() {
    let device = Device::default();
    let (lora, tensors) = peft_fixture();
    assert_eq!(
        lora,
        LoraConfig {
            r: 4,
            lora_alpha: 8.0,
            lora_dropout: 0.0,
            target_modules: vec![LoraTarget::QProj, LoraTarget::VProj, LoraTarget::DownProj],
        }
    );
    assert!(matches!(
        read_peft_adapter(&fixture("tiny_llama_tied")),
        Err(LoraError::AdapterFile { path, .. }) if path.ends_with("adapter_config.json")
    ));
    let base = tiny_model("tiny_llama_untied", &device);
    assert!(
        adapter_logit_error(&base, &device) > 0.1,
        "the adapter must change the logits for this test to mean anything"
    );
    let adapted = load_peft_adapter(base, &lora, &tensors).unwrap();
    let unmerged = adapter_logit_error(&adapted, &device);
    assert!(unmerged < 1e-4, "unmerged: max |Δlogit| {unmerged}");
    assert_eq!(peft_adapter_tensors(&adapted), tensors, "export round trip");
    let merged = adapter_logit_error(&merge_lora(adapted), &device);
    assert!(merged < 1e-4, "merged: max |Δlogit| {merged}");

    let missing = LoraConfig {
        target_modules: vec![LoraTarget::KProj],
        ..lora.clone()
    };
    assert_eq!(
        load_peft_adapter(tiny_model("tiny_llama_untied", &device), &missing, &tensors)
            .unwrap_err(),
        LoraError::MissingTensor(
            "base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight".into()
        )
    );
    let wrong_rank = LoraConfig { r: 8, ..lora };
    assert!(matches!(
        load_peft_adapter(tiny_model("tiny_llama_untied", &device), &wrong_rank, &tensors),
        Err(LoraError::ShapeMismatch { expected, found, .. })
            if expected == [8, 64] && found == [4, 64]
    ));
}

#[test]
fn dropout_acts_on_the_adapter_input_only_while_training() {
    let device = Device::default().autodiff();
    let (lora, tensors) = peft_fixture();
    let with_dropout = LoraConfig {
        lora_dropout: 0.5,
        ..lora.clone()
    };
    let tokens = ints(&[vec![1, 17, 42, 99, 5, 127, 64, 3]], &device);
    let mask = ints(&[vec![1; 8]], &device);
    let logits = |model: &Llama| {
        model
            .forward(tokens.clone(), mask.clone())
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap()
    };
    let plain =
        load_peft_adapter(tiny_model("tiny_llama_untied", &device), &lora, &tensors).unwrap();
    let dropped = load_peft_adapter(
        tiny_model("tiny_llama_untied", &device),
        &with_dropout,
        &tensors,
    )
    .unwrap();
    device.seed(3);
    let first = logits(&dropped);
    device.seed(3);
    assert_eq!(logits(&dropped), first, "seeded dropout repeats");
    let exact = logits(&plain);
    let max_diff = first
        .iter()
        .zip(&exact)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(max_diff > 1e-2, "dropout had no effect: {max_diff}");
    // Inference (plain device) ignores dropout.
    let valid = |m: &Llama| {
        let m = m.valid();
        let device = Device::default();
        m.forward(
            ints(&[vec![1, 17, 42, 99, 5, 127, 64, 3]], &device),
            ints(&[vec![1; 8]], &device),
        )
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
    };
    assert_eq!(valid(&dropped), valid(&plain));
}

#[test]
fn adapters_start_as_peft_does_and_depend_only_on_the_seed() {
    let device = Device::default();
    let a_factors = |seed| {
        peft_adapter_tensors(
            &apply_lora(
                tiny_model("tiny_llama_untied", &device),
                &lora_config(),
                seed,
            )
            .unwrap(),
        )
    };
    let first = a_factors(5);
    assert_eq!(first, a_factors(5));
    assert_ne!(first, a_factors(6));
    for (name, t) in &first {
        if name.ends_with("lora_B.weight") {
            assert!(t.data.iter().all(|&x| x == 0.0), "{name}: B starts at 0");
        } else {
            // PEFT: kaiming_uniform_(a=√5) on lora_A [r, in] → U(-1/√in, 1/√in).
            let bound = 1.0 / (t.shape[1] as f32).sqrt();
            let max = t.data.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            assert!(
                max <= bound && max > 0.8 * bound,
                "{name}: max |A| {max} vs {bound}"
            );
        }
    }
}
