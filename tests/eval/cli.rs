//! `burn-peft eval` end to end: GSM-8K generation on stories260K, perplexity against the
//! transformers reference loss, HumanEval and MATH from completion files, GLUE on a tiny
//! classifier, and bad input failing cleanly.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use burn_peft::io::checkpoint::Checkpoint;
use serde_json::Value;

use crate::common::{repo, scratch};

fn burn_peft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_burn-peft"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .expect("run burn-peft")
}

/// Runs `eval` with `args` plus `--out DIR/NAME.json`; returns results.json and the records.
fn eval(dir: &Path, name: &str, args: &[&str]) -> (Value, Vec<Value>) {
    let out = dir.join(format!("{name}.json"));
    let mut all = vec!["eval"];
    all.extend(args);
    all.extend(["--out", out.to_str().unwrap()]);
    let run = burn_peft(&all);
    assert!(
        run.status.success(),
        "{all:?}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let results: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let records = std::fs::read_to_string(dir.join(format!("{name}.records.jsonl")))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (results, records)
}

/// Runs `eval` expecting failure; returns stderr.
fn eval_fails(args: &[&str]) -> String {
    let mut all = vec!["eval"];
    all.extend(args);
    let run = burn_peft(&all);
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(!run.status.success(), "{all:?} succeeded");
    assert!(!stderr.contains("panicked"), "{all:?} panicked: {stderr}");
    stderr
}

fn write_jsonl(path: &PathBuf, rows: &[Value]) {
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(path, text).unwrap();
}

#[test]
fn gsm8k_generation_on_stories260k_writes_results_and_records() {
    let dir = scratch("gsm8k-cli");
    let (results, records) = eval(
        &dir,
        "gsm8k",
        &[
            "--model",
            "models/stories260K/hf",
            "--task",
            "gsm8k",
            "--limit",
            "5",
            "--max-new-tokens",
            "64",
            "--batch-size",
            "5",
        ],
    );
    assert_eq!(results["task"], "gsm8k");
    assert_eq!(results["model"], "models/stories260K/hf");
    assert_eq!(results["counts"]["examples"], 5);
    assert_eq!(results["primary_metric"], "accuracy");
    let accuracy = results["metrics"]["accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&accuracy));
    let tokens = results["generated_tokens"].as_u64().unwrap();
    assert!(tokens > 0 && tokens <= 5 * 64, "{tokens}");
    assert!(results["tokens_per_second"].as_f64().unwrap() > 0.0);
    assert_eq!(records.len(), 5);
    let first = &records[0];
    assert!(
        first["prompt"]
            .as_str()
            .unwrap()
            .ends_with("### Response: Let's think step by step.")
    );
    assert!(first["prompt"].as_str().unwrap().contains("Janet’s ducks"));
    assert_eq!(first["gold"], "18");
    assert!(first["completion"].is_string() && first["correct"].is_boolean());
    assert!(first.get("extracted").is_some());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn perplexity_matches_the_transformers_loss() {
    let fixture = repo("tests/fixtures/tiny-llama");
    let reference = Checkpoint::open_files(&[fixture.join("reference.safetensors")]).unwrap();
    let (ids, shape) = reference.read_i64("input_ids").unwrap();
    let (mask, _) = reference.read_i64("attention_mask").unwrap();
    let (loss, _) = reference.read_f32("loss").unwrap();
    let expected = f64::from(loss[0]).exp();
    let dir = scratch("perplexity-cli");
    let data = dir.join("reference.jsonl");
    let rows: Vec<Value> = ids
        .chunks(shape[1])
        .zip(mask.chunks(shape[1]))
        .map(|(i, m)| serde_json::json!({"input_ids": i, "attention_mask": m}))
        .collect();
    write_jsonl(&data, &rows);
    // One batch (as transformers computed it) and one row at a time give the same number: the
    // mean runs over tokens, not rows (the rows have 11 and 8 scored tokens).
    for batch in ["2", "1"] {
        let (results, records) = eval(
            &dir,
            &format!("ppl{batch}"),
            &[
                "--model",
                fixture.to_str().unwrap(),
                "--task",
                "perplexity",
                "--data",
                data.to_str().unwrap(),
                "--batch-size",
                batch,
            ],
        );
        let got = results["metrics"]["perplexity"].as_f64().unwrap();
        let relative = (got - expected).abs() / expected;
        assert!(relative < 1e-4, "perplexity {got} vs exp(loss) {expected}");
        assert_eq!(results["counts"]["tokens"], 11 + 8);
        assert_eq!(records.len(), 2);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn humaneval_completions_are_scored_in_the_sandbox() {
    let dir = scratch("humaneval-cli");
    let problems =
        burn_peft::eval::humaneval::read_problems(&repo("datasets/humaneval/HumanEval.jsonl.gz"))
            .unwrap();
    // Two samples per task for the first 6 tasks: the canonical body and an empty one.
    let mut rows = Vec::new();
    for p in &problems[..6] {
        rows.push(serde_json::json!({"task_id": p.task_id, "completion": p.canonical_solution}));
        rows.push(serde_json::json!({"task_id": p.task_id, "completion": ""}));
    }
    let completions = dir.join("completions.jsonl");
    write_jsonl(&completions, &rows);
    let (results, records) = eval(
        &dir,
        "humaneval",
        &[
            "--task",
            "humaneval",
            "--completions",
            completions.to_str().unwrap(),
            "--limit",
            "6",
            "--jobs",
            "2",
        ],
    );
    // pass@1 with n = 2, c = 1 is 1/2 for every task.
    assert!((results["metrics"]["pass@1"].as_f64().unwrap() - 0.5).abs() < 1e-12);
    assert_eq!(results["counts"]["samples"], 12);
    assert_eq!(results["counts"]["samples_passed"], 6);
    // Strict by default; the protections of every program in results.json, each program's in
    // its record.
    assert_eq!(results["settings"]["sandbox_policy"], "strict");
    assert_eq!(results["sandbox"]["strict"], true);
    assert_eq!(results["sandbox"]["programs"], 12);
    let every = results["sandbox"]["in_force_for_every_program"]
        .as_array()
        .unwrap();
    for p in [
        "resource_limits",
        "syscall_filter",
        "pid_namespace",
        "mount_namespace",
        "network_namespace",
        "landlock_filesystem",
    ] {
        assert!(every.contains(&p.into()), "{p} missing: {every:?}");
    }
    assert_eq!(records.len(), 12);
    assert_eq!(records[0]["id"], "HumanEval/0#0");
    assert_eq!(records[0]["correct"], true);
    assert_eq!(records[1]["correct"], false);
    assert!(records[1]["detail"].is_string());
    for record in &records {
        let in_force = record["sandbox"]["in_force"].as_array().unwrap();
        assert!(in_force.contains(&"pid_namespace".into()), "{record}");
    }

    // --allow-weak-sandbox is recorded as such.
    let (results, _) = eval(
        &dir,
        "humaneval-weak",
        &[
            "--task",
            "humaneval",
            "--completions",
            completions.to_str().unwrap(),
            "--limit",
            "1",
            "--allow-weak-sandbox",
        ],
    );
    assert_eq!(results["settings"]["sandbox_policy"], "allow_weak");
    assert_eq!(results["sandbox"]["strict"], false);
    assert_eq!(results["counts"]["samples"], 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn math500_completions_with_the_gold_answers_score_full_marks() {
    let dir = scratch("math-cli");
    let problems =
        burn_peft::eval::math::read_problems(&repo("datasets/math/math500_test.jsonl")).unwrap();
    let rows: Vec<Value> = problems[..50]
        .iter()
        .enumerate()
        .map(|(i, p)| {
            // Every other answer is wrong (an extra digit).
            let answer = if i % 2 == 0 { p.gold.clone() } else { format!("{}9", p.gold) };
            serde_json::json!({"index": i, "completion": format!("Steps.\nThe answer is: {answer}.\n")})
        })
        .collect();
    let completions = dir.join("math.jsonl");
    write_jsonl(&completions, &rows);
    let (results, _) = eval(
        &dir,
        "math500",
        &[
            "--task",
            "math500",
            "--completions",
            completions.to_str().unwrap(),
            "--limit",
            "50",
        ],
    );
    assert_eq!(results["counts"]["examples"], 50);
    assert_eq!(results["counts"]["correct"], 25, "{results}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn glue_on_a_tiny_classifier() {
    let dir = scratch("glue-cli");
    // The fixture has no tokenizer: stories260K's 512 ids all fit RoBERTa's vocabulary.
    let tokenizer = repo("models/stories260K/hf/tokenizer.json");
    let (results, records) = eval(
        &dir,
        "rte",
        &[
            "--model",
            "tests/fixtures/tiny-roberta-cls",
            "--tokenizer",
            tokenizer.to_str().unwrap(),
            "--task",
            "glue-rte",
            "--limit",
            "12",
            "--batch-size",
            "4",
            "--max-length",
            "64",
        ],
    );
    assert_eq!(results["counts"]["examples"], 12);
    let accuracy = results["metrics"]["accuracy"].as_f64().unwrap();
    let correct = results["counts"]["correct"].as_u64().unwrap();
    assert!((accuracy - correct as f64 / 12.0).abs() < 1e-12);
    assert_eq!(records.len(), 12);
    assert_eq!(records[0]["gold"], "not_entailment");
    // A regression task needs a one-output head: the 2-label fixture is refused cleanly.
    let err = eval_fails(&[
        "--model",
        "tests/fixtures/tiny-roberta-cls",
        "--tokenizer",
        tokenizer.to_str().unwrap(),
        "--task",
        "glue-stsb",
        "--out",
        dir.join("stsb.json").to_str().unwrap(),
    ]);
    assert!(err.contains("num_labels"), "{err}");
    // A malformed dev row: the error names the file and the line.
    let bad = dir.join("rte.tsv");
    std::fs::write(
        &bad,
        "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tb\n",
    )
    .unwrap();
    let err = eval_fails(&[
        "--model",
        "tests/fixtures/tiny-roberta-cls",
        "--tokenizer",
        tokenizer.to_str().unwrap(),
        "--task",
        "glue-rte",
        "--data",
        bad.to_str().unwrap(),
        "--out",
        dir.join("bad.json").to_str().unwrap(),
    ]);
    assert!(err.contains("rte.tsv") && err.contains("line 3"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_fails_with_file_and_line() {
    let dir = scratch("bad-cli");
    let out = dir.join("r.json");
    let out = out.to_str().unwrap();
    // A completions row without an id.
    let completions = dir.join("c.jsonl");
    std::fs::write(
        &completions,
        "{\"index\": 0, \"completion\": \"x\"}\n{\"completion\": \"y\"}\n",
    )
    .unwrap();
    let err = eval_fails(&[
        "--task",
        "gsm8k",
        "--completions",
        completions.to_str().unwrap(),
        "--out",
        out,
    ]);
    assert!(err.contains("c.jsonl") && err.contains("line 2"), "{err}");
    // Not JSON at all.
    std::fs::write(
        &completions,
        "{\"index\": 0, \"completion\": \"x\"}\n\nnot json\n",
    )
    .unwrap();
    let err = eval_fails(&[
        "--task",
        "math",
        "--completions",
        completions.to_str().unwrap(),
        "--out",
        out,
    ]);
    assert!(err.contains("c.jsonl") && err.contains("line 3"), "{err}");
    // A GSM-8K data row whose answer has no `#### N`.
    let data = dir.join("gsm.jsonl");
    std::fs::write(
        &data,
        "{\"question\": \"q\", \"answer\": \"#### 4\"}\n{\"question\": \"q\", \"answer\": \"four\"}\n",
    )
    .unwrap();
    let err = eval_fails(&[
        "--task",
        "gsm8k",
        "--data",
        data.to_str().unwrap(),
        "--completions",
        completions.to_str().unwrap(),
        "--out",
        out,
    ]);
    assert!(
        err.contains("gsm.jsonl") && err.contains("line 2") && err.contains("####"),
        "{err}"
    );
    // Missing data file, unknown task, no model, GLUE with completions.
    let err = eval_fails(&[
        "--task",
        "perplexity",
        "--model",
        "tests/fixtures/tiny-llama",
        "--data",
        "/nonexistent.jsonl",
        "--out",
        out,
    ]);
    assert!(err.contains("/nonexistent.jsonl"), "{err}");
    let err = eval_fails(&["--task", "mmlu"]);
    assert!(err.contains("gsm8k"), "{err}");
    let err = eval_fails(&["--task", "gsm8k", "--out", out]);
    assert!(err.contains("--model"), "{err}");
    let err = eval_fails(&[
        "--task",
        "glue-rte",
        "--completions",
        completions.to_str().unwrap(),
        "--out",
        out,
    ]);
    assert!(err.contains("--completions"), "{err}");
    assert!(!Path::new(out).exists(), "no results for failed runs");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn perplexity_of_text_is_the_same_from_a_text_file_and_from_jsonl() {
    let dir = scratch("perplexity-text");
    let stories = [
        "Once upon a time, there was a little girl named Lily. She liked to play outside.",
        "One day, a big dog came to the park. The dog was happy and wagged its tail.",
    ];
    let text = dir.join("stories.txt");
    std::fs::write(&text, stories.join("\n\n")).unwrap();
    let jsonl = dir.join("stories.jsonl");
    write_jsonl(&jsonl, &stories.map(|s| serde_json::json!({ "text": s })));
    let mut values = Vec::new();
    for (name, data) in [("txt", &text), ("jsonl", &jsonl)] {
        let (results, _) = eval(
            &dir,
            name,
            &[
                "--model",
                "models/stories260K/hf",
                "--task",
                "perplexity",
                "--data",
                data.to_str().unwrap(),
                "--max-length",
                "16",
            ],
        );
        assert!(
            results["counts"]["sequences"].as_u64().unwrap() > 2,
            "{results}"
        );
        values.push(results["metrics"]["perplexity"].as_f64().unwrap());
    }
    // stories260K knows these stories: far below the 512 of a uniform guess.
    assert!(values[0] > 1.0 && values[0] < 100.0, "{values:?}");
    // Same windows, same numbers up to float noise (the CPU backend's parallel sums vary in the
    // last bits with the machine's load).
    assert!(
        (values[0] - values[1]).abs() / values[0] < 1e-4,
        "{values:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
