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

#[test]
fn check_reports_a_recipe_and_refuses_a_bad_one() {
    let output = burn_peft(&[
        "check",
        "--config",
        "configs/sorsa-metamath/llama2-7b-sorsa.toml",
        "--model-config",
        "tests/fixtures/configs/Llama-2-7b-hf/config.json",
    ]);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for expected in [
        "model: llama",
        "32 layers",
        "6,738,415,616 parameters",
        "q_proj [4096, 4096] x32",
        "down_proj [4096, 11008] x32",
        "trainable params: 319,844,352",
        "warning: data.train = datasets/MetaMathQA/MetaMathQA-395K.json does not exist",
        "ok:",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in\n{stdout}");
    }

    let output = burn_peft(&[
        "check",
        "--config",
        "configs/lotr-glue/rte-lotr-r32.toml",
        "--model-config",
        "tests/fixtures/configs/roberta-base",
        "--set",
        "adapter.modules_to_save=[\"classifier.dense_proj\"]",
    ]);
    let (stdout, stderr) = text(&output);
    assert!(!output.status.success(), "{stdout}");
    assert!(
        stderr.contains("adapter.modules_to_save")
            && stderr.contains("classifier.dense_proj")
            && stderr.contains("classifier.out_proj"),
        "{stderr}"
    );

    // The default recipe checks against the shipped model, data included.
    let output = burn_peft(&["check"]);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("data: 8 rows read"), "{stdout}");
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
    let output = burn_peft(&[
        "plan",
        "--config",
        "configs/sorsa-metamath/llama2-7b-sorsa.toml",
        "--model-config",
        "tests/fixtures/configs/Llama-2-7b-hf",
        "--set",
        "model.gradient_checkpointing=true",
    ]);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for expected in [
        "trainable params: 319,844,352",
        "plan: base in bf16",
        "micro-batch 2 x 1024 tokens",
        "activation checkpointing on",
        "base (frozen)                  12.55 GiB",
        "device peak",
        "host peak",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in\n{stdout}");
    }

    let output = burn_peft(&[
        "plan",
        "--config",
        "configs/sorsa-metamath/llama2-7b-sorsa.toml",
        "--model-config",
        "tests/fixtures/configs/Llama-2-7b-hf",
        "--set",
        "adapter.rank=5000",
    ]);
    let (stdout, stderr) = text(&output);
    assert!(!output.status.success(), "{stdout}");
    assert!(stderr.contains("adapter.rank"), "{stderr}");
}
