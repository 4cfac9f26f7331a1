//! Budget allocation and InsInfo shares of `inscl::replay` against shared/fixtures/insinfo.json,
//! produced by tools/reference/insinfo_reference.py after the official InsCL code
//! (`cal_dynamic_num` and `sample_example` in InsCL.py).
//!
//! The fixture records the official code as written and, separately, the project's named
//! departures: tied extras spread over distinct tasks ("dynamic_spread"), and an instruction's
//! last instance never trimmed away.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use inscl::replay::{allocate_dynamic, allocate_uniform, replay_rng, sample_insinfo};
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!("../fixtures/insinfo.json")).expect("valid fixture")
}

fn counts(value: &Value) -> Vec<usize> {
    value
        .as_array()
        .expect("array of integers")
        .iter()
        .map(|x| x.as_u64().expect("integer") as usize)
        .collect()
}

/// Exact doubles from their IEEE-754 bits.
fn doubles(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .expect("array of IEEE-754 bit patterns")
        .iter()
        .map(|bits| f64::from_bits(bits.as_u64().expect("bit pattern")))
        .collect()
}

struct Allocation {
    distances: Vec<f64>,
    budget: usize,
    /// `None` where the official code raises (all distances 0: ZeroDivisionError).
    official: Option<Vec<usize>>,
    spread: Vec<usize>,
    ties_differ: bool,
    uniform: Vec<usize>,
}

fn allocation_cases() -> Vec<Allocation> {
    let fixture = fixture();
    let cases = fixture["allocation"].as_array().expect("allocation cases");
    assert!(cases.len() >= 30);
    cases
        .iter()
        .map(|case| Allocation {
            distances: doubles(&case["distance_bits"]),
            budget: case["budget"].as_u64().unwrap() as usize,
            official: (!case["dynamic_official"].is_null())
                .then(|| counts(&case["dynamic_official"])),
            spread: counts(&case["dynamic_spread"]),
            ties_differ: case["ties_differ"].as_bool().expect("ties_differ"),
            uniform: counts(&case["uniform"]),
        })
        .collect()
}

#[test]
fn allocations_match_official_without_exact_ties() {
    let mut compared = 0;
    for (i, case) in allocation_cases().iter().enumerate() {
        let ours = allocate_dynamic(&case.distances, case.budget);
        assert_eq!(ours.iter().sum::<usize>(), case.budget, "case {i}");
        if let (Some(official), false) = (&case.official, case.ties_differ) {
            assert_eq!(
                &ours, official,
                "case {i}: official cal_dynamic_num, distances {:?}, budget {}",
                case.distances, case.budget
            );
            compared += 1;
        }
        assert_eq!(
            allocate_uniform(case.distances.len(), case.budget),
            case.uniform,
            "case {i}: uniform, budget {}",
            case.budget
        );
    }
    assert!(
        compared >= 20,
        "only {compared} cases compared with the official allocation"
    );
}

/// Named departure: where distances tie exactly, the official `add_idx = norm_pW.index(w)`
/// hands every extra instance to the first tied task; ours spreads them over distinct tasks.
/// Where all distances are 0 the official code raises and ours falls back to uniform.
#[test]
fn allocation_departs_from_official_only_on_exact_ties() {
    let (mut differ, mut raises) = (0, 0);
    for (i, case) in allocation_cases().iter().enumerate() {
        let ours = allocate_dynamic(&case.distances, case.budget);
        assert_eq!(
            ours, case.spread,
            "case {i}: spread rule, distances {:?}, budget {}",
            case.distances, case.budget
        );
        match &case.official {
            None => {
                assert!(case.distances.iter().all(|&w| w == 0.0), "case {i}");
                assert!(!case.ties_differ, "case {i}");
                assert_eq!(ours, case.uniform, "case {i}: all distances 0 → uniform");
                raises += 1;
            }
            Some(official) => {
                assert_eq!(case.ties_differ, &ours != official, "case {i}: ties_differ");
                if case.ties_differ {
                    let tied = case
                        .distances
                        .iter()
                        .enumerate()
                        .any(|(a, wa)| case.distances[a + 1..].iter().any(|wb| wb == wa));
                    assert!(tied, "case {i}: departs without tied distances");
                    differ += 1;
                }
            }
        }
    }
    // Without cases that tell the two rules apart this test could not fail.
    assert!(
        differ >= 3,
        "only {differ} cases where ties change the allocation"
    );
    assert!(raises >= 1, "no all-zero case");
}

/// The official `sample_example` shares (quota ≥ number of instructions) against ours: the
/// initial amounts are the same `max(1, int(rate × num))`, but where the official trim may
/// remove an instruction's only instance, ours keeps every instruction.
#[test]
fn insinfo_shares_match_official_and_keep_every_instruction() {
    let fixture = fixture();
    let cases = fixture["insinfo_shares"]
        .as_array()
        .expect("insinfo_shares cases");
    assert!(cases.len() >= 15);
    let mut may_drop = 0;
    for (i, case) in cases.iter().enumerate() {
        let instances: Vec<u32> = counts(&case["counts"])
            .into_iter()
            .map(|c| u32::try_from(c).unwrap())
            .collect();
        let scores = doubles(&case["score_bits"]);
        let quota = case["quota"].as_u64().unwrap() as usize;
        assert!(
            quota >= instances.len(),
            "case {i}: quota below instructions"
        );

        // Our floors, computed as sample_insinfo does, against the official int() amounts.
        let floors: Vec<usize> = scores
            .iter()
            .map(|s| (s * quota as f64).floor() as usize)
            .collect();
        let initial: Vec<usize> = floors.iter().map(|&f| f.max(1)).collect();
        assert_eq!(initial, counts(&case["official_initial"]), "case {i}");
        let protected: Vec<usize> = (0..floors.len()).filter(|&k| floors[k] < 1).collect();
        assert_eq!(
            protected,
            counts(&case["official_protected"]),
            "case {i}: single_ins_ls"
        );
        let total: usize = initial.iter().sum();
        assert_eq!(
            total,
            case["official_initial_total"].as_u64().unwrap() as usize,
            "case {i}"
        );
        let official_may_drop = case["official_may_drop"].as_bool().unwrap();
        assert_eq!(
            official_may_drop,
            total > quota && floors.contains(&1),
            "case {i}: official_may_drop"
        );

        let chosen = sample_insinfo(&instances, &scores, quota, &mut replay_rng(17, 2, i));
        let sizes: Vec<usize> = chosen.iter().map(Vec::len).collect();
        assert_eq!(sizes.iter().sum::<usize>(), quota, "case {i}: {sizes:?}");
        for (k, &size) in sizes.iter().enumerate() {
            // Named departure: the official trim may remove this instruction; ours never does.
            assert!(size >= 1, "case {i}: instruction {k} dropped ({sizes:?})");
            if total <= quota {
                assert!(
                    size >= initial[k],
                    "case {i}: instruction {k} below its share"
                );
            }
        }
        if official_may_drop {
            // Spelled out: the instructions the official trim could empty are all still here.
            for k in (0..floors.len()).filter(|&k| floors[k] == 1) {
                assert!(sizes[k] >= 1, "case {i}: instruction {k} trimmed away");
            }
            may_drop += 1;
        }
    }
    assert!(
        may_drop >= 2,
        "only {may_drop} cases where the official trim may drop"
    );
}
