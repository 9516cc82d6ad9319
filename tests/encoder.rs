//! BERT and RoBERTa sequence classifiers: parity with transformers on the tiny fixtures (both
//! CPU backends; `encoder/parity.rs`, shared with `tests/gpu.rs`), checkpoint variants and fresh
//! heads, adapter injection, a training step, the commands, and errors for bad config files and
//! checkpoints.

#[macro_use]
#[path = "support/cpu_backends.rs"]
mod cpu_backends;
#[path = "encoder/common.rs"]
mod common;
#[path = "encoder/parity.rs"]
mod parity;

use std::path::{Path, PathBuf};

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use burn_peft::Error;
use burn_peft::adapter::{AdapterConfig, Method, ParamReport};
use burn_peft::io::checkpoint::{Checkpoint, OutTensor, write_safetensors};
use burn_peft::model::encoder::{EncoderClassifier, FeedForwardActivation, HeadInit, ProblemType};
use burn_peft::model::{PeftModel, inject_adapters};
use burn_peft::train::PeftStep;

use common::*;

/// Training backend on the shipped CPU device (burn-flex).
type B = burn_peft::backend::Train<burn_peft::backend::Cpu>;

fn device() -> burn::tensor::Device<B> {
    Default::default()
}

fn reference(name: &str) -> Reference<B> {
    Reference::open(name, &device())
}

fn load(name: &str) -> EncoderClassifier<B> {
    load_on(name, &device())
}

/// A scratch folder removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("burn-peft-encoder-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A copy of fixture `name` whose config.json is edited by `edit_config` and whose tensors are
/// renamed (or dropped, on `None`) by `rename`.
fn modified_fixture(
    name: &str,
    tag: &str,
    edit_config: impl FnOnce(&mut serde_json::Value),
    rename: impl Fn(&str) -> Option<String>,
) -> TempDir {
    let dir = TempDir::new(tag);
    let src = fixture(name);
    let text = std::fs::read_to_string(src.join("config.json")).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&text).unwrap();
    edit_config(&mut config);
    std::fs::write(dir.0.join("config.json"), config.to_string()).unwrap();
    let ckpt = Checkpoint::open_dir(&src).unwrap();
    let tensors = ckpt
        .names()
        .into_iter()
        .filter_map(|n| {
            let new = rename(n)?;
            let (values, shape) = ckpt.read_f32(n).unwrap();
            Some(OutTensor::F32(new, shape, values))
        })
        .collect();
    write_safetensors(&dir.0.join("model.safetensors"), tensors, None).unwrap();
    dir
}

fn keep(name: &str) -> Option<String> {
    Some(name.to_string())
}

#[test]
fn gelu_is_the_exact_erf_form() {
    // transformers' `gelu` is erf-based; the tanh form differs by 1.5e-4 at x = 1.
    let x = Tensor::<B, 1>::from_floats([1.0, -0.5], &device());
    let y: Vec<f32> = FeedForwardActivation::Gelu
        .apply(x)
        .into_data()
        .to_vec()
        .unwrap();
    let expected = [0.841_344_7, -0.154_268_5];
    for (y, e) in y.iter().zip(expected) {
        assert!((y - e).abs() < 1e-6, "{y} vs {e}");
    }
}

#[test]
fn unprefixed_body_loads_like_prefixed() {
    // A bare `BertModel` checkpoint names the body without `bert.`.
    let dir = modified_fixture(
        BERT,
        "unprefixed",
        |_| {},
        |n| Some(n.strip_prefix("bert.").unwrap_or(n).to_string()),
    );
    let (model, report) = EncoderClassifier::<B>::load(&dir.0, &device()).unwrap();
    assert!(report.unused.is_empty(), "{:?}", report.unused);
    let r = reference(BERT);
    assert_parity("unprefixed", r.logits_of(&model), r.logits);
    // Module names stay those of BertForSequenceClassification, as PEFT names them.
    let names: Vec<String> = model.linears().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names[0], "bert.encoder.layer.0.attention.self.query");
    assert_eq!(
        names[names.len() - 2..],
        ["bert.pooler.dense", "classifier"]
    );
}

