//! A GPU path (CUDA or wgpu) against the flex CPU path on the tiny checkpoint: logits, the LoRA
//! loss and the adapters' gradients must agree (burn issues #5257, fusion/autotune results on
//! Vulkan, and #5162, NaN gradients when only some parameters train on wgpu).
//!
//! Built only with a GPU feature (`cuda` or `wgpu`): `scripts/check-gpu` runs it on a machine
//! with a GPU, once per backend with `INSCL_PARITY_DEVICE=cuda` and `=wgpu` (default `gpu`:
//! the one `--device gpu` picks). A software adapter (Mesa lavapipe) can stand in for a smoke
//! test of the wgpu path with `INSCL_WGPU_SOFTWARE=1`; without a GPU and without that variable
//! the test fails.
#![cfg(feature = "cube")]

use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use llama::device::{DeviceChoice, select_device};
use llama::model::Llama;
use llama::peft::{load_peft_adapter, read_peft_adapter};

mod support;
use support::{fixture, max_abs_diff, tiny_model};

fn gpu() -> Device {
    let choice: DeviceChoice = std::env::var("INSCL_PARITY_DEVICE")
        .unwrap_or_else(|_| "gpu".into())
        .parse()
        .expect("INSCL_PARITY_DEVICE");
    match select_device(choice) {
        Ok(gpu) => {
            eprintln!("GPU device: {}", gpu.description);
            gpu.device
        }
        #[cfg(feature = "wgpu")]
        Err(error) if std::env::var_os("INSCL_WGPU_SOFTWARE").is_some() => {
            eprintln!("{error}; INSCL_WGPU_SOFTWARE is set: using a software adapter");
            Device::wgpu(burn::tensor::DeviceKind::Cpu)
        }
        Err(error) => panic!("{error} (set INSCL_WGPU_SOFTWARE=1 to smoke-test on software)"),
    }
}

/// The PEFT fixture adapter (non-zero `B`, so both factors get gradients).
fn adapted(device: &Device) -> Llama {
    let (lora, tensors) = read_peft_adapter(&fixture("peft_adapter")).unwrap();
    load_peft_adapter(tiny_model("tiny_llama_untied", device), &lora, &tensors).unwrap()
}

/// A right-padded batch and its labels (prompt of 3 tokens and padding ignored).
fn batch(device: &Device) -> [Tensor<2, Int>; 3] {
    let tokens = vec![1, 17, 42, 99, 5, 127, 64, 3, 1, 7, 120, 33, 2, 0, 0, 0];
    let mask = vec![1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0];
    let labels: Vec<i64> = tokens
        .iter()
        .zip(&mask)
        .enumerate()
        .map(|(i, (&t, &m))| if i % 8 < 3 || m == 0 { -100 } else { t })
        .collect();
    [tokens, mask, labels].map(|v| Tensor::from_data(TensorData::new(v, [2, 8]), device))
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}

#[test]
fn wgpu_logits_match_flex() {
    let (cpu, gpu) = (Device::flex(), gpu());
    let logits = |device: &Device| {
        let [tokens, mask, _] = batch(device);
        host(adapted(device).forward(tokens, mask))
    };
    let diff = max_abs_diff(&logits(&cpu), &logits(&gpu));
    assert!(diff < 1e-4, "max |Δlogit| flex vs wgpu: {diff}");
}

/// A left-padded batch, as batched generation builds it: the second row's first three
/// queries see only padding, so their attention rows are fully masked (−∞ scores; flex's
/// fused kernel and burn's fallback on wgpu both output zeros there). The real positions must
/// agree and nothing may turn non-finite on the GPU.
#[test]
fn wgpu_left_padded_logits_match_flex() {
    let (cpu, gpu) = (Device::flex(), gpu());
    let mask = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1];
    let logits = |device: &Device| {
        let tokens = vec![1, 17, 42, 99, 5, 127, 64, 3, 0, 0, 0, 7, 120, 33, 2, 9];
        let ints = |v: Vec<i64>| Tensor::<2, Int>::from_data(TensorData::new(v, [2, 8]), device);
        host(adapted(device).forward(ints(tokens), ints(mask.to_vec())))
    };
    let (on_cpu, on_gpu) = (logits(&cpu), logits(&gpu));
    assert!(
        on_gpu.iter().all(|x| x.is_finite()),
        "non-finite wgpu logit"
    );
    let vocab = on_cpu.len() / mask.len();
    let real = |all: &[f32]| -> Vec<f32> {
        all.chunks_exact(vocab)
            .zip(mask)
            .filter(|(_, m)| *m == 1)
            .flat_map(|(row, _)| row.to_vec())
            .collect()
    };
    let diff = max_abs_diff(&real(&on_cpu), &real(&on_gpu));
    assert!(
        diff < 1e-4,
        "max |Δlogit| at real positions, flex vs wgpu: {diff}"
    );
}

#[test]
fn wgpu_lora_gradients_match_flex() {
    let (cpu, gpu) = (Device::flex().autodiff(), gpu().autodiff());
    let run = |device: &Device| {
        let model = adapted(device);
        let [tokens, mask, labels] = batch(device);
        let loss = model.causal_lm_loss(tokens, mask, labels);
        let value = host(loss.clone())[0];
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let mut per_factor = Vec::new();
        for layer in &model.layers {
            for target in llama::lora::LoraTarget::ALL {
                if let Some(adapter) = &layer.projection(target).lora {
                    for factor in [&adapter.a, &adapter.b] {
                        let g = grads
                            .get::<2>(factor.id)
                            .expect("every factor has a gradient");
                        per_factor.push(host(g));
                    }
                }
            }
        }
        assert!(
            grads
                .get::<2>(model.layers[0].self_attn.q_proj.dense_weight().unwrap().id)
                .is_none(),
            "frozen weights get no gradient"
        );
        (value, per_factor)
    };
    let (loss_cpu, grads_cpu) = run(&cpu);
    let (loss_gpu, grads_gpu) = run(&gpu);
    assert!(
        (loss_cpu - loss_gpu).abs() < 1e-4,
        "loss {loss_cpu} vs {loss_gpu}"
    );
    assert_eq!(grads_cpu.len(), 2 * 3 * 2);
    for (i, (c, g)) in grads_cpu.iter().zip(&grads_gpu).enumerate() {
        assert!(
            g.iter().all(|x| x.is_finite()),
            "factor {i}: non-finite wgpu gradient"
        );
        let scale = c.iter().fold(0.0f32, |m, x| m.max(x.abs())).max(1e-6);
        let diff = max_abs_diff(c, g);
        assert!(
            diff < 1e-3 * scale,
            "factor {i}: max |Δgrad| {diff} (scale {scale})"
        );
    }
}
