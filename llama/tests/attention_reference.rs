//! `llama::kernels::attention::masked_attention` against Hugging Face's eager attention differentiated by
//! torch autograd in float64 (`tools/reference/attention_reference.py` →
//! `llama/fixtures/attention_reference.json`, 5 positions, and `attention_reference_long.json`,
//! 70 positions, more than one block of query rows in the flex kernel): output and the
//! gradients of Q, K and V through grouped-query `repeat_kv`, causal and padding masks.

use burn::tensor::{Bool, Device, Tensor, TensorData};
use llama::kernels::attention::masked_attention;
use serde_json::Value;

const TOLERANCE: f32 = 2e-5;

struct Fixture {
    name: &'static str,
    value: Value,
    batch: usize,
    heads: usize,
    kv_heads: usize,
    seq: usize,
    head_dim: usize,
}

impl Fixture {
    fn load(name: &'static str) -> Self {
        let path = format!("{}/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
        let value: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let dim = |name: &str| value["shape"][name].as_u64().unwrap() as usize;
        Self {
            name,
            batch: dim("batch"),
            heads: dim("heads"),
            kv_heads: dim("kv_heads"),
            seq: dim("seq"),
            head_dim: dim("head_dim"),
            value,
        }
    }

    fn floats(&self, name: &str) -> Vec<f32> {
        self.value[name]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    }

    fn tensor(&self, name: &str, heads: usize, device: &Device) -> Tensor<4> {
        let shape = [self.batch, heads, self.seq, self.head_dim];
        Tensor::from_data(TensorData::new(self.floats(name), shape), device)
    }

    /// `[b, h, s, t]`: true where query i may not attend to key j (j > i, or j is padding).
    fn blocked(&self, device: &Device) -> Tensor<4, Bool> {
        let (b, s) = (self.batch, self.seq);
        let mask = &self.value["attention_mask"];
        let blocked: Vec<bool> = (0..b * s * s)
            .map(|k| {
                let (row, i, j) = (k / (s * s), k / s % s, k % s);
                j > i || mask[row * s + j].as_i64().unwrap() == 0
            })
            .collect();
        Tensor::<4, Bool>::from_data(TensorData::new(blocked, [b, 1, s, s]), device)
            .expand([b, self.heads, s, s])
    }

    /// HF `repeat_kv`: `[b, h_kv, t, d]` → `[b, h, t, d]`.
    fn repeat_kv(&self, x: Tensor<4>) -> Tensor<4> {
        let (b, n_kv, t, d) = (self.batch, self.kv_heads, self.seq, self.head_dim);
        let n_rep = self.heads / n_kv;
        x.unsqueeze_dim::<5>(2)
            .expand([b, n_kv, n_rep, t, d])
            .reshape([b, n_kv * n_rep, t, d])
    }
}

/// Both cases of the reference script.
fn fixtures() -> [Fixture; 2] {
    ["attention_reference", "attention_reference_long"].map(Fixture::load)
}

fn host(t: Tensor<4>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

fn max_error(found: &[f32], expected: &[f32]) -> f32 {
    assert_eq!(found.len(), expected.len());
    found
        .iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

/// Runs the attention under autodiff with `weight` as the upstream gradient (loss =
/// sum(output · weight)); returns the output and the gradients of the inputs marked in
/// `track` (query, key, value), `None` for the others.
fn attention_with_gradients(
    fixture: &Fixture,
    weight: Vec<f32>,
    track: [bool; 3],
) -> (Vec<f32>, [Option<Vec<f32>>; 3]) {
    let device = Device::default().autodiff();
    let tracked = |name: &str, heads: usize, on: bool| {
        let t = fixture.tensor(name, heads, &device);
        if on { t.require_grad() } else { t }
    };
    let query = tracked("query", fixture.heads, track[0]);
    let key = tracked("key", fixture.kv_heads, track[1]);
    let value = tracked("value", fixture.kv_heads, track[2]);
    let scale = fixture.value["scale"].as_f64().unwrap();
    let output = masked_attention(
        query.clone(),
        fixture.repeat_kv(key.clone()),
        fixture.repeat_kv(value.clone()),
        fixture.blocked(&device),
        scale,
    );
    let shape = [fixture.batch, fixture.heads, fixture.seq, fixture.head_dim];
    let weight = Tensor::<4>::from_data(TensorData::new(weight, shape), &device);
    let gradients = (output.clone() * weight).sum().backward();
    let grad = |t: &Tensor<4>| t.grad(&gradients).map(host);
    (host(output), [grad(&query), grad(&key), grad(&value)])
}

/// Whether output position `k` (row-major over `[b, h, s, d]`) is a query that can attend to
/// nothing (a left padding position): where the fixture's loss weight is zero.
fn fully_blocked_rows(fixture: &Fixture) -> Vec<bool> {
    fixture.floats("weight").iter().map(|&w| w == 0.0).collect()
}

#[test]
fn output_and_gradients_match_hf_eager_attention() {
    for fixture in fixtures() {
        output_and_gradients_match(&fixture);
    }
}

fn output_and_gradients_match(fixture: &Fixture) {
    let (output, grads) = attention_with_gradients(fixture, fixture.floats("weight"), [true; 3]);
    let skip = fully_blocked_rows(fixture);
    let expected = fixture.floats("output");
    let real = |v: &[f32]| -> Vec<f32> {
        v.iter()
            .zip(&skip)
            .filter(|(_, s)| !**s)
            .map(|(x, _)| *x)
            .collect()
    };
    let error = max_error(&real(&output), &real(&expected));
    assert!(error < TOLERANCE, "{}: output error {error}", fixture.name);
    for (grad, name) in grads.iter().zip(["grad_query", "grad_key", "grad_value"]) {
        let error = max_error(grad.as_ref().unwrap(), &fixture.floats(name));
        assert!(error < TOLERANCE, "{}: {name} error {error}", fixture.name);
    }
}

#[test]
fn untracked_inputs_get_no_gradient_and_the_others_are_unchanged() {
    let fixture = Fixture::load("attention_reference");
    for track in [
        [false, false, true],
        [true, false, false],
        [false, true, false],
    ] {
        let (_, grads) = attention_with_gradients(&fixture, fixture.floats("weight"), track);
        for ((grad, name), on) in grads
            .iter()
            .zip(["grad_query", "grad_key", "grad_value"])
            .zip(track)
        {
            match grad {
                Some(grad) => {
                    assert!(on, "{name} has a gradient but was not tracked");
                    let error = max_error(grad, &fixture.floats(name));
                    assert!(
                        error < TOLERANCE,
                        "{name} error {error} (tracked {track:?})"
                    );
                }
                None => assert!(!on, "{name} was tracked but has no gradient"),
            }
        }
    }
}

/// The named departure from HF: a query that may attend to nothing outputs zeros (HF's
/// float32-minimum fill averages V), and a gradient arriving there reaches no input.
#[test]
fn fully_blocked_queries_output_zeros_and_pass_no_gradient() {
    for fixture in fixtures() {
        fully_blocked_queries_output_zeros(&fixture);
    }
}

fn fully_blocked_queries_output_zeros(fixture: &Fixture) {
    let skip = fully_blocked_rows(fixture);
    assert!(
        skip.iter().any(|&s| s),
        "{}: the fixture has no fully blocked query",
        fixture.name
    );
    let weight: Vec<f32> = fixture
        .floats("weight")
        .iter()
        .zip(&skip)
        .map(|(&w, &s)| if s { 1.0 } else { w })
        .collect();
    let (output, grads) = attention_with_gradients(fixture, weight, [true; 3]);
    assert!(output.iter().zip(&skip).all(|(&x, &s)| !s || x == 0.0));
    for (grad, name) in grads.iter().zip(["grad_query", "grad_key", "grad_value"]) {
        let grad = grad.as_ref().unwrap();
        assert!(
            grad.iter().all(|g| g.is_finite()),
            "{}: {name} is not finite",
            fixture.name
        );
        let error = max_error(grad, &fixture.floats(name));
        assert!(error < TOLERANCE, "{}: {name} error {error}", fixture.name);
    }
}
