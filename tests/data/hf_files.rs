//! HF dataset files: parquet (single and sharded, as the hub stores them) and the `datasets`
//! library's Arrow files (cache and save_to_disk layouts), written by pyarrow / datasets
//! (tests/fixtures/make_hf_fixtures.py), read into the same rows and the same tokenized batches
//! as the JSON lines of the same data; column mapping; errors naming file, row and column.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use burn::data::dataloader::batcher::Batcher;
use burn_peft::data::*;

use super::{B, assert_error_names, ints, limits, repo, stories_tokenizer};

fn fixture(path: &str) -> PathBuf {
    repo("tests/fixtures/hf-datasets").join(path)
}

fn rows(path: &Path) -> Vec<TrainingRow> {
    load_training_rows(path, InstructionFormat::Auto, &Columns::default(), None)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The batches of 8 a training run would form from `rows`, in order, as plain integers.
fn batches(rows: &[TrainingRow]) -> Vec<(Vec<i64>, Vec<i64>, Vec<i64>)> {
    let tokenizer = stories_tokenizer();
    let encoder = InstructionTokenizer::new(&tokenizer, limits(128, 128)).unwrap();
    let examples = encoder.tokenize_rows(rows).unwrap();
    examples
        .chunks(8)
        .map(|chunk| {
            let batch: LmBatch<B> =
                LmBatcher { pad_token_id: 0 }.batch(chunk.to_vec(), &Default::default());
            (
                ints(batch.input_ids),
                ints(batch.attention_mask),
                ints(batch.labels),
            )
        })
        .collect()
}

/// A scratch folder unique to this process and `name`.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("burn-peft-hf-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn parquet_and_arrow_files_train_the_same_as_jsonl() {
    let jsonl = rows(&fixture("gsm8k-200.jsonl"));
    assert_eq!(jsonl.len(), 200);
    let TrainingRow::Instruction(first) = &jsonl[0] else {
        panic!("GSM8K rows are prompt/response pairs");
    };
    assert!(first.response.ends_with("#### 72"), "{}", first.response);
    let expected = batches(&jsonl);
    assert_eq!(expected.len(), 25);
    for path in [
        "gsm8k-200.parquet",
        "gsm8k-200-shards/train-*.parquet",
        "gsm8k-200-saved",
        "gsm8k-200-cache/json-train.arrow",
    ] {
        let path = fixture(path);
        let read = rows(&path);
        assert_eq!(read, jsonl, "{}", path.display());
        assert!(
            batches(&read) == expected,
            "{}: different batches",
            path.display()
        );
    }
    // The shipped GSM8K file is where the 200 rows came from.
    let shipped = load_training_rows(
        &repo("datasets/gsm8k/train.jsonl"),
        InstructionFormat::QuestionAnswer,
        &Columns::default(),
        Some(200),
    )
    .unwrap();
    assert_eq!(shipped, jsonl);
}

#[test]
fn columns_map_any_names_and_first_rows_reads_in_file_order() {
    let jsonl = rows(&fixture("gsm8k-200.jsonl"));
    let columns = Columns {
        prompt: Some("question".into()),
        response: Some("answer".into()),
        ..Columns::default()
    };
    let shards = fixture("gsm8k-200-shards/train-*.parquet");
    for format in [InstructionFormat::Auto, InstructionFormat::QueryResponse] {
        let mapped = load_training_rows(&shards, format, &columns, None).unwrap();
        assert_eq!(mapped, jsonl);
    }
    // The first 150 rows span both shards.
    let first = load_training_rows(&shards, InstructionFormat::Auto, &columns, Some(150)).unwrap();
    assert_eq!(first, jsonl[..150]);

    // The response as the prompt: the mapping really is used.
    let swapped = Columns {
        prompt: Some("answer".into()),
        response: Some("question".into()),
        ..Columns::default()
    };
    let rows = load_training_rows(&shards, InstructionFormat::Auto, &swapped, Some(1)).unwrap();
    let TrainingRow::Instruction(row) = &rows[0] else {
        panic!("a prompt/response row")
    };
    assert!(row.prompt.contains("#### 72") && row.response.starts_with("Natalia"));

    // A half mapping is an error naming the missing half.
    let half = Columns {
        prompt: Some("question".into()),
        ..Columns::default()
    };
    let err = load_training_rows(&shards, InstructionFormat::Auto, &half, None).unwrap_err();
    assert!(err.to_string().contains("data.columns.response"), "{err}");
}

