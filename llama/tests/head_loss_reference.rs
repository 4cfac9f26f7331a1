//! `llama::kernels::head_loss::head_nll_sum` against torch's `CrossEntropyLoss(reduction="sum")` of
//! `hidden @ weight.T` and its autograd gradient, in float64
//! (`tools/reference/head_loss_reference.py` → `llama/fixtures/head_loss_reference.json`).

use burn::tensor::{Device, Int, Tensor, TensorData};
use llama::kernels::head_loss::head_nll_sum;
use serde_json::Value;

struct Fixture {
    value: Value,
    rows: usize,
    hidden: usize,
    vocab: usize,
}

impl Fixture {
    fn load() -> Self {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/head_loss_reference.json"
        );
        let value: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let dim = |name: &str| value["shape"][name].as_u64().unwrap() as usize;
        Self {
            rows: dim("rows"),
            hidden: dim("hidden"),
            vocab: dim("vocab"),
            value,
        }
    }

    fn floats(&self, name: &str) -> Vec<f32> {
        let values = self.value[name].as_array().unwrap();
        values.iter().map(|x| x.as_f64().unwrap() as f32).collect()
    }

    fn hidden(&self, device: &Device) -> Tensor<2> {
        let data = TensorData::new(self.floats("hidden"), [self.rows, self.hidden]);
        Tensor::from_data(data, device)
    }

    fn weight(&self, device: &Device) -> Tensor<2> {
        let data = TensorData::new(self.floats("weight"), [self.vocab, self.hidden]);
        Tensor::from_data(data, device)
    }

    fn targets(&self, device: &Device) -> Tensor<2, Int> {
        let targets: Vec<i64> = serde_json::from_value(self.value["targets"].clone()).unwrap();
        Tensor::from_data(TensorData::new(targets, [self.rows, 1]), device)
    }

    fn loss(&self) -> f32 {
        self.value["loss"].as_f64().unwrap() as f32
    }
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

fn assert_close(found: &[f32], expected: &[f32], tolerance: f32, what: &str) {
    assert_eq!(found.len(), expected.len(), "{what}");
    let error = found
        .iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(error < tolerance, "{what}: max error {error}");
}

/// Loss and gradient with the head as given and as the transposed view of a `[d, V]` weight
/// (an untied `lm_head` in burn's layout), on the autodiff device.
#[test]
fn loss_and_hidden_gradient_match_torch_cross_entropy() {
    let fixture = Fixture::load();
    let device = Device::default().autodiff();
    let d_by_v = fixture.weight(&device).transpose().into_data();
    let transposed = Tensor::<2>::from_data(d_by_v, &device).transpose();
    for (weight, layout) in [
        (fixture.weight(&device), "[V, d]"),
        (transposed, "transposed [d, V]"),
    ] {
        let hidden = fixture.hidden(&device).require_grad();
        let loss = head_nll_sum(hidden.clone(), weight, fixture.targets(&device));
        let gradients = loss.clone().backward();
        let loss = host(loss);
        assert_close(
            &loss,
            &[fixture.loss()],
            1e-4,
            &format!("loss, head {layout}"),
        );
        let grad = host(hidden.grad(&gradients).unwrap());
        let what = format!("gradient, head {layout}");
        assert_close(&grad, &fixture.floats("grad_hidden"), 1e-5, &what);
    }
}

/// The upstream gradient scales the hidden gradient (the loss is used as `2 · loss`), and a
/// plain (non-autodiff) device gives the same loss.
#[test]
fn upstream_gradient_scales_and_inference_gives_the_same_loss() {
    let fixture = Fixture::load();
    let device = Device::default().autodiff();
    let hidden = fixture.hidden(&device).require_grad();
    let loss = head_nll_sum(
        hidden.clone(),
        fixture.weight(&device),
        fixture.targets(&device),
    );
    let gradients = (loss * 2.0).backward();
    let doubled: Vec<f32> = fixture
        .floats("grad_hidden")
        .iter()
        .map(|g| 2.0 * g)
        .collect();
    assert_close(
        &host(hidden.grad(&gradients).unwrap()),
        &doubled,
        2e-5,
        "doubled gradient",
    );

    let plain = Device::default();
    let loss = head_nll_sum(
        fixture.hidden(&plain),
        fixture.weight(&plain),
        fixture.targets(&plain),
    );
    assert_close(&host(loss), &[fixture.loss()], 1e-4, "inference loss");
}

#[test]
#[should_panic(expected = "outside the vocabulary")]
fn a_target_outside_the_vocabulary_is_named() {
    let fixture = Fixture::load();
    let device = Device::default();
    let targets = Tensor::<2, Int>::from_data(
        TensorData::new(vec![fixture.vocab as i64; fixture.rows], [fixture.rows, 1]),
        &device,
    );
    let _ = head_nll_sum(fixture.hidden(&device), fixture.weight(&device), targets);
}