#[test]
fn lotr_groups_query_and_value() {
    let r = reference(ROBERTA);
    let (model, injection) =
        inject_adapters(load(ROBERTA), &AdapterConfig::new(Method::Lotr, 4)).unwrap();
    assert_eq!(
        injection.adapted,
        [
            "roberta.encoder.layer.0.attention.self.query",
            "roberta.encoder.layer.0.attention.self.value",
            "roberta.encoder.layer.1.attention.self.query",
            "roberta.encoder.layer.1.attention.self.value",
        ]
    );
    // Four [32, 32] targets: one group sharing L and R.
    assert_eq!(model.shared().lotr.len(), 1);
    // Normal init starts with zero cores: the model is unchanged.
    assert_close("lotr", r.logits_of(&model), r.logits);
}

#[test]
fn modules_to_save_trains_the_classifier() {
    for name in [BERT, ROBERTA] {
        let mut cfg = AdapterConfig::new(Method::Sorsa, 4);
        cfg.modules_to_save = vec!["classifier".into()];
        let (model, _) = inject_adapters(load(name), &cfg).unwrap();
        let report = ParamReport::of(&model);
        let head: Vec<_> = report
            .entries
            .iter()
            .filter(|e| e.path.starts_with("classifier."))
            .collect();
        assert!(!head.is_empty());
        for e in &report.entries {
            let expected = e.path.starts_with("classifier.") || e.path.contains(".adapter.");
            assert_eq!(e.trainable, expected, "{name}: {}", e.path);
        }
        let adapters = report
            .entries
            .iter()
            .filter(|e| e.path.contains(".adapter."))
            .count();
        // a, s, b for query and value in two layers.
        assert_eq!(adapters, 12, "{name}\n{}", report.trainable_table());
    }
}

/// Cross-entropy on the fixture batch before and after one AdamW step on the adapters.
fn loss_before_after(name: &str, cfg: &AdapterConfig) -> (f32, f32) {
    let r = reference(name);
    let (model, _) = inject_adapters(load(name), cfg).unwrap();
    let labels = Tensor::<B, 1, Int>::from_data(TensorData::from([0i64, 1]), &device());
    let loss_fn = CrossEntropyLossConfig::new().init(&device());
    let loss_of = |m: &EncoderClassifier<B>| loss_fn.forward(r.logits_of(m), labels.clone());
    let loss = loss_of(&model);
    let before: f32 = loss.clone().into_scalar().elem();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let lr = 5e-3;
    let mut optimizer = AdamWConfig::new().with_weight_decay(0.0).init();
    let (model, _) = PeftStep::new(cfg, lr, None, 1)
        .apply(model, &mut optimizer, grads, lr)
        .unwrap();
    let after: f32 = loss_of(&model).into_scalar().elem();
    (before, after)
}

#[test]
fn training_step_reduces_loss() {
    for name in [BERT, ROBERTA] {
        for method in [Method::LoraFa, Method::Sorsa] {
            let (before, after) = loss_before_after(name, &AdapterConfig::new(method, 4));
            assert!(
                after < before,
                "{name} {method}: loss {before} -> {after} did not decrease"
            );
        }
    }
}

fn load_error(dir: &Path) -> Error {
    EncoderClassifier::<B>::load(dir, &device()).expect_err("loading should fail")
}

