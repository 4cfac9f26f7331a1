//! llama::io::gguf on hand-built files: a round trip through every metadata value type and a
//! quantised tensor, and the errors for garbage, old versions, truncation at every byte,
//! unknown types and missing keys/tensors.

use std::path::PathBuf;

use llama::io::gguf::{GgmlType, GgufError, GgufFile, GgufValue};

mod support;
use support::gguf::Builder;

/// Writes `bytes` to a fresh file in the temp dir, named after the test.
fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "llama-gguf-test-{}-{name}.gguf",
        std::process::id()
    ));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The error message of opening `bytes` as a file.
fn open_err(name: &str, bytes: &[u8]) -> String {
    let path = write(name, bytes);
    let msg = GgufFile::open(&path).unwrap_err().to_string();
    std::fs::remove_file(path).unwrap();
    msg
}

/// One Q8_0 block: d = 0.5, q = 0..32 → values 0, 0.5, ..., 15.5.
fn q8_block() -> Vec<u8> {
    let mut b = half::f16::from_f32(0.5).to_le_bytes().to_vec();
    b.extend(0..32u8);
    b
}

fn sample() -> Builder {
    let mut arr = 5u32.to_le_bytes().to_vec(); // array of i32
    arr.extend(3u64.to_le_bytes());
    for v in [-1i32, 0, 7] {
        arr.extend(v.to_le_bytes());
    }
    Builder::new()
        .kv("u8", 0, &[200])
        .kv("i8", 1, &[0xFF])
        .kv("u16", 2, &60000u16.to_le_bytes())
        .kv("i16", 3, &(-3i16).to_le_bytes())
        .kv("u32", 4, &7u32.to_le_bytes())
        .kv("i32", 5, &(-7i32).to_le_bytes())
        .kv("f32", 6, &1.5f32.to_le_bytes())
        .kv("bool", 7, &[1])
        .kv_str("general.architecture", "llama")
        .kv("arr", 9, &arr)
        .kv("u64", 10, &u64::MAX.to_le_bytes())
        .kv("i64", 11, &i64::MIN.to_le_bytes())
        .kv("f64", 12, &0.1f64.to_le_bytes())
        .tensor("w", &[32, 2], 8, &[q8_block(), q8_block()].concat())
        .tensor(
            "n",
            &[3],
            0,
            &[1f32, 2., 3.]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect::<Vec<_>>(),
        )
        .tensor("k2", &[256], 10, &[0; 84])
}

#[test]
fn round_trip_of_hand_built_file() {
    let path = write("round-trip", &sample().bytes(3));
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.metadata("u8"), Some(&GgufValue::U8(200)));
    assert_eq!(f.metadata("i8"), Some(&GgufValue::I8(-1)));
    assert_eq!(f.metadata("u16"), Some(&GgufValue::U16(60000)));
    assert_eq!(f.metadata("i16"), Some(&GgufValue::I16(-3)));
    assert_eq!(f.get_u64("u32").unwrap(), 7);
    assert_eq!(f.metadata("i32").unwrap().as_i64(), Some(-7));
    assert_eq!(f.get_f64("f32").unwrap(), 1.5);
    assert!(f.get_bool("bool").unwrap());
    assert!(
        f.get_bool("u8")
            .unwrap_err()
            .to_string()
            .contains("expected a bool")
    );
    assert_eq!(f.get_str("general.architecture").unwrap(), "llama");
    assert_eq!(
        f.get_array("arr").unwrap(),
        &[GgufValue::I32(-1), GgufValue::I32(0), GgufValue::I32(7)]
    );
    assert_eq!(f.get_u64("u64").unwrap(), u64::MAX);
    assert_eq!(f.metadata("i64"), Some(&GgufValue::I64(i64::MIN)));
    assert_eq!(f.get_f64("f64").unwrap(), 0.1);

    let w = f.dequantize("w").unwrap();
    assert_eq!(w.shape, vec![2, 32]);
    let row: Vec<f32> = (0..32).map(|q| q as f32 * 0.5).collect();
    assert_eq!(w.data, [row.clone(), row].concat());
    assert_eq!(f.dequantize("n").unwrap().data, vec![1.0, 2.0, 3.0]);
    assert_eq!(f.tensor("k2").unwrap().dtype, GgmlType::Q2_K);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn value_type_errors_name_key_and_file() {
    let path = write("types", &sample().bytes(3));
    let f = GgufFile::open(&path).unwrap();
    let msg = f.get_u64("no.such.key").unwrap_err().to_string();
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("\"no.such.key\""),
        "{msg}"
    );
    let msg = f.get_u64("i32").unwrap_err().to_string();
    assert!(
        msg.contains("\"i32\" = -7") && msg.contains("non-negative integer"),
        "{msg}"
    );
    let msg = f.get_str("arr").unwrap_err().to_string();
    assert!(
        msg.contains("[3 items: -1 0 7]") && msg.contains("expected a string"),
        "{msg}"
    );
    let msg = f.dequantize("k2").unwrap_err().to_string();
    assert!(
        msg.contains("\"k2\" has type Q2_K, which cannot be dequantised"),
        "{msg}"
    );
    let msg = f.dequantize("nope").unwrap_err().to_string();
    assert!(msg.contains("no tensor named \"nope\""), "{msg}");
    // Not a LLaMA file: the required hyper-parameters are missing.
    let msg = llama::io::gguf::llama_config(&f).unwrap_err().to_string();
    assert!(
        msg.contains("missing metadata key \"llama.embedding_length\""),
        "{msg}"
    );
    std::fs::remove_file(path).unwrap();
}

