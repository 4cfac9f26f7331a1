//! Throughput of the burn LLaMA on the default device (flex CPU unless another backend is
//! enabled) with random weights shaped like SmolLM2-135M (30 layers, d = 576, 9 query / 3
//! key-value heads, MLP 1536, vocabulary 49152, tied head): a batched forward pass (prefill /
//! evaluation), a LoRA training step (forward + backward + AdamW, rank 8 on all seven
//! projections) and greedy decoding with the KV cache. Criterion reports tokens/s.
//!
//! Run: `cargo bench -p llama --bench model_throughput`.

use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use llama::config::LlamaConfig;
use llama::generate::{GenerationConfig, generate};
use llama::io::host::{HostTensor, HostTensors};
use llama::lora::{LoraConfig, LoraTarget};
use llama::model::Llama;
use llama::peft::apply_lora;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn smollm2_shape() -> LlamaConfig {
    serde_json::from_value(serde_json::json!({
        "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536,
        "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
        "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "tie_word_embeddings": true,
        "eos_token_id": 2
    }))
    .unwrap()
}

/// Uniform weights in ±1/√(fan-in); norms at 1.
fn random_tensors(c: &LlamaConfig, seed: u64) -> HostTensors {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut t = HostTensors::new();
    let mut add = |name: String, shape: Vec<usize>, rng: &mut ChaCha8Rng| {
        let n = shape.iter().product();
        let data = match shape[..] {
            [_, fan_in] => {
                let scale = 1.0 / (fan_in as f32).sqrt();
                (0..n)
                    .map(|_| scale * (2.0 * rng.random::<f32>() - 1.0))
                    .collect()
            }
            _ => vec![1.0; n],
        };
        t.insert(name, HostTensor { shape, data });
    };
    let (d, f, kv) = (
        c.hidden_size,
        c.intermediate_size,
        c.kv_heads() * c.head_dim(),
    );
    add(
        "model.embed_tokens.weight".into(),
        vec![c.vocab_size, d],
        &mut rng,
    );
    add("model.norm.weight".into(), vec![d], &mut rng);
    for i in 0..c.num_hidden_layers {
        let p = format!("model.layers.{i}.");
        for (name, shape) in [
            ("input_layernorm.weight", vec![d]),
            ("post_attention_layernorm.weight", vec![d]),
            ("self_attn.q_proj.weight", vec![d, d]),
            ("self_attn.k_proj.weight", vec![kv, d]),
            ("self_attn.v_proj.weight", vec![kv, d]),
            ("self_attn.o_proj.weight", vec![d, d]),
            ("mlp.gate_proj.weight", vec![f, d]),
            ("mlp.up_proj.weight", vec![f, d]),
            ("mlp.down_proj.weight", vec![d, f]),
        ] {
            add(format!("{p}{name}"), shape, &mut rng);
        }
    }
    t
}

fn tokens(b: usize, s: usize, vocab: usize, device: &Device) -> Tensor<2, Int> {
    let data: Vec<i64> = (0..b * s).map(|i| ((i * 7919) % vocab) as i64).collect();
    Tensor::from_data(TensorData::new(data, [b, s]), device)
}

fn bench(c: &mut Criterion) {
    let config = smollm2_shape();
    let weights = random_tensors(&config, 0);
    let device = Device::default();
    let model = Llama::from_host_tensors(&config, &weights, &device).unwrap();
    let mut group = c.benchmark_group("smollm2_135m_shape");
    group.sample_size(10);

    let (b, s) = (4, 128);
    let (ids, mask) = (
        tokens(b, s, config.vocab_size, &device),
        Tensor::<2, Int>::ones([b, s], &device),
    );
    group.throughput(Throughput::Elements((b * s) as u64));
    group.bench_function("forward_4x128", |bench| {
        bench.iter(|| {
            let logits = model.forward(ids.clone(), mask.clone());
            logits.into_data()
        });
    });

    let train_device = device.clone().autodiff();
    let lora = LoraConfig {
        r: 8,
        lora_alpha: 16.0,
        lora_dropout: 0.0,
        target_modules: LoraTarget::ALL.to_vec(),
    };
    let mut trained = Some(
        apply_lora(
            Llama::from_host_tensors(&config, &weights, &train_device).unwrap(),
            &lora,
            0,
        )
        .unwrap(),
    );
    let mut optimizer = AdamWConfig::new().init();
    let (b, s) = (8, 256);
    let ids = tokens(b, s, config.vocab_size, &train_device);
    let mask = Tensor::<2, Int>::ones([b, s], &train_device);
    group.throughput(Throughput::Elements((b * s) as u64));
    group.bench_function("lora_step_8x256", |bench| {
        bench.iter(|| {
            let model = trained.take().unwrap();
            let loss = model.causal_lm_loss(ids.clone(), mask.clone(), ids.clone());
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            trained = Some(optimizer.step(1e-4, model, grads));
        });
    });

    let prompts = vec![(1..=16).collect::<Vec<u32>>()];
    let gen_config = GenerationConfig {
        eos_token_ids: vec![],
        ..GenerationConfig::greedy(32, &config)
    };
    group.throughput(Throughput::Elements(32));
    group.bench_function("greedy_decode_1x32", |bench| {
        bench.iter(|| generate(&model, &prompts, &gen_config).unwrap());
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
