//! RWKV6 end to end on a tiny random Finch with the World tokenizer's 65536 tokens (written
//! once per test process): every method trains (loss falls), its adapter reloads onto the
//! original base with the trained logits, `merge` writes a folder with the same logits and
//! `export` a PEFT LoRA that applies the PEFT way; a SORSA run killed with SIGKILL resumes to
//! the uninterrupted run's adapter.

use std::path::Path;

use burn::tensor::{Int, Tensor, TensorData};
use burn_peft::model::any::{AnyModel, load_model};
use burn_peft::model::rwkv6::Rwkv6;
use burn_peft::model::{Precision, world_tokenizer};
use burn_peft::train::{TrainOptions, train_language_model};

use crate::common::*;

fn load_rwkv6(dir: &Path) -> Rwkv6<B> {
    let (model, report) = Rwkv6::<B>::load_as(dir, Precision::Auto, &device()).unwrap();
    assert!(report.unused.is_empty(), "{:?}", report.unused);
    model
}

#[test]
fn every_method_trains_reloads_merges_and_exports_on_rwkv6() {
    let base = tiny_world_rwkv6();
    let ids = Tensor::<B, 2, Int>::from_data(
        TensorData::new(
            (0..40)
                .map(|i| (i * 1637 + 11) % 65530)
                .collect::<Vec<i64>>(),
            [2, 20],
        ),
        &device(),
    );
    for (tag, sets) in METHODS {
        let recipe = rwkv6_recipe(&format!("rwkv6-{tag}"), sets);
        let options = TrainOptions {
            quiet: true,
            ..Default::default()
        };
        let (summary, trained) =
            train_language_model::<Train>(&recipe, &device(), &options).unwrap();
        let AnyModel::Rwkv6(trained) = trained else {
            panic!("{tag}: trained an RWKV6 into something else")
        };
        let (first, last) = (summary.first_loss.unwrap(), summary.last_loss.unwrap());
        assert!(last < first, "{tag}: loss {first} -> {last}");
        assert_eq!(
            adapted_count(&trained),
            16,
            "{tag}: every block linear, not the head"
        );
        let want = trained.forward(ids.clone(), None);

        let out = recipe.run.output_dir.clone();
        let adapter = out.join("adapter");
        let (plain, _) = load_model::<B>(&base, &device()).unwrap();
        let AnyModel::Rwkv6(reloaded) = plain.with_adapter(&adapter).unwrap() else {
            unreachable!()
        };
        let err = max_abs_diff(reloaded.forward(ids.clone(), None), want.clone());
        assert!(
            err < 3e-5,
            "{tag}: reloaded adapter logits differ by {err:e}"
        );

        let merged_dir = out.join("merged");
        burn_peft_ok(&[
            "merge",
            "--model",
            path(&base),
            "--adapter",
            path(&adapter),
            "--out",
            path(&merged_dir),
        ]);
        let merged = load_rwkv6(&merged_dir);
        let err = max_abs_diff(merged.forward(ids.clone(), None), want.clone());
        assert!(err < 1e-4, "{tag}: merged model logits differ by {err:e}");
        assert!(merged_dir.join(world_tokenizer::VOCAB_FILE).is_file());

        let exported = out.join("peft");
        burn_peft_ok(&[
            "export",
            "--adapter",
            path(&adapter),
            "--base",
            path(&base),
            "--out",
            path(&exported),
        ]);
        let peft = burn_peft::persist::peft::load_peft_lora(load_rwkv6(&base), &exported).unwrap();
        let err = max_abs_diff(peft.forward(ids.clone(), None), want);
        assert!(
            err < 1e-4,
            "{tag}: exported PEFT LoRA logits differ by {err:e}"
        );
        std::fs::remove_dir_all(&out).unwrap();
    }
}

#[test]
fn killed_rwkv6_run_resumes_to_the_uninterrupted_adapter() {
    let mut sets: Vec<&str> = crate::killed::LONG.to_vec();
    sets.push("data.limit=32");
    crate::killed::killed_run_resumes_to_the_uninterrupted_adapter(
        rwkv6_recipe("kill-rwkv6-full", &sets),
        rwkv6_recipe("kill-rwkv6-killed", &sets),
    );
}

/// How many of the model's linear layers carry an adapter.
fn adapted_count(model: &Rwkv6<B>) -> usize {
    use burn_peft::model::{PeftLinear, PeftModel};
    model
        .linears()
        .iter()
        .filter(|(_, l)| matches!(l, PeftLinear::Adapted(_)))
        .count()
}

#[test]
fn generate_eval_and_inspect_run_on_rwkv6() {
    let base = tiny_world_rwkv6();
    let model = path(&base);
    // Batched prompts of different lengths, the World tokenizer from the model folder.
    let text = burn_peft_ok(&[
        "generate",
        "--model",
        model,
        "--prompt",
        "Once upon a time",
        "--prompt",
        "Hi",
        "--max-new-tokens",
        "6",
    ]);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("Once upon a time") && lines[1].starts_with("Hi"),
        "{text}"
    );

    // GSM-8K with METHODS.md's prompts through the recurrent state, with a trained adapter.
    let recipe = rwkv6_recipe("rwkv6-eval", &["optim.max_steps=2"]);
    train_language_model::<Train>(
        &recipe,
        &device(),
        &TrainOptions {
            quiet: true,
            ..Default::default()
        },
    )
    .unwrap();
    let adapter = recipe.run.output_dir.join("adapter");
    let out = recipe.run.output_dir.join("gsm8k.json");
    burn_peft_ok(&[
        "eval",
        "--model",
        model,
        "--adapter",
        path(&adapter),
        "--task",
        "gsm8k",
        "--limit",
        "3",
        "--batch-size",
        "2",
        "--max-new-tokens",
        "8",
        "--out",
        path(&out),
    ]);
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(results["counts"]["examples"], 3, "{results}");
    assert!(
        results["generated_tokens"].as_u64().unwrap() > 0,
        "{results}"
    );

    let text = burn_peft_ok(&["inspect", "--model", model]);
    assert!(
        text.contains("rwkv.blocks.*.feed_forward.key") && text.contains("[96, 32]"),
        "{text}"
    );
    let text = burn_peft_ok(&[
        "bench", "generate", "--model", model, "--prompt", "16", "--decode", "4", "--batch", "2",
    ]);
    assert!(
        text.contains("model: rwkv6") && text.contains("decode:"),
        "{text}"
    );
    std::fs::remove_dir_all(&recipe.run.output_dir).unwrap();
}