#[test]
fn bad_configs_name_the_file_and_field() {
    use serde_json::json;
    // (field, new value or removed, expected in the message)
    let cases = [
        ("model_type", Some(json!("gpt2")), "gpt2"),
        ("model_type", Some(json!("llama")), "not an encoder"),
        ("hidden_size", None, "hidden_size"),
        (
            "hidden_size",
            Some(json!(30)),
            "not a multiple of num_attention_heads",
        ),
        ("hidden_act", Some(json!("swish")), "swish"),
        (
            "position_embedding_type",
            Some(json!("relative_key")),
            "relative_key",
        ),
        ("problem_type", Some(json!("ranking")), "ranking"),
    ];
    for (i, (field, value, expected)) in cases.into_iter().enumerate() {
        let edit = |c: &mut serde_json::Value| match value {
            Some(v) => c[field] = v,
            None => {
                c.as_object_mut().unwrap().remove(field);
            }
        };
        let dir = modified_fixture(BERT, &format!("config-{i}"), edit, keep);
        let message = load_error(&dir.0).to_string();
        assert!(message.contains("config.json"), "{field}: {message}");
        assert!(message.contains(expected), "{field}: {message}");
    }
}

#[test]
fn missing_tensor_names_file_and_tensor() {
    let missing = "roberta.encoder.layer.1.attention.self.key.weight";
    let dir = modified_fixture(
        ROBERTA,
        "missing",
        |_| {},
        |n| (n != missing).then(|| n.to_string()),
    );
    let err = load_error(&dir.0);
    assert!(matches!(err, Error::MissingTensor { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("model.safetensors"), "{message}");
    assert!(message.contains(missing), "{message}");
}

#[test]
fn fresh_head_for_a_new_task() {
    // A pretrained body without a classifier, fine-tuned for regression (STS-B-like).
    let dir = modified_fixture(
        ROBERTA,
        "fresh",
        |_| {},
        |n| (!n.starts_with("classifier.")).then(|| n.to_string()),
    );
    let err = load_error(&dir.0);
    assert!(err.to_string().contains("classifier.dense.weight"), "{err}");

    let head = HeadInit::Fresh {
        num_labels: 1,
        seed: 7,
    };
    let (model, report) = EncoderClassifier::<B>::load_with(&dir.0, head, &device()).unwrap();
    assert!(report.unused.is_empty(), "{:?}", report.unused);
    assert_eq!(model.config.problem_type, ProblemType::Regression);
    let r = reference(ROBERTA);
    let out = r.logits_of(&model);
    assert_eq!(out.dims(), [2, 1]);
    // Deterministic in the seed.
    let (again, _) = EncoderClassifier::<B>::load_with(&dir.0, head, &device()).unwrap();
    assert_eq!(max_abs_diff(out, r.logits_of(&again)), 0.0);

    // On a checkpoint that has a head, a fresh one leaves it unused.
    let (bert, report) =
        EncoderClassifier::<B>::load_with(&fixture(BERT), head, &device()).unwrap();
    assert_eq!(report.unused, ["classifier.bias", "classifier.weight"]);
    assert_eq!(reference(BERT).logits_of(&bert).dims(), [2, 1]);
}

#[test]
fn missing_head_is_created_as_transformers_does() {
    // A pretrained body without a classifier, as `roberta-base` is on the Hub.
    let dir = modified_fixture(
        ROBERTA,
        "headless",
        |_| {},
        |n| (!n.starts_with("classifier.")).then(|| n.to_string()),
    );
    let head = HeadInit::IfMissing {
        num_labels: 3,
        seed: 5,
    };
    let (model, report) = EncoderClassifier::<B>::load_with(&dir.0, head, &device()).unwrap();
    assert_eq!(
        report.initialized,
        [
            "classifier.dense.weight",
            "classifier.dense.bias",
            "classifier.out_proj.weight",
            "classifier.out_proj.bias",
        ]
    );
    assert!(report.unused.is_empty(), "{:?}", report.unused);
    assert_eq!(model.config.num_labels, 3);
    assert_eq!(reference(ROBERTA).logits_of(&model).dims(), [2, 3]);
    // transformers' init: weights N(0, initializer_range = 0.02), biases zero.
    let dense = model.classifier.dense.as_ref().unwrap().base();
    let w: Vec<f32> = dense.weight.val().into_data().to_vec().unwrap();
    let mean = w.iter().sum::<f32>() / w.len() as f32;
    let std = (w.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / w.len() as f32).sqrt();
    assert!(
        (std - 0.02).abs() < 0.002 && mean.abs() < 0.002,
        "{mean} ± {std}"
    );
    let bias: f32 = dense
        .bias
        .as_ref()
        .unwrap()
        .val()
        .abs()
        .max()
        .into_scalar()
        .elem();
    assert_eq!(bias, 0.0);

    // A checkpoint with its head loads it: nothing is new, the logits are transformers'.
    let (full, report) =
        EncoderClassifier::<B>::load_with(&fixture(ROBERTA), head, &device()).unwrap();
    assert!(report.initialized.is_empty(), "{:?}", report.initialized);
    assert_eq!(full.config.num_labels, 2);
    let r = reference(ROBERTA);
    assert_parity("roberta, head loaded", r.logits_of(&full), r.logits);

    // BERT without pooler and classifier: both are new.
    let dir = modified_fixture(
        BERT,
        "headless-bert",
        |_| {},
        |n| (!n.starts_with("classifier") && !n.contains("pooler")).then(|| n.to_string()),
    );
    let (_, report) = EncoderClassifier::<B>::load_with(&dir.0, head, &device()).unwrap();
    assert_eq!(
        report.initialized,
        [
            "bert.pooler.dense.weight",
            "bert.pooler.dense.bias",
            "classifier.weight",
            "classifier.bias",
        ]
    );
}

fn burn_peft(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_burn-peft"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .unwrap()
}

fn burn_peft_ok(args: &[&str]) {
    let out = burn_peft(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 paths")
}

/// `logits` of a `forward --out` file.
fn forward_logits(file: &Path) -> Tensor<B, 2> {
    let ckpt = Checkpoint::open_files(&[file.to_path_buf()]).unwrap();
    ckpt.tensor::<B, 2>("logits", [2, 2], &device()).unwrap()
}

/// A tokenizer.json that splits on whitespace and maps the word `tN` to id N (adding nothing),
/// and an SST-2 file whose rows encode to the real tokens of each row of `r`'s batch: `eval`
/// then sees exactly the fixture's inputs.
fn inputs_as_text(r: &Reference<B>, dir: &Path) -> (PathBuf, PathBuf) {
    let ids: Vec<i64> = r
        .input_ids
        .clone()
        .into_data()
        .convert::<i64>()
        .to_vec()
        .unwrap();
    let mask: Vec<i64> = r
        .attention_mask
        .clone()
        .into_data()
        .convert::<i64>()
        .to_vec()
        .unwrap();
    let [_, seq] = r.input_ids.dims();
    let mut vocab = serde_json::Map::new();
    vocab.insert("[UNK]".into(), 0.into());
    let mut tsv = String::from("sentence\tlabel\n");
    for (row, mask) in ids.chunks(seq).zip(mask.chunks(seq)) {
        let words: Vec<String> = row
            .iter()
            .zip(mask)
            .filter(|(_, m)| **m == 1)
            .map(|(id, _)| {
                vocab.insert(format!("t{id}"), (*id).into());
                format!("t{id}")
            })
            .collect();
        tsv.push_str(&format!("{}\t0\n", words.join(" ")));
    }
    let tokenizer = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    });
    let (tok, data) = (dir.join("tokenizer.json"), dir.join("rows.tsv"));
    std::fs::write(&tok, tokenizer.to_string()).unwrap();
    std::fs::write(&data, tsv).unwrap();
    (tok, data)
}

/// The head outputs `eval` recorded per example.
fn eval_outputs(records: &Path) -> Tensor<B, 2> {
    let text = std::fs::read_to_string(records).unwrap();
    let rows: Vec<Vec<f32>> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            serde_json::from_value(v["outputs"].clone()).expect("records carry the outputs")
        })
        .collect();
    let (n, k) = (rows.len(), rows[0].len());
    Tensor::from_data(TensorData::new(rows.concat(), [n, k]), &device())
}

