//! `kill -9` in the middle of a run, then `--resume`: the run ends with the adapter an
//! uninterrupted run saves, for both tasks (causal LM and GLUE classification), and its
//! `metrics.jsonl` holds every step once. The killed process is the real CLI; the kill lands
//! at once after the first checkpoint is published, while later steps (and checkpoint
//! writes) are under way.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use burn_peft::train::recipe::Recipe;
use burn_peft::train::{TrainOptions, train};

use crate::common::*;

/// Starts `burn-peft train` on `recipe`, kills it with SIGKILL as soon as its first checkpoint
/// is complete, and checks that it was killed before it finished (bounded: 120 s).
fn kill_after_first_checkpoint(recipe: &Recipe) {
    let out = &recipe.run.output_dir;
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let config = out.with_extension("toml");
    std::fs::write(&config, recipe.to_toml()).unwrap();
    // To a file, not a pipe: a pipe nobody reads while polling could fill and stall the run.
    let log = out.with_extension("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_burn-peft"))
        .args(["train", "--config"])
        .arg(&config)
        .env("BURN_PEFT_NO_TUI", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let first = out.join("checkpoints/step-000002/state.json");
    let started = Instant::now();
    while !first.is_file() {
        if let Some(status) = child.try_wait().unwrap() {
            let stderr = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("the run ended ({status}) before its first checkpoint: {stderr}");
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("no checkpoint after 120 s");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "the run finished before the kill ({status}): give it more steps"
    );
    assert!(
        !out.join("adapter").exists(),
        "a killed run has no adapter yet"
    );
    std::fs::remove_file(config).unwrap();
    std::fs::remove_file(log).unwrap();
}

/// Trains `full` uninterrupted (in-process), `killed` (the same recipe in another folder)
/// killed and resumed, and compares their adapters and step logs.
pub fn killed_run_resumes_to_the_uninterrupted_adapter(full: Recipe, killed: Recipe) {
    let quiet = TrainOptions {
        quiet: true,
        ..Default::default()
    };
    train::<Train>(&full, &device(), &quiet).unwrap();
    kill_after_first_checkpoint(&killed);
    train::<Train>(
        &killed,
        &device(),
        &TrainOptions {
            resume: true,
            ..quiet
        },
    )
    .unwrap();
    // As in the stop-and-resume test: burn-flex's reductions may differ in the last bits
    // between two uninterrupted runs, so the adapters agree to that level.
    assert_same_adapters(&full.run.output_dir, &killed.run.output_dir, 2e-5);
    assert_each_step_logged_once(&killed.run.output_dir, full.optim.max_steps);
    std::fs::remove_dir_all(&full.run.output_dir).unwrap();
    std::fs::remove_dir_all(&killed.run.output_dir).unwrap();
}

/// Long enough that the kill lands mid-run, with a checkpoint every second step.
pub const LONG: [&str; 3] = [
    "optim.max_steps=40",
    "run.checkpoint_every=2",
    "data.limit=64",
];

#[test]
fn killed_causal_lm_run_resumes_to_the_uninterrupted_adapter() {
    killed_run_resumes_to_the_uninterrupted_adapter(
        quick_recipe("kill-lm-full", &LONG),
        quick_recipe("kill-lm-killed", &LONG),
    );
}

#[test]
fn killed_classification_run_resumes_to_the_uninterrupted_adapter() {
    let train = root().join("datasets/glue/SST-2/train.tsv");
    let sets = |tag: &str| {
        let data = format!("data.train=\"{}\"", train.display());
        let mut sets = vec![
            "data.task=\"sst2\"",
            data.as_str(),
            "data.eval_rows=16",
            "adapter.method=\"lora\"",
            "adapter.gamma=0",
        ];
        sets.extend(LONG);
        quick_recipe(tag, &sets)
    };
    killed_run_resumes_to_the_uninterrupted_adapter(sets("kill-cls-full"), sets("kill-cls-killed"))
}
