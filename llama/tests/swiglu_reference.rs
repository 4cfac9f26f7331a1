//! `llama::kernels::swiglu::swiglu` against Hugging Face `LlamaMLP`'s `silu(gate) * up` differentiated
//! by torch autograd in float64 (`tools/reference/swiglu_reference.py` →
//! `llama/fixtures/swiglu_reference.json`): output and the gradients of both inputs, with
//! values where e^(−x) overflows or underflows float32, on contiguous and transposed inputs,
//! and tiled into a batch big enough for the flex kernel's parallel chunks.

use burn::tensor::{Device, Tensor, TensorData};
use llama::kernels::swiglu::swiglu;
use serde_json::Value;

/// Relative to max(1, |expected|): the float32 rounding of a few products.
const TOLERANCE: f64 = 1e-5;

struct Fixture {
    value: Value,
    shape: [usize; 3],
}

impl Fixture {
    fn load() -> Self {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/swiglu_reference.json"
        );
        let value: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let shape: Vec<usize> = value["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        Self {
            shape: shape.try_into().unwrap(),
            value,
        }
    }

    fn floats(&self, name: &str) -> Vec<f64> {
        self.value[name]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    }

    fn tensor(&self, name: &str, device: &Device) -> Tensor<3> {
        let values: Vec<f32> = self.floats(name).iter().map(|&x| x as f32).collect();
        Tensor::from_data(TensorData::new(values, self.shape), device)
    }
}

fn host(t: Tensor<3>) -> Vec<f64> {
    t.into_data()
        .convert::<f64>()
        .try_into_vec::<f64>()
        .unwrap()
}

fn assert_close(found: &[f64], expected: &[f64], what: &str) {
    assert_eq!(found.len(), expected.len(), "{what}: length");
    for (i, (a, b)) in found.iter().zip(expected).enumerate() {
        let error = (a - b).abs() / b.abs().max(1.0);
        assert!(error < TOLERANCE, "{what}[{i}]: {a} against {b}");
    }
}

/// Runs the gate under autodiff, optionally on transposed views of the inputs (the kernel then
/// reads them through a copy), with `weight` as the upstream gradient; returns the output and
/// the gradients of the tracked inputs.
fn gate_with_gradients(
    fixture: &Fixture,
    track: [bool; 2],
    transposed: bool,
) -> (Vec<f64>, [Option<Vec<f64>>; 2]) {
    let device = Device::default().autodiff();
    let input = |name: &str, on: bool| {
        let t = fixture.tensor(name, &device);
        let t = if transposed {
            // Stored as [b, 37, 3], read back as a [b, 3, 37] view.
            t.swap_dims(1, 2).into_data()
        } else {
            t.into_data()
        };
        let t = Tensor::<3>::from_data(t, &device);
        let t = if on { t.require_grad() } else { t };
        (t.clone(), if transposed { t.swap_dims(1, 2) } else { t })
    };
    let (gate_leaf, gate) = input("gate", track[0]);
    let (up_leaf, up) = input("up", track[1]);
    let output = swiglu(gate, up);
    let weight = fixture.tensor("weight", &device);
    let gradients = (output.clone() * weight).sum().backward();
    let grad = |leaf: &Tensor<3>| {
        leaf.grad(&gradients).map(|g| {
            let g = Tensor::<3>::from_data(g.into_data(), &Device::default());
            host(if transposed { g.swap_dims(1, 2) } else { g })
        })
    };
    (host(output), [grad(&gate_leaf), grad(&up_leaf)])
}

#[test]
fn output_and_gradients_match_hf_silu_gate() {
    let fixture = Fixture::load();
    for transposed in [false, true] {
        let (output, [grad_gate, grad_up]) = gate_with_gradients(&fixture, [true; 2], transposed);
        let case = if transposed {
            "transposed"
        } else {
            "contiguous"
        };
        assert_close(
            &output,
            &fixture.floats("output"),
            &format!("{case} output"),
        );
        assert_close(
            &grad_gate.unwrap(),
            &fixture.floats("grad_gate"),
            &format!("{case} grad_gate"),
        );
        assert_close(
            &grad_up.unwrap(),
            &fixture.floats("grad_up"),
            &format!("{case} grad_up"),
        );
    }
}

#[test]
fn an_untracked_input_gets_no_gradient_and_the_other_is_unchanged() {
    let fixture = Fixture::load();
    for track in [[true, false], [false, true]] {
        let (_, grads) = gate_with_gradients(&fixture, track, false);
        for ((grad, name), on) in grads.iter().zip(["grad_gate", "grad_up"]).zip(track) {
            match grad {
                Some(grad) => {
                    assert!(on, "{name} has a gradient but was not tracked");
                    assert_close(grad, &fixture.floats(name), name);
                }
                None => assert!(!on, "{name} was tracked but has no gradient"),
            }
        }
    }
}

#[test]
fn the_forward_pass_without_autodiff_matches() {
    let fixture = Fixture::load();
    let device = Device::default();
    let output = swiglu(
        fixture.tensor("gate", &device),
        fixture.tensor("up", &device),
    );
    assert_close(&host(output), &fixture.floats("output"), "output");
}

/// The fixture's 222 values repeated 200 times along the batch (44 400 values, three chunks of
/// the flex kernel, the last partial): every copy must give the fixture's values.
#[test]
fn a_batch_tiled_from_the_fixture_gives_the_fixture_values_in_every_copy() {
    const COPIES: usize = 200;
    let fixture = Fixture::load();
    let device = Device::default().autodiff();
    let [b, s, d] = fixture.shape;
    let tiled = |name: &str| {
        let values: Vec<f32> = fixture.floats(name).iter().map(|&x| x as f32).collect();
        let values = values.repeat(COPIES);
        Tensor::<3>::from_data(TensorData::new(values, [b * COPIES, s, d]), &device)
    };
    let (gate, up) = (tiled("gate").require_grad(), tiled("up").require_grad());
    let output = swiglu(gate.clone(), up.clone());
    let gradients = (output.clone() * tiled("weight")).sum().backward();
    let expected = |name: &str| fixture.floats(name).repeat(COPIES);
    assert_close(&host(output), &expected("output"), "tiled output");
    let grad = |t: &Tensor<3>| {
        let g = t.grad(&gradients).unwrap();
        host(Tensor::<3>::from_data(g.into_data(), &Device::default()))
    };
    assert_close(&grad(&gate), &expected("grad_gate"), "tiled grad_gate");
    assert_close(&grad(&up), &expected("grad_up"), "tiled grad_up");
}
