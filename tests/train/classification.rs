//! Classification fine-tunes on a shipped GLUE task: stories260K with a fresh `score` head, and
//! a head-less encoder (a pretrained body) whose new head is saved with the adapter.

use std::path::{Path, PathBuf};

use burn_peft::io::checkpoint::{Checkpoint, OutTensor, write_safetensors};
use burn_peft::train::metrics::MetricsLog;
use burn_peft::train::recipe::Recipe;
use burn_peft::train::{TrainOptions, train};

use crate::common::*;

#[test]
fn glue_classification_run_fits_its_training_rows() {
    let root = root();
    let recipe = quick_recipe(
        "cls",
        &[
            "data.task=\"sst2\"",
            &format!(
                "data.train=\"{}\"",
                root.join("datasets/glue/SST-2/train.tsv").display()
            ),
            "data.eval_rows=16",
            "data.limit=16",
            "data.max_prompt_length=48",
            "optim.max_steps=0",
            "optim.epochs=12",
            "optim.lr=1e-2",
            "optim.warmup_ratio=0",
            "adapter.method=\"lora\"",
            "adapter.gamma=0",
            "run.checkpoint_every=0",
        ],
    );
    let summary = train::<Train>(
        &recipe,
        &device(),
        &TrainOptions {
            quiet: true,
            ..Default::default()
        },
    )
    .unwrap();
    let out = &recipe.run.output_dir;
    let metrics = MetricsLog::read(&out.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.len(), 48, "16 rows, batch 4, 12 epochs");
    let mean = |m: &[burn_peft::train::metrics::StepMetrics]| {
        m.iter().map(|x| x.loss).sum::<f64>() / m.len() as f64
    };
    let (first, last) = (mean(&metrics[..4]), mean(&metrics[44..]));
    assert!(
        last < 0.6 * first,
        "training loss {first:.3} -> {last:.3}: the head and adapters do not fit 16 rows"
    );
    let accuracy = summary
        .eval_accuracy
        .expect("classification reports accuracy");
    assert!((0.0..=1.0).contains(&accuracy));
    assert!(out.join("adapter/adapter_model.safetensors").is_file());
    assert!(
        out.join("checkpoints/step-000048/trainable.safetensors")
            .is_file(),
        "the trained head is checkpointed"
    );
    std::fs::remove_dir_all(out).unwrap();
}

/// tiny-roberta-cls without its classifier, in `dir`: what a pretrained `roberta-base` looks
/// like (the fixture's 6.5 MB are not shipped twice).
fn headless_roberta(dir: &Path) -> PathBuf {
    let src = root().join("tests/fixtures/tiny-roberta-cls");
    let out = dir.join("headless");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::copy(src.join("config.json"), out.join("config.json")).unwrap();
    let ckpt = Checkpoint::open_dir(&src).unwrap();
    let tensors = ckpt
        .names()
        .into_iter()
        .filter(|n| !n.starts_with("classifier."))
        .map(|n| {
            let (values, shape) = ckpt.read_f32(n).unwrap();
            OutTensor::F32(n.to_string(), shape, values)
        })
        .collect();
    write_safetensors(&out.join("model.safetensors"), tensors, None).unwrap();
    out
}

/// The first `n` rows of SST-2's dev set as a file.
fn sst2_dev_rows(dir: &Path, n: usize) -> PathBuf {
    let text = std::fs::read_to_string(root().join("datasets/glue/SST-2/dev.tsv")).unwrap();
    let rows: Vec<&str> = text.lines().take(n + 1).collect();
    let path = dir.join("held-out.tsv");
    std::fs::write(&path, rows.join("\n") + "\n").unwrap();
    path
}

/// The stories260K tokenizer: its 512 ids all index RoBERTa's vocabulary.
fn tokenizer() -> PathBuf {
    root().join("models/stories260K/hf/tokenizer.json")
}