#[test]
fn bad_files_name_the_file_row_and_column() {
    // A column that is not there, listing the ones that are.
    let parquet = fixture("gsm8k-200.parquet");
    let err = load_training_rows(
        &parquet,
        InstructionFormat::QueryResponse,
        &Columns::default(),
        None,
    )
    .unwrap_err();
    let message = assert_error_names(err, &parquet, "no column `query`");
    assert!(message.contains("question, answer"), "{message}");

    // Wrong types and nulls in a parquet file written here.
    let dir = scratch("types");
    let path = dir.join("bad.parquet");
    let question: ArrayRef = Arc::new(StringArray::from(vec![Some("q0"), Some("q1"), Some("q2")]));
    let answer: ArrayRef = Arc::new(StringArray::from(vec![Some("a0"), Some("a1"), None]));
    let number: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3]));
    let write = |columns: Vec<(&str, ArrayRef)>| {
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let file = std::fs::File::create(&path).unwrap();
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    };
    write(vec![("question", question.clone()), ("answer", answer)]);
    let err =
        load_training_rows(&path, InstructionFormat::Auto, &Columns::default(), None).unwrap_err();
    let message = assert_error_names(err, &path, "row 2 (counting from 0)");
    assert!(message.contains("missing column `answer`"), "{message}");
    write(vec![("question", number), ("answer", question)]);
    let err =
        load_training_rows(&path, InstructionFormat::Auto, &Columns::default(), None).unwrap_err();
    let message = assert_error_names(err, &path, "row 0 (counting from 0)");
    assert!(
        message.contains("column `question` must be a string, found a number"),
        "{message}"
    );

    // A shard set with a shard missing.
    let dir = scratch("shards");
    std::fs::copy(
        fixture("gsm8k-200-shards/train-00001-of-00002.parquet"),
        dir.join("train-00001-of-00002.parquet"),
    )
    .unwrap();
    let pattern = dir.join("train-*.parquet");
    let err = rows_err(&pattern);
    assert!(
        err.contains("train-00000-of-00002.parquet is missing"),
        "{err}"
    );
    let err = rows_err(&dir.join("test-*.parquet"));
    assert!(err.contains("no file matches"), "{err}");

    // A folder that save_to_disk did not write: the files there are listed.
    let err = rows_err(&dir);
    assert!(
        err.contains("train-00001-of-00002.parquet") && err.contains("state.json"),
        "{err}"
    );
    // A DatasetDict folder points at its splits.
    std::fs::write(dir.join("dataset_dict.json"), "{\"splits\": [\"train\"]}").unwrap();
    let err = rows_err(&dir);
    assert!(err.contains("DatasetDict"), "{err}");

    // Not parquet / not Arrow.
    let fake = dir.join("fake.parquet");
    std::fs::write(&fake, "{\"question\": \"q\"}").unwrap();
    assert_error_names(
        load_training_rows(&fake, InstructionFormat::Auto, &Columns::default(), None).unwrap_err(),
        &fake,
        "not a readable parquet file",
    );
    let fake = dir.join("fake.arrow");
    std::fs::write(&fake, "not arrow").unwrap();
    assert_error_names(
        load_training_rows(&fake, InstructionFormat::Auto, &Columns::default(), None).unwrap_err(),
        &fake,
        "not a readable Arrow IPC file",
    );
}

fn rows_err(path: &Path) -> String {
    load_training_rows(path, InstructionFormat::Auto, &Columns::default(), None)
        .unwrap_err()
        .to_string()
}

#[cfg(not(feature = "zstd"))]
#[test]
fn zstd_parquet_says_how_to_read_it() {
    let path = fixture("gsm8k-5-zstd.parquet");
    let err = rows_err(&path);
    assert!(
        err.contains(&path.display().to_string()) && err.contains("--features zstd"),
        "{err}"
    );
}

#[cfg(feature = "zstd")]
#[test]
fn zstd_parquet_reads_with_the_feature() {
    let zstd = rows(&fixture("gsm8k-5-zstd.parquet"));
    assert_eq!(zstd, rows(&fixture("gsm8k-200.jsonl"))[..5]);
}

