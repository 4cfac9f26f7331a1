//! Batched generation with the KV cache against step-by-step full forward passes, EOS stopping
//! and the seeded samplers, on the tiny fixture checkpoints.

use burn::tensor::{Device, Int, Tensor, TensorData};
use llama::generate::{
    GenerateError, GenerationConfig, Sampling, eos_token_ids, generate, sample_token,
};
use llama::model::Llama;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn model(name: &str) -> Llama {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    let (config, tensors) = llama::io::safetensors::load_llama(dir).unwrap();
    Llama::from_host_tensors(&config, &tensors, &Device::default()).unwrap()
}

/// Greedy continuation without cache or batching: the whole sequence is re-run every step.
fn greedy_reference(model: &Llama, prompt: &[u32], n: usize) -> Vec<u32> {
    let device = Device::default();
    let mut seq: Vec<i64> = prompt.iter().map(|&t| i64::from(t)).collect();
    for _ in 0..n {
        let s = seq.len();
        let tokens = Tensor::<2, Int>::from_data(TensorData::new(seq.clone(), [1, s]), &device);
        let mask = Tensor::<2, Int>::ones([1, s], &device);
        let next = model
            .forward(tokens, mask)
            .narrow(1, s - 1, 1)
            .argmax(2)
            .into_data()
            .convert::<i64>()
            .try_into_vec::<i64>()
            .unwrap()[0];
        seq.push(next);
    }
    seq[prompt.len()..].iter().map(|&t| t as u32).collect()
}

const PROMPTS: [&[u32]; 3] = [&[1, 17, 42, 99, 5, 127], &[1, 7], &[1, 64, 3, 88]];

#[test]
fn batched_cached_greedy_equals_unbatched_full_forward() {
    for name in ["tiny_llama_tied", "tiny_llama_untied", "tiny_llama_llama3"] {
        let model = model(name);
        let prompts: Vec<Vec<u32>> = PROMPTS.iter().map(|p| p.to_vec()).collect();
        let config = GenerationConfig {
            eos_token_ids: vec![],
            ..GenerationConfig::greedy(8, model.config())
        };
        let out = generate(&model, &prompts, &config).unwrap();
        assert_eq!(out.finished, vec![false; 3]);
        assert!(out.tokens_per_second > 0.0);
        for (p, prompt) in prompts.iter().enumerate() {
            assert_eq!(
                out.tokens[p],
                greedy_reference(&model, prompt, 8),
                "{name} prompt {p}"
            );
        }
    }
}

#[test]
fn rows_stop_at_eos_independently() {
    let model = model("tiny_llama_tied");
    assert_eq!(eos_token_ids(model.config()), vec![2]);
    let prompts: Vec<Vec<u32>> = PROMPTS.iter().map(|p| p.to_vec()).collect();
    let free = greedy_reference(&model, &prompts[0], 6);
    // Make the first greedy token of prompt 0 that is new after position 0 the EOS: row 0
    // stops right before it.
    let k = (1..free.len())
        .find(|&k| !free[..k].contains(&free[k]))
        .expect("a new token among the first six");
    let eos = free[k];
    let config = GenerationConfig {
        eos_token_ids: vec![eos],
        ..GenerationConfig::greedy(6, model.config())
    };
    let out = generate(&model, &prompts, &config).unwrap();
    assert_eq!(out.tokens[0], free[..k].to_vec());
    assert!(out.finished[0]);
    for (p, prompt) in prompts.iter().enumerate().skip(1) {
        let free = greedy_reference(&model, prompt, 6);
        let stop = free.iter().position(|&t| t == eos);
        assert_eq!(
            out.tokens[p],
            free[..stop.unwrap_or(6)].to_vec(),
            "prompt {p}"
        );
        assert_eq!(out.finished[p], stop.is_some());
    }
}

#[test]
fn sampling_is_seeded_and_tiny_top_p_is_greedy() {
    let model = model("tiny_llama_untied");
    let prompts = vec![PROMPTS[0].to_vec(), PROMPTS[1].to_vec()];
    let sampled = |seed, top_p| {
        let config = GenerationConfig {
            max_new_tokens: 12,
            sampling: Sampling::TopP {
                temperature: 1.5,
                top_p,
            },
            eos_token_ids: vec![],
            seed,
        };
        generate(&model, &prompts, &config).unwrap().tokens
    };
    assert_eq!(sampled(7, 0.95), sampled(7, 0.95));
    assert_ne!(sampled(7, 0.95), sampled(8, 0.95));
    let greedy = generate(
        &model,
        &prompts,
        &GenerationConfig::greedy(12, model.config()),
    )
    .unwrap();
    assert_eq!(sampled(7, 1e-6), greedy.tokens);
}

#[test]
fn top_p_keeps_the_nucleus_and_samples_proportionally() {
    // Probabilities 0.5, 0.3, 0.15, 0.05 (temperature 1): top_p 0.75 keeps ids 0 and 1, which
    // are then drawn with probabilities 0.5/0.8 and 0.3/0.8.
    let logits = [0.5f32.ln(), 0.3f32.ln(), 0.15f32.ln(), 0.05f32.ln()];
    let sampling = Sampling::TopP {
        temperature: 1.0,
        top_p: 0.75,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut counts = [0u32; 4];
    let n = 20_000;
    for _ in 0..n {
        counts[sample_token(&logits, sampling, &mut rng).unwrap() as usize] += 1;
    }
    assert_eq!(counts[2] + counts[3], 0);
    let freq = f64::from(counts[0]) / f64::from(n);
    assert!((freq - 0.625).abs() < 0.015, "P(id 0) = {freq}");
    assert_eq!(
        sample_token(&logits, Sampling::Greedy, &mut rng).unwrap(),
        0
    );
    assert_eq!(
        serde_json::to_value(sampling).unwrap(),
        serde_json::json!({"top_p": {"temperature": 1.0, "top_p": 0.75}})
    );
    assert_eq!(
        sample_token(
            &logits,
            Sampling::TopP {
                temperature: 0.0,
                top_p: 0.5
            },
            &mut rng
        ),
        Err(GenerateError::InvalidSampling {
            temperature: 0.0,
            top_p: 0.5
        })
    );
}

#[test]
fn invalid_prompts_are_rejected() {
    let model = model("tiny_llama_tied");
    let config = GenerationConfig::greedy(2, model.config());
    assert_eq!(
        generate(&model, &[], &config),
        Err(GenerateError::NoPrompts)
    );
    assert_eq!(
        generate(&model, &[vec![1], vec![]], &config),
        Err(GenerateError::EmptyPrompt(1))
    );
    assert_eq!(
        generate(&model, &[vec![1, 128]], &config),
        Err(GenerateError::TokenOutOfVocabulary {
            prompt: 0,
            token: 128,
            vocab_size: 128
        })
    );
}