/// PEFT's LoRA with a trained head through `forward`, `merge` and `eval` (the library half is
/// `encoder/parity.rs`).
#[test]
fn peft_adapter_with_head_through_the_commands() {
    let r = reference(ROBERTA_LORA);
    let dir = TempDir::new("peft-head-cli");
    let (base_dir, adapter_dir) = (fixture(ROBERTA), fixture(ROBERTA_LORA));
    let inputs = adapter_dir.join("reference.safetensors");
    let out = dir.0.join("forward.safetensors");
    burn_peft_ok(&[
        "forward",
        "--model",
        path(&base_dir),
        "--adapter",
        path(&adapter_dir),
        "--inputs",
        path(&inputs),
        "--out",
        path(&out),
    ]);
    assert_close("forward", forward_logits(&out), r.logits.clone());
    let merged_dir = dir.0.join("merged");
    burn_peft_ok(&[
        "merge",
        "--model",
        path(&base_dir),
        "--adapter",
        path(&adapter_dir),
        "--out",
        path(&merged_dir),
    ]);
    let out = dir.0.join("merged.safetensors");
    burn_peft_ok(&[
        "forward",
        "--model",
        path(&merged_dir),
        "--inputs",
        path(&inputs),
        "--out",
        path(&out),
    ]);
    assert_close(
        "merge, then forward",
        forward_logits(&out),
        r.logits.clone(),
    );
    let (tokenizer, data) = inputs_as_text(&r, &dir.0);
    for (i, (tag, model, adapter)) in [
        ("eval", &base_dir, Some(&adapter_dir)),
        ("merge, then eval", &merged_dir, None),
    ]
    .into_iter()
    .enumerate()
    {
        let results = dir.0.join(format!("eval-{i}.json"));
        let mut args = vec![
            "eval",
            "--model",
            path(model),
            "--tokenizer",
            path(&tokenizer),
            "--task",
            "glue-sst2",
            "--data",
            path(&data),
            "--batch-size",
            "2",
            "--out",
            path(&results),
        ];
        if let Some(adapter) = adapter {
            args.extend(["--adapter", path(adapter)]);
        }
        burn_peft_ok(&args);
        let records = results.with_file_name(format!("eval-{i}.records.jsonl"));
        assert_close(tag, eval_outputs(&records), r.logits.clone());
    }
}

#[test]
fn peft_adapter_tensors_must_match_the_model() {
    let dir = TempDir::new("peft-head-bad");
    let src = fixture(ROBERTA_LORA);
    std::fs::copy(
        src.join("adapter_config.json"),
        dir.0.join("adapter_config.json"),
    )
    .unwrap();
    let ckpt = Checkpoint::open_files(&[src.join("adapter_model.safetensors")]).unwrap();
    let renamed = "base_model.model.classifier.extra.weight";
    let tensors = ckpt
        .names()
        .into_iter()
        .map(|n| {
            let (values, shape) = ckpt.read_f32(n).unwrap();
            let name = n.replace("classifier.dense.weight", "classifier.extra.weight");
            OutTensor::F32(name, shape, values)
        })
        .collect();
    write_safetensors(&dir.0.join("adapter_model.safetensors"), tensors, None).unwrap();
    let (base, _) = burn_peft::model::any::load_model::<B>(&fixture(ROBERTA), &device()).unwrap();
    let err = base
        .with_adapter(&dir.0)
        .err()
        .expect("a stray tensor")
        .to_string();
    assert!(
        err.contains(renamed) && err.contains("adapter_model.safetensors"),
        "{err}"
    );
}
