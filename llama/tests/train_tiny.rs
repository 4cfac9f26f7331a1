//! `llama::train` on the tiny checkpoint: the [`ScheduledAdamW`] (AdamW + schedule + accumulation +
//! global-norm clipping) lowers the response loss with LoRA while the frozen base stays
//! bit-identical; full fine-tuning moves every weight; the clipped global norm is what PyTorch's
//! `clip_grad_norm_` gives (checked against the norm recomputed from the gradients).

use burn::optim::GradientsParams;
use burn::tensor::Device;
use llama::io::host::parameters_on_host;
use llama::lora::{LoraConfig, LoraTarget};
use llama::model::Llama;
use llama::peft::apply_lora;
use llama::train::{
    Encoded, LrSchedule, OptimConfig, ScheduleKind, ScheduledAdamW, clip_grad_norm, collate,
    encode_example, hf_tensors, mean_loss,
};

mod support;
use support::{fixture, frozen, tiny_model};

fn model(device: &Device) -> Llama {
    tiny_model("tiny_llama_tied", device)
}

/// Four prompt/response pairs of different lengths (ids below the fixture's vocabulary).
fn examples() -> Vec<Encoded> {
    [
        (vec![1, 17, 42], vec![99, 5, 127, 64, 3]),
        (vec![1, 7], vec![120, 33, 2]),
        (vec![1, 9, 9, 9, 9], vec![11, 12]),
        (vec![1, 100], vec![50, 51, 52, 53, 54, 55]),
    ]
    .into_iter()
    .map(|(p, r)| encode_example(&[p], &[], &r, 16))
    .collect()
}

fn optim(steps: usize) -> OptimConfig {
    OptimConfig {
        schedule: LrSchedule::new(1e-2, 0.1, steps, ScheduleKind::Cosine),
        weight_decay: 0.01,
        clip_norm: Some(1.0),
    }
}

#[test]
fn lora_training_with_accumulation_lowers_loss_and_keeps_the_base_bit_identical() {
    let device = Device::default().autodiff();
    let lora = LoraConfig {
        r: 4,
        lora_alpha: 8.0,
        lora_dropout: 0.1,
        target_modules: LoraTarget::ALL.to_vec(),
    };
    device.seed(0);
    let mut model = apply_lora(model(&device), &lora, 0).unwrap();
    let before = parameters_on_host(&model);
    let data = examples();
    let rows: Vec<&Encoded> = data.iter().collect();
    // Two micro-batches of two per optimiser step.
    let micro = [collate(&rows[..2], &device), collate(&rows[2..], &device)];
    let mut trainer = ScheduledAdamW::new(optim(12));
    let mut losses = Vec::new();
    for _ in 0..12 {
        let (next, outcome) = trainer.step(model, &micro);
        model = next;
        assert!(outcome.grad_norm.is_finite() && outcome.grad_norm > 0.0);
        losses.push(outcome.loss);
    }
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(losses[11] < 0.7 * losses[0], "losses {losses:?}");
    let after = parameters_on_host(&model);
    assert_eq!(
        frozen(&after),
        frozen(&before),
        "frozen base weights changed"
    );
    assert!(
        after
            .iter()
            .any(|(k, v)| k.ends_with(".lora.b") && v != &before[k])
    );
}

#[test]
fn full_fine_tuning_trains_every_weight_and_exports_hf_names() {
    let device = Device::default().autodiff();
    let mut model = model(&device);
    let before = hf_tensors(&model);
    let (_, original) = llama::io::safetensors::load_llama(fixture("tiny_llama_tied")).unwrap();
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        original.keys().collect::<Vec<_>>()
    );
    for (name, t) in &original {
        assert_eq!(&before[name], t, "{name} round trip");
    }
    let data = examples();
    let rows: Vec<&Encoded> = data.iter().collect();
    let batch = [collate(&rows, &device)];
    let mut trainer = ScheduledAdamW::new(optim(3));
    for _ in 0..3 {
        model = trainer.step(model, &batch).0;
    }
    let after = hf_tensors(&model);
    for (name, t) in &after {
        assert_ne!(t, &before[name], "{name} did not train");
    }
}

#[test]
fn global_norm_clipping_scales_all_gradients_together() {
    let device = Device::default().autodiff();
    let model = model(&device);
    let data = examples();
    let rows: Vec<&Encoded> = data.iter().collect();
    let b = collate(&rows, &device);
    let loss = model.causal_lm_loss(b.tokens, b.attention_mask, b.labels);
    let mut grads = GradientsParams::from_grads(loss.backward(), &model);
    let embed_id = model.embed_tokens.weight.id;
    // Norm of the embedding's gradient alone.
    let norm = |g: &GradientsParams| -> f64 {
        let t = g.get::<2>(embed_id).unwrap();
        let values = t
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap();
        values
            .iter()
            .map(|&x| f64::from(x).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let embed_before = norm(&grads);
    let total = clip_grad_norm(&model, &mut grads, 1e9);
    assert!(
        total > embed_before,
        "the global norm covers more than one tensor"
    );
    assert!(
        (norm(&grads) - embed_before).abs() < 1e-9 * embed_before.max(1.0),
        "no clip below the limit"
    );
    let limit = total / 4.0;
    let again = clip_grad_norm(&model, &mut grads, limit);
    assert!((again - total).abs() < 1e-4 * total);
    // Every gradient is scaled by limit / total: the embedding's share of the norm is kept.
    let ratio = norm(&grads) / embed_before;
    assert!((ratio - limit / (total + 1e-6)).abs() < 1e-4, "{ratio}");
    assert!((clip_grad_norm(&model, &mut grads, 1e9) - limit).abs() < 1e-4 * limit);
}

#[test]
fn mean_loss_weights_batches_by_their_response_tokens() {
    let device = Device::default();
    let model = model(&device);
    let data = examples();
    let rows: Vec<&Encoded> = data.iter().collect();
    let whole = mean_loss(&model, &[collate(&rows, &device)]);
    // Batches of 1 and 3 examples with 5 and 11 response tokens: an unweighted mean of the two
    // batch means would differ from the whole batch's mean.
    let split = [collate(&rows[..1], &device), collate(&rows[1..], &device)];
    assert_eq!((split[0].n_scored, split[1].n_scored), (5, 11));
    let parts = mean_loss(&model, &split);
    assert!(
        (parts - whole).abs() < 1e-5,
        "split {parts} vs whole {whole}"
    );
    let unweighted = (mean_loss(&model, &split[..1]) + mean_loss(&model, &split[1..])) / 2.0;
    assert!(
        (unweighted - whole).abs() > 1e-3,
        "the weighting matters here"
    );
}
