//! `burn-peft check` and `plan`, and the chat switches of `generate` / `eval`, through the binary.

use std::process::{Command, Output};

use crate::root;

fn burn_peft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_burn-peft"))
        .current_dir(root())
        .args(args)
        .output()
        .unwrap()
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs the binary, asserts it succeeded and printed every `expected` piece.
fn prints(args: &[&str], expected: &[&str]) {
    let output = burn_peft(args);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{args:?}: {stdout}\n{stderr}");
    for expected in expected {
        assert!(stdout.contains(expected), "no {expected:?} in\n{stdout}");
    }
}

/// Runs the binary, asserts it failed and its error names every `expected` piece.
fn refuses(args: &[&str], expected: &[&str]) {
    let output = burn_peft(args);
    let (stdout, stderr) = text(&output);
    assert!(!output.status.success(), "{args:?}: {stdout}");
    for expected in expected {
        assert!(stderr.contains(expected), "no {expected:?} in\n{stderr}");
    }
}

#[test]
fn check_reports_a_recipe_and_refuses_a_bad_one() {
    prints(
        &[
            "check",
            "--config",
            "configs/sorsa-metamath/llama2-7b-sorsa.toml",
            "--model-config",
            "tests/fixtures/configs/Llama-2-7b-hf/config.json",
        ],
        &[
            "model: llama",
            "32 layers",
            "6,738,415,616 parameters",
            "q_proj [4096, 4096] x32",
            "down_proj [4096, 11008] x32",
            "trainable params: 319,844,352",
            "warning: data.train = datasets/MetaMathQA/MetaMathQA-395K.json does not exist",
            "ok:",
        ],
    );
    refuses(
        &[
            "check",
            "--config",
            "configs/lotr-glue/rte-lotr-r32.toml",
            "--model-config",
            "tests/fixtures/configs/roberta-base",
            "--set",
            "adapter.modules_to_save=[\"classifier.dense_proj\"]",
        ],
        &[
            "adapter.modules_to_save",
            "classifier.dense_proj",
            "classifier.out_proj",
        ],
    );

    // The default recipe checks against the shipped model, data included.
    prints(&["check"], &["data: 8 rows read"]);
}

#[test]
fn generate_and_eval_chat_switches() {
    let output = burn_peft(&[
        "generate",
        "--model",
        "models/stories260K/hf",
        "--tokenizer",
        "tests/fixtures/chat-stories260K/tokenizer.json",
        "--chat",
        "--system",
        "You tell stories.",
        "--prompt",
        "Tell me a story.",
        "--max-new-tokens",
        "8",
    ]);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    // Only the reply is printed, not the rendered conversation.
    assert!(
        !stdout.contains("<|im_start|>") && !stdout.trim().is_empty(),
        "{stdout}"
    );

    // A tokenizer without a template says so.
    let output = burn_peft(&[
        "generate",
        "--model",
        "models/stories260K/hf",
        "--chat",
        "--prompt",
        "Hi",
    ]);
    let (_, stderr) = text(&output);
    assert!(!output.status.success());
    assert!(stderr.contains("no chat template"), "{stderr}");

    let output = burn_peft(&[
        "eval",
        "--model",
        "models/stories260K/hf",
        "--task",
        "glue-rte",
        "--chat",
    ]);
    let (_, stderr) = text(&output);
    assert!(!output.status.success());
    assert!(
        stderr.contains("--chat applies to generation tasks"),
        "{stderr}"
    );
}

#[test]
fn plan_prints_the_breakdown_and_refuses_a_bad_recipe() {
    let recipe = [
        "plan",
        "--config",
        "configs/sorsa-metamath/llama2-7b-sorsa.toml",
        "--model-config",
        "tests/fixtures/configs/Llama-2-7b-hf",
        "--set",
    ];
    prints(
        &[&recipe[..], &["model.gradient_checkpointing=true"]].concat(),
        &[
            "trainable params: 319,844,352",
            "plan: base in bf16",
            "micro-batch 2 x 1024 tokens",
            "activation checkpointing on",
            "base (frozen)                  12.55 GiB",
            "device peak",
            "host peak",
        ],
    );
    refuses(
        &[&recipe[..], &["adapter.rank=5000"]].concat(),
        &["adapter.rank"],
    );
}