#[test]
fn glue_parquet_matches_the_tsv() {
    let tsv = load_glue(GlueTask::Mrpc, &repo("datasets/glue/MRPC/dev.tsv")).unwrap();
    let parquet = load_glue(GlueTask::Mrpc, &fixture("mrpc-dev-64.parquet")).unwrap();
    assert_eq!(parquet.len(), 64);
    assert_eq!(parquet, tsv[..64]);
    assert!(parquet.iter().any(|e| e.label == GlueLabel::Class(0)));
    assert!(parquet.iter().any(|e| e.label == GlueLabel::Class(1)));

    let tsv = load_glue(GlueTask::Stsb, &repo("datasets/glue/STS-B/dev.tsv")).unwrap();
    let parquet = load_glue(GlueTask::Stsb, &fixture("stsb-dev-32.parquet")).unwrap();
    assert_eq!(parquet, tsv[..32]);

    // Columns override the hub's names; a single-sentence task takes no second sentence.
    let columns = Columns {
        text_a: Some("sentence2".into()),
        text_b: Some("sentence1".into()),
        ..Columns::default()
    };
    let swapped =
        load_glue_with(GlueTask::Mrpc, &fixture("mrpc-dev-64.parquet"), &columns).unwrap();
    assert_eq!(
        swapped[0].text_a,
        tsv_text_b(&repo("datasets/glue/MRPC/dev.tsv"))
    );
    let err =
        load_glue_with(GlueTask::Cola, &fixture("mrpc-dev-64.parquet"), &columns).unwrap_err();
    assert!(err.to_string().contains("data.columns.text_b"), "{err}");
    let err = load_glue_with(
        GlueTask::Mrpc,
        &repo("datasets/glue/MRPC/dev.tsv"),
        &columns,
    )
    .unwrap_err();
    assert!(err.to_string().contains("fixed layouts"), "{err}");
    // The QNLI preset looks for `question`, which MRPC lacks.
    let path = fixture("mrpc-dev-64.parquet");
    let err = load_glue(GlueTask::Qnli, &path).unwrap_err();
    assert_error_names(err, &path, "no column `question`");
}

fn tsv_text_b(path: &Path) -> String {
    load_glue(GlueTask::Mrpc, path).unwrap()[0]
        .text_b
        .clone()
        .unwrap()
}

#[test]
fn glue_test_split_labels_are_refused() {
    let dir = scratch("glue");
    let path = dir.join("rte-test.jsonl");
    std::fs::write(
        &path,
        "{\"sentence1\": \"a\", \"sentence2\": \"b\", \"label\": 0}\n\
         {\"sentence1\": \"c\", \"sentence2\": \"d\", \"label\": -1}\n",
    )
    .unwrap();
    let err = load_glue(GlueTask::Rte, &path).unwrap_err();
    let message = assert_error_names(err, &path, "line 2");
    assert!(message.contains("-1 marks an unlabelled row"), "{message}");
}

#[test]
fn chat_messages_load_from_jsonl_and_parquet() {
    let jsonl = rows(&fixture("chat.jsonl"));
    assert_eq!(jsonl.len(), 8);
    let TrainingRow::Chat(messages) = &jsonl[1] else {
        panic!("conversations are detected from the `messages` column")
    };
    assert_eq!(messages.len(), 5);
    assert_eq!(messages[0].role, "system");
    assert_eq!(rows(&fixture("chat.parquet")), jsonl);

    let dir = scratch("chat");
    let path = dir.join("bad.jsonl");
    std::fs::write(
        &path,
        "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n\
         {\"messages\": [{\"role\": \"user\"}]}\n",
    )
    .unwrap();
    let err = load_training_rows(
        &path,
        InstructionFormat::Messages,
        &Columns::default(),
        None,
    )
    .unwrap_err();
    let message = assert_error_names(err, &path, "line 2");
    assert!(
        message.contains("message 0: missing `content`"),
        "{message}"
    );
    // Prompt/response columns cannot be mixed with messages.
    let mixed = Columns {
        messages: Some("messages".into()),
        prompt: Some("q".into()),
        ..Columns::default()
    };
    let err = load_training_rows(&path, InstructionFormat::Auto, &mixed, None).unwrap_err();
    assert!(err.to_string().contains("data.columns.prompt"), "{err}");
}