/// A GLUE SST-2 recipe on the head-less encoder.
fn headless_recipe(tag: &str, model: &Path, held_out: &Path, extra: &[&str]) -> Recipe {
    let mut sets = vec![
        format!("model.path=\"{}\"", model.display()),
        format!("model.tokenizer=\"{}\"", tokenizer().display()),
        "data.task=\"sst2\"".to_string(),
        format!(
            "data.train=\"{}\"",
            root().join("datasets/glue/SST-2/train.tsv").display()
        ),
        format!("data.eval=\"{}\"", held_out.display()),
        "data.limit=32".into(),
        "data.max_prompt_length=48".into(),
        "optim.lr=1e-2".into(),
        "optim.warmup_ratio=0".into(),
        "adapter.gamma=0".into(),
        "run.checkpoint_every=0".into(),
    ];
    sets.extend(extra.iter().map(|s| s.to_string()));
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    quick_recipe(tag, &sets)
}

/// `eval --task glue-sst2` on `held_out`: (accuracy, mean cross-entropy of the recorded logits).
fn eval_sst2(model: &Path, adapter: Option<&Path>, held_out: &Path, out: &Path) -> (f64, f64) {
    let results = out.join("results.json");
    let mut args = vec![
        "eval".to_string(),
        "--model".into(),
        model.display().to_string(),
        "--tokenizer".into(),
        tokenizer().display().to_string(),
        "--task".into(),
        "glue-sst2".into(),
        "--data".into(),
        held_out.display().to_string(),
        "--batch-size".into(),
        "4".into(),
        "--max-length".into(),
        "48".into(),
        "--out".into(),
        results.display().to_string(),
    ];
    if let Some(adapter) = adapter {
        args.extend(["--adapter".into(), adapter.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    burn_peft_ok(&args);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&results).unwrap()).unwrap();
    let accuracy = json["metrics"]["accuracy"].as_f64().unwrap();
    let records = std::fs::read_to_string(out.join("results.records.jsonl")).unwrap();
    let (mut sum, mut n) = (0.0, 0);
    for line in records.lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        let logits: Vec<f64> = serde_json::from_value(r["outputs"].clone()).unwrap();
        let gold = usize::from(r["gold"] == "positive");
        let max = logits.iter().copied().fold(f64::MIN, f64::max);
        let log_z = max + logits.iter().map(|l| (l - max).exp()).sum::<f64>().ln();
        sum += log_z - logits[gold];
        n += 1;
    }
    (accuracy, sum / n as f64)
}

