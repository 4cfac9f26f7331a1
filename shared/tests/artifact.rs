//! Reading and writing run artifacts: round trips and the errors a person sees for bad files.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use inscl::artifact::{
    Artifact, ArtifactBody, ArtifactError, DataReport, EmbeddingsFile, SCHEMA_VERSION, StageRecord,
    TaskInfo,
};

const PLAN_INPUT: &str = include_str!("../fixtures/plan_input.json");

fn embeddings() -> EmbeddingsFile {
    EmbeddingsFile::from_json("plan_input.json", PLAN_INPUT).expect("plan input parses")
}

#[test]
fn plan_input_without_version_or_kind_is_an_embeddings_file() {
    let file = embeddings();
    assert_eq!(file.schema_version, SCHEMA_VERSION);
    assert_eq!(file.tasks.len(), 4);
    assert_eq!(file.tasks[0].name, "Classification");
    assert_eq!(
        file.tasks[0].instructions[0].id,
        "task190_snli_classification"
    );
    assert_eq!(file.tasks[0].instructions[0].count, 55);
    assert_eq!(file.tasks[0].instructions[0].embedding.len(), 16);
}

#[test]
fn written_artifacts_carry_kind_and_version_and_read_back_equal() {
    let file = embeddings();
    let text = file.to_json();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["kind"], "embeddings");
    assert_eq!(value["schema_version"], SCHEMA_VERSION);
    assert_eq!(EmbeddingsFile::from_json("e.json", &text).unwrap(), file);
    match Artifact::from_json("e.json", &text).unwrap() {
        Artifact::Embeddings(back) => assert_eq!(back, file),
        other => panic!("expected embeddings, got {}", other.kind()),
    }
}

#[test]
fn unknown_schema_version_is_named() {
    let text = PLAN_INPUT.replacen('{', "{\"schema_version\": 99, ", 1);
    let err = EmbeddingsFile::from_json("runs/a/embeddings.json", &text).unwrap_err();
    assert!(
        matches!(err, ArtifactError::UnsupportedVersion { found: 99, .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "runs/a/embeddings.json: schema_version 99 is not supported (this build reads version {SCHEMA_VERSION})"
        )
    );
}

#[test]
fn truncated_and_non_json_files_are_told_apart() {
    let err =
        EmbeddingsFile::from_json("half.json", &PLAN_INPUT[..PLAN_INPUT.len() / 2]).unwrap_err();
    assert!(matches!(err, ArtifactError::Truncated { .. }), "{err}");
    assert!(
        err.to_string().starts_with("half.json: truncated JSON"),
        "{err}"
    );

    let err = Artifact::from_json("notes.txt", "hello, world").unwrap_err();
    assert!(
        matches!(err, ArtifactError::Syntax { line: 1, .. }),
        "{err}"
    );
    assert!(
        err.to_string().starts_with("notes.txt: not valid JSON"),
        "{err}"
    );
}

#[test]
fn wrong_kind_missing_version_and_missing_fields_are_errors() {
    let text = embeddings().to_json();
    let err = StageRecord::from_json("stage-01.json", &text).unwrap_err();
    assert_eq!(
        err.to_string(),
        "stage-01.json: expected a \"stage\" artifact, found \"embeddings\""
    );

    let err =
        StageRecord::from_json("stage-01.json", r#"{"kind": "stage", "stage": 1}"#).unwrap_err();
    assert!(matches!(err, ArtifactError::MissingVersion { .. }), "{err}");

    let err = StageRecord::from_json(
        "stage-01.json",
        r#"{"kind": "stage", "schema_version": 1, "stage": 1}"#,
    )
    .unwrap_err();
    assert!(matches!(err, ArtifactError::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("missing field"), "{err}");

    let err =
        Artifact::from_json("x.json", r#"{"kind": "model", "schema_version": 1}"#).unwrap_err();
    assert!(err.to_string().contains("unknown variant `model`"), "{err}");
}

#[test]
fn task_data_report_is_optional_for_older_runs() {
    let old = r#"{"name": "t", "instructions": 2, "train_instances": 8, "test_instances": 2}"#;
    let task: TaskInfo = serde_json::from_str(old).unwrap();
    assert_eq!(task.data_report, None);
    assert_eq!(
        serde_json::to_string(&task).unwrap(),
        old.replace(": ", ":").replace(", ", ",")
    );
    let reported = TaskInfo {
        data_report: Some(DataReport {
            empty_outputs: 1,
            train_duplicates: 2,
            test_duplicates: 0,
            overlap: 1,
            removed: 0,
        }),
        ..task
    };
    let text = serde_json::to_string(&reported).unwrap();
    assert!(
        text.contains(r#""data_report":{"empty_outputs":1,"#),
        "{text}"
    );
    assert_eq!(serde_json::from_str::<TaskInfo>(&text).unwrap(), reported);
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn atomic_write_leaves_no_temporary_file() {
    let dir = std::env::temp_dir().join(format!("inscl-artifact-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("embeddings.json");
    let file = embeddings();
    inscl::artifact::write_atomic(&path, &file).unwrap();
    inscl::artifact::write_atomic(&path, &file).unwrap();
    assert_eq!(
        inscl::artifact::read::<EmbeddingsFile>(&path).unwrap(),
        file
    );
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("embeddings.json")]);
    std::fs::remove_dir_all(&dir).unwrap();

    let err = inscl::artifact::read::<EmbeddingsFile>(&dir.join("missing.json")).unwrap_err();
    assert!(
        matches!(err, ArtifactError::Io { .. }) && err.to_string().contains("missing.json"),
        "{err}"
    );
}