#[test]
fn garbage_and_versions() {
    let path = write("garbage", b"PK\x03\x04 this is a zip, not a model");
    let err = GgufFile::open(&path).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert!(
        matches!(err, GgufError::BadMagic { magic, .. } if &magic == b"PK\x03\x04"),
        "{err}"
    );
    assert!(err.to_string().contains("not a GGUF file"), "{err}");

    for version in [1, 4, 0x0300_0000] {
        let path = write("version", &sample().bytes(version));
        let err = GgufFile::open(&path).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(
            matches!(err, GgufError::UnsupportedVersion { version: v, .. } if v == version),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains(&format!("unsupported GGUF version {version}")),
            "{err}"
        );
    }

    let path = write("missing", b"");
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(GgufFile::open(&path), Err(GgufError::Io { .. })));
}

#[test]
fn every_truncation_is_reported() {
    let bytes = sample().bytes(3);
    let path = write("truncated", &bytes);
    for len in 0..bytes.len() {
        std::fs::write(&path, &bytes[..len]).unwrap();
        match GgufFile::open(&path) {
            Err(GgufError::Truncated {
                needed,
                len: file_len,
                ..
            }) => {
                assert_eq!(file_len, len as u64);
                assert!(needed > file_len, "cut at {len}: needed {needed}");
            }
            // The padding after the last tensor's data is not needed.
            Ok(_) if len >= bytes.len() - 32 => {}
            other => panic!("cut at {len}: {other:?}"),
        }
    }
    std::fs::write(&path, &bytes[..bytes.len() - 40]).unwrap();
    let msg = GgufFile::open(&path).unwrap_err().to_string();
    assert!(msg.contains("truncated: data of tensor \"k2\""), "{msg}");
    std::fs::remove_file(path).unwrap();
}

#[test]
fn corrupt_headers() {
    let mut huge = b"GGUF".to_vec();
    huge.extend(3u32.to_le_bytes());
    huge.extend(0u64.to_le_bytes());
    huge.extend(u64::MAX.to_le_bytes()); // metadata count
    let msg = open_err("huge", &huge);
    assert!(
        msg.contains("truncated") && msg.contains("metadata"),
        "{msg}"
    );

    let bad_type = Builder::new().kv("k", 13, &[0; 8]).bytes(3);
    let msg = open_err("bad-type", &bad_type);
    assert!(
        msg.contains("metadata key \"k\" has unknown value type 13"),
        "{msg}"
    );

    let bad_utf8 = Builder::new()
        .kv("k", 8, &[2, 0, 0, 0, 0, 0, 0, 0, 0xC3, 0x28])
        .bytes(3);
    let msg = open_err("utf8", &bad_utf8);
    assert!(
        msg.contains("value of metadata key \"k\" is not valid UTF-8"),
        "{msg}"
    );

    let unknown = Builder::new().tensor("t", &[32], 4, &[0; 18]).bytes(3);
    let msg = open_err("unknown", &unknown);
    assert!(
        msg.contains("tensor \"t\" has unknown ggml type id 4"),
        "{msg}"
    );

    let ragged = Builder::new().tensor("t", &[33], 8, &[0; 68]).bytes(3);
    let msg = open_err("ragged", &ragged);
    assert!(
        msg.contains("ne[0] = 33 is not a multiple of the Q8_0 block size 32"),
        "{msg}"
    );

    let bad_align = Builder::new()
        .kv("general.alignment", 4, &3u32.to_le_bytes())
        .bytes(3);
    let msg = open_err("align", &bad_align);
    assert!(
        msg.contains("\"general.alignment\" = 3: expected a power of two"),
        "{msg}"
    );
}
