//! Batched generation with the KV cache against step-by-step full forward passes, EOS stopping,
//! continuous batching (rows leaving and joining) and the seeded samplers, on the tiny fixture
//! checkpoints; continuous batching against one prompt at a time on SmolLM2-135M-Instruct
//! (skipped when `assets/` lacks it).

use std::ops::ControlFlow;

use burn::tensor::{Device, Int, Tensor, TensorData};
use llama::generate::{
    GenerateError, GenerationConfig, Sampling, eos_token_ids, generate, generate_queued,
    sample_token,
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

/// Prompts of several lengths, more than one batch holds.
const QUEUE: [&[u32]; 7] = [
    &[1, 17, 42, 99, 5, 127],
    &[1, 7],
    &[1, 64, 3, 88],
    &[1, 9, 9, 9, 9, 9, 9, 9, 9, 31],
    &[1, 120],
    &[1, 55, 56, 57],
    &[1, 2, 3, 4, 5, 6, 7, 8],
];

#[test]
fn continuous_batching_equals_one_at_a_time_greedy() {
    for name in ["tiny_llama_tied", "tiny_llama_untied", "tiny_llama_llama3"] {
        let model = model(name);
        let prompts: Vec<Vec<u32>> = QUEUE.iter().map(|p| p.to_vec()).collect();
        let free: Vec<Vec<u32>> = prompts
            .iter()
            .map(|p| greedy_reference(&model, p, 10))
            .collect();
        // An EOS that some rows produce and others never: rows leave at different steps and
        // the queue refills their places.
        let eos = free
            .iter()
            .flatten()
            .copied()
            .find(|t| free.iter().any(|f| !f.contains(t)))
            .expect("a token that stops some rows only");
        let expected: Vec<Vec<u32>> = free
            .iter()
            .map(|f| f[..f.iter().position(|&t| t == eos).unwrap_or(10)].to_vec())
            .collect();
        let config = GenerationConfig {
            eos_token_ids: vec![eos],
            ..GenerationConfig::greedy(10, model.config())
        };
        for max_batch in [1, 2, 3, 7] {
            let mut order = Vec::new();
            let out = generate_queued(&model, &prompts, &config, max_batch, &mut |p| {
                order.push(p);
                ControlFlow::Continue(())
            })
            .unwrap();
            assert_eq!(out.tokens, expected, "{name}, batch {max_batch}");
            for (p, e) in expected.iter().enumerate() {
                assert_eq!(out.finished[p], e.len() < 10, "{name}, batch {max_batch}");
            }
            order.sort_unstable();
            assert_eq!(order, (0..prompts.len()).collect::<Vec<_>>());
            let stats = out.stats;
            assert_eq!(
                stats.prompt_tokens,
                prompts.iter().map(Vec::len).sum::<usize>()
            );
            // Every produced token but each row's last is fed back by one decoding step.
            let fed: usize = expected
                .iter()
                .map(|e| if e.len() < 10 { e.len() } else { 9 })
                .sum();
            assert_eq!(stats.row_steps, fed, "{name}, batch {max_batch}");
            if max_batch == 1 {
                assert_eq!(stats.prefills, prompts.len());
                assert_eq!(stats.decode_steps, fed);
            }
        }
    }
}

#[test]
fn shared_prefixes_are_computed_once() {
    let model = model("tiny_llama_untied");
    // Three instructions of 40 tokens, two inputs each, queued in an order that interleaves
    // them; and one prompt that is a prefix of another (its last token is computed anew).
    let instruction =
        |i: u32| -> Vec<u32> { (0..40).map(|k| 1 + (i * 37 + k * 11) % 120).collect() };
    let mut prompts: Vec<Vec<u32>> = Vec::new();
    for input in [[5u32, 6, 7].as_slice(), &[9, 9]] {
        for i in 0..3 {
            prompts.push(
                instruction(i)
                    .into_iter()
                    .chain(input.iter().copied())
                    .collect(),
            );
        }
    }
    prompts.push(instruction(0));
    let config = GenerationConfig {
        eos_token_ids: vec![],
        ..GenerationConfig::greedy(5, model.config())
    };
    for max_batch in [1, 4, 7] {
        let out = generate_queued(&model, &prompts, &config, max_batch, &mut |_| {
            ControlFlow::Continue(())
        })
        .unwrap();
        for (p, prompt) in prompts.iter().enumerate() {
            assert_eq!(
                out.tokens[p],
                greedy_reference(&model, prompt, 5),
                "batch {max_batch}, prompt {p}"
            );
        }
        // Prompts 3, 4 and 5 reuse the 40 instruction tokens of prompts 0, 1 and 2; prompt 6
        // reuses 39 of prompt 0's.
        assert_eq!(
            out.stats.reused_prompt_tokens,
            3 * 40 + 39,
            "batch {max_batch}"
        );
        let total: usize = prompts.iter().map(Vec::len).sum();
        assert_eq!(out.stats.prompt_tokens, total - (3 * 40 + 39));
    }
}

#[test]
fn sampled_rows_do_not_depend_on_the_batch() {
    let model = model("tiny_llama_untied");
    let prompts: Vec<Vec<u32>> = QUEUE.iter().map(|p| p.to_vec()).collect();
    let config = GenerationConfig {
        max_new_tokens: 8,
        sampling: Sampling::TopP {
            temperature: 1.5,
            top_p: 0.95,
        },
        eos_token_ids: vec![],
        seed: 11,
    };
    let sampled = |max_batch| {
        generate_queued(&model, &prompts, &config, max_batch, &mut |_| {
            ControlFlow::Continue(())
        })
        .unwrap()
        .tokens
    };
    let alone = sampled(1);
    assert_eq!(sampled(3), alone);
    assert_eq!(sampled(7), alone);
    // Each row draws from its own stream: the first prompt alone gives the same tokens.
    let first = generate(&model, &prompts[..1], &config).unwrap().tokens;
    assert_eq!(first[0], alone[0]);
}

#[test]
fn a_break_stops_the_queue() {
    let model = model("tiny_llama_tied");
    let prompts: Vec<Vec<u32>> = QUEUE.iter().map(|p| p.to_vec()).collect();
    let config = GenerationConfig {
        eos_token_ids: vec![],
        ..GenerationConfig::greedy(4, model.config())
    };
    let mut calls = 0;
    let out = generate_queued(&model, &prompts, &config, 2, &mut |_| {
        calls += 1;
        ControlFlow::Break(())
    })
    .unwrap();
    // Both rows of the first batch stop at the same step; the queue behind them never starts.
    assert_eq!(calls, 2);
    assert_eq!(out.tokens[0].len(), 4);
    assert!(out.tokens[2..].iter().all(Vec::is_empty));
}

/// The real SmolLM2-135M-Instruct: chat prompts of different lengths answered by continuous
/// batching (3 rows at a time, so rows leave and join, later prompts of an instruction reusing
/// its cached prefix) equal each prompt answered alone.
#[test]
fn continuous_batching_equals_one_at_a_time_on_smollm2() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../assets/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !path.is_file() {
        eprintln!(
            "skipped: model_generate::continuous_batching_equals_one_at_a_time_on_smollm2 ({} is missing: run scripts/fetch-assets)",
            path.display()
        );
        return;
    }
    let (config, tensors) = llama::io::gguf::load_llama(&path).unwrap();
    let tokenizer =
        llama::tokenizer::Tokenizer::from_gguf(&llama::io::gguf::GgufFile::open(&path).unwrap())
            .unwrap();
    let model = Llama::from_host_tensors(&config, &tensors, &Device::default()).unwrap();
    let template = tokenizer.chat_template().unwrap();
    // Two instructions of more than MIN_SHARED_PREFIX tokens with three inputs each (the later
    // prompts of an instruction reuse the first one's cached prefix), and two lone questions.
    let sentiment = "In this task, you are given a short product review. Classify the \
        sentiment of the review as positive or negative. Answer with one word, positive or \
        negative, and nothing else.";
    let sql = "In this task, you are given a description of a database table and a question. \
        Write one SQL query that answers the question. Use standard SQL and do not explain it.";
    let questions = [
        format!("Definition: {sentiment}\n\nInput: The food was cold and the waiter was rude."),
        "What is the capital of France?".to_owned(),
        format!("Definition: {sql}\n\nInput: Table users(id, name). How many users are there?"),
        format!("Definition: {sentiment}\n\nInput: I loved every minute of it."),
        format!(
            "Definition: {sql}\n\nInput: Table cities(name, country). List the cities of Peru."
        ),
        "Name three colours.".to_owned(),
        format!("Definition: {sentiment}\n\nInput: Broke after two days, would not buy again."),
        format!("Definition: {sql}\n\nInput: Table orders(id, total). What is the largest total?"),
    ];
    let prompts: Vec<Vec<u32>> = questions
        .iter()
        .map(|q| tokenizer.encode(&template.user_prompt(q), false).unwrap())
        .collect();
    let mut gen_config = GenerationConfig::greedy(24, &config);
    gen_config
        .eos_token_ids
        .extend(tokenizer.token_id("<|im_end|>"));
    let batched = generate_queued(&model, &prompts, &gen_config, 3, &mut |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    for (p, prompt) in prompts.iter().enumerate() {
        let alone = generate(&model, std::slice::from_ref(prompt), &gen_config).unwrap();
        assert_eq!(
            batched.tokens[p], alone.tokens[0],
            "prompt {p}: {:?}",
            questions[p]
        );
    }
    assert!(
        batched.finished.iter().any(|&f| f),
        "some answer should end before 24 tokens"
    );
}