#[test]
fn lora_fa_from_a_headless_encoder_saves_its_head_and_eval_reproduces_it() {
    let dir = temp("headless");
    std::fs::create_dir_all(&dir).unwrap();
    let model = headless_roberta(&dir);
    let held_out = sst2_dev_rows(&dir, 24);
    let recipe = headless_recipe(
        "headless-run",
        &model,
        &held_out,
        &[
            "adapter.method=\"lora_fa\"",
            // Training-time dropout, which held-out numbers must not see.
            "adapter.dropout=0.1",
            "optim.max_steps=0",
            "optim.epochs=3",
        ],
    );
    let quiet = TrainOptions {
        quiet: true,
        ..Default::default()
    };
    let summary = train::<Train>(&recipe, &device(), &quiet).unwrap();
    let (accuracy, eval_loss) = (summary.eval_accuracy.unwrap(), summary.eval_loss.unwrap());

    // The head travels in adapter/ in PEFT's layout.
    let adapter = recipe.run.output_dir.join("adapter");
    let saved = Checkpoint::open_files(&[adapter.join("adapter_model.safetensors")]).unwrap();
    for t in [
        "dense.weight",
        "dense.bias",
        "out_proj.weight",
        "out_proj.bias",
    ] {
        let name = format!("base_model.model.classifier.{t}");
        assert!(saved.contains(&name), "{name} not in adapter/");
    }
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(adapter.join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(config["modules_to_save"], serde_json::json!(["classifier"]));
    assert_eq!(config["task_type"], "SEQ_CLS");

    // `eval --adapter` on the same head-less base reproduces the run's held-out numbers.
    let scratch = dir.join("eval");
    std::fs::create_dir_all(&scratch).unwrap();
    let (got, loss) = eval_sst2(&model, Some(&adapter), &held_out, &scratch);
    assert_eq!(got, accuracy, "eval accuracy vs the run's");
    assert!(
        (loss - eval_loss).abs() < 1e-5,
        "eval's cross-entropy {loss} vs the run's held-out loss {eval_loss}"
    );

    // `merge` and `export` keep the head.
    let merged = dir.join("merged");
    burn_peft_ok(&[
        "merge",
        "--model",
        model.to_str().unwrap(),
        "--adapter",
        adapter.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    let (got, loss) = eval_sst2(&merged, None, &held_out, &scratch);
    assert_eq!(got, accuracy, "merged model's accuracy");
    assert!(
        (loss - eval_loss).abs() < 1e-5,
        "merged: {loss} vs {eval_loss}"
    );
    let exported = dir.join("exported");
    burn_peft_ok(&[
        "export",
        "--adapter",
        adapter.to_str().unwrap(),
        "--base",
        model.to_str().unwrap(),
        "--out",
        exported.to_str().unwrap(),
    ]);
    let (got, loss) = eval_sst2(&model, Some(&exported), &held_out, &scratch);
    assert_eq!(got, accuracy, "exported adapter's accuracy");
    assert!(
        (loss - eval_loss).abs() < 1e-5,
        "exported: {loss} vs {eval_loss}"
    );
    std::fs::remove_dir_all(&recipe.run.output_dir).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn lotr_training_only_the_output_layer_counts_as_methods_md() {
    let dir = temp("lotr-budget");
    std::fs::create_dir_all(&dir).unwrap();
    let model = headless_roberta(&dir);
    let held_out = sst2_dev_rows(&dir, 8);
    let recipe = headless_recipe(
        "lotr-budget-run",
        &model,
        &held_out,
        &[
            "adapter.method=\"lotr\"",
            "adapter.rank=4",
            "adapter.targets=[\"query\", \"value\"]",
            "adapter.modules_to_save=[\"classifier.out_proj\"]",
            "optim.max_steps=2",
        ],
    );
    let quiet = TrainOptions {
        quiet: true,
        ..Default::default()
    };
    let summary = train::<Train>(&recipe, &device(), &quiet).unwrap();
    // METHODS.md: (out + in)·r + N·r² plus the trained head; here out = in = 32, r = 4,
    // N = 4 (query and value of 2 layers), and classifier.out_proj is 2 × 32 + 2.
    let (out, inp, r, n) = (32, 32, 4, 4);
    let head = 2 * 32 + 2;
    assert_eq!(summary.trainable_params, (out + inp) * r + n * r * r + head);
    // The new, untrained classifier.dense is saved too, so the adapter reloads on this base.
    let adapter = recipe.run.output_dir.join("adapter");
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(adapter.join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        config["modules_to_save"],
        serde_json::json!(["classifier.out_proj", "classifier.dense"])
    );
    assert_eq!(
        config["burn_peft"]["modules_to_save"],
        serde_json::json!(["classifier.out_proj"])
    );
    let scratch = dir.join("eval");
    std::fs::create_dir_all(&scratch).unwrap();
    let (accuracy, _) = eval_sst2(&model, Some(&adapter), &held_out, &scratch);
    assert_eq!(Some(accuracy), summary.eval_accuracy);
    std::fs::remove_dir_all(&recipe.run.output_dir).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inputs_the_encoder_cannot_take_are_errors() {
    let dir = temp("encoder-inputs");
    std::fs::create_dir_all(&dir).unwrap();
    let model = headless_roberta(&dir);
    let held_out = sst2_dev_rows(&dir, 8);
    let quiet = TrainOptions {
        quiet: true,
        ..Default::default()
    };
    // Longer than the position table (130 − RoBERTa's offset 2).
    let recipe = headless_recipe(
        "too-long",
        &model,
        &held_out,
        &["data.max_prompt_length=512"],
    );
    let err = train::<Train>(&recipe, &device(), &quiet)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("data.max_prompt_length") && err.contains("128"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&recipe.run.output_dir);
    // A tokenizer whose ids run past the model's vocabulary (every word is its [UNK] 60000).
    let tokenizer = dir.join("tokenizer.json");
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": {"[UNK]": 60000}, "unk_token": "[UNK]"}
    });
    std::fs::write(&tokenizer, json.to_string()).unwrap();
    let recipe = headless_recipe(
        "big-ids",
        &model,
        &held_out,
        &[&format!("model.tokenizer=\"{}\"", tokenizer.display())],
    );
    let err = train::<Train>(&recipe, &device(), &quiet)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(tokenizer.to_str().unwrap()) && err.contains("60000") && err.contains("50265"),
        "{err}"
    );
    for out in [dir, recipe.run.output_dir] {
        let _ = std::fs::remove_dir_all(out);
    }
}
