//! Training from HF dataset files: a parquet shard set trains exactly as the JSON lines of the
//! same rows, and a chat dataset trains through the tokenizer's chat template.

use burn_peft::train::metrics::MetricsLog;
use burn_peft::train::{TrainOptions, train};

use crate::common::*;

fn run(tag: &str, extra: &[&str]) -> Vec<f64> {
    let recipe = quick_recipe(tag, extra);
    let options = TrainOptions {
        quiet: true,
        ..TrainOptions::default()
    };
    let summary = train::<Train>(&recipe, &device(), &options).unwrap();
    assert_eq!(summary.steps, 4);
    let log = MetricsLog::read(&recipe.run.output_dir.join("metrics.jsonl")).unwrap();
    std::fs::remove_dir_all(&recipe.run.output_dir).unwrap();
    log.iter().map(|m| m.loss).collect()
}

#[test]
fn parquet_shards_train_as_the_jsonl_of_the_same_rows() {
    let fixtures = root().join("tests/fixtures/hf-datasets");
    let common = [
        "optim.max_steps=4",
        "data.format=\"auto\"",
        "data.first_rows=120",
    ];
    let mut jsonl: Vec<String> = common.iter().map(|s| s.to_string()).collect();
    jsonl.push(format!(
        "data.train=\"{}\"",
        fixtures.join("gsm8k-200.jsonl").display()
    ));
    let mut shards: Vec<String> = common.iter().map(|s| s.to_string()).collect();
    shards.push(format!(
        "data.train=\"{}\"",
        fixtures.join("gsm8k-200-shards/train-*.parquet").display()
    ));
    let a = run(
        "jsonl",
        &jsonl.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let b = run(
        "parquet",
        &shards.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(a.len(), 4);
    for (x, y) in a.iter().zip(&b) {
        // Same batches; the ndarray backend's sums may differ in the last bits.
        assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
    }
}

#[test]
fn chat_data_trains_through_the_chat_template() {
    let fixtures = root().join("tests/fixtures");
    let sets = [
        format!(
            "data.train=\"{}\"",
            fixtures.join("hf-datasets/chat.parquet").display()
        ),
        "data.format=\"messages\"".to_string(),
        "data.eval_rows=2".to_string(),
        "data.limit=0".to_string(),
        "optim.max_steps=4".to_string(),
        "optim.batch_size=2".to_string(),
        format!(
            "model.tokenizer=\"{}\"",
            fixtures.join("chat-stories260K/tokenizer.json").display()
        ),
    ];
    let losses = run("chat", &sets.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        losses.iter().all(|l| l.is_finite() && *l > 0.0),
        "{losses:?}"
    );
}
