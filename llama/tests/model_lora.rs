//! Response-only causal-LM loss against the reference logits, LoRA training with AdamW on the
//! tiny checkpoint (loss decreases, frozen weights bit-identical), and PEFT export.

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use llama::host::HostTensors;
use llama::lora::{
    LoraConfig, LoraError, LoraTarget, apply_lora, parameters_on_host, peft_adapter_config,
    peft_adapter_tensors,
};
use llama::model::{IGNORE_INDEX, Llama};

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn model(name: &str, device: &Device) -> Llama {
    let (config, tensors) = llama::safetensors::load_llama(fixture(name)).unwrap();
    Llama::from_host_tensors(&config, &tensors, device).unwrap()
}

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
            let max = row.iter().cloned().fold(f64::MIN, f64::max);
            let lse = max + row.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
            lse - row[tokens[i + 1] as usize]
        })
        .sum::<f64>()
        / (n - prompt_len) as f64;
    let model = model("tiny_llama_untied", &device);
    let got = scalar(model.causal_lm_loss(
        ints(std::slice::from_ref(&tokens), &device),
        ints(std::slice::from_ref(&mask), &device),
        ints(&[labels(&tokens, &mask, prompt_len)], &device),
    ));
    assert!(
        (got as f64 - want).abs() < 1e-5,
        "loss {got} vs reference {want}"
    );
}

fn lora_config() -> LoraConfig {
    LoraConfig {
        r: 4,
        lora_alpha: 8.0,
        target_modules: LoraTarget::ALL.to_vec(),
    }
}

fn frozen(params: &HostTensors) -> HostTensors {
    params
        .iter()
        .filter(|(k, _)| !k.contains(".lora."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[test]
fn lora_training_lowers_loss_and_keeps_base_weights_bit_identical() {
    let device = Device::default().autodiff();
    let mut model = apply_lora(model("tiny_llama_tied", &device), &lora_config()).unwrap();
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
    let merged = parameters_on_host(&model.clone().valid().materialize());
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
    llama::safetensors::save_host_tensors(&path, &peft).unwrap();
    let mut back = HostTensors::new();
    llama::safetensors::read_file_into(&path, &mut back).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(back, peft);
}

#[test]
fn target_modules_select_adapted_weights() {
    let device = Device::default();
    let only_q = LoraConfig {
        target_modules: vec![LoraTarget::QProj, LoraTarget::DownProj],
        ..lora_config()
    };
    let adapted =
        parameters_on_host(&apply_lora(model("tiny_llama_untied", &device), &only_q).unwrap());
    let mut names: Vec<&str> = adapted
        .keys()
        .filter_map(|k| k.strip_suffix(".weight.lora.a"))
        .collect();
    names.sort();
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
        adapted["layers.0.self_attn.q_proj.weight.lora.a"].shape,
        vec![64, 4]
    );
    assert_eq!(
        adapted["layers.0.self_attn.q_proj.weight.lora.b"].shape,
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
        apply_lora(model("tiny_llama_untied", &device), &bad).unwrap_err(),
        LoraError::InvalidConfig { r: 0, targets: 7 }
    );
}
