//! For every method: a short run lowers the loss; the saved adapter reloads onto the ORIGINAL
//! base with the trained logits; the merged model folder gives the same logits.

use burn_peft::model::decoder::Decoder;
use burn_peft::model::{PeftModel, any::AnyModel};
use burn_peft::train::{TrainOptions, train_decoder};

use crate::common::*;

#[test]
fn every_method_trains_saves_reloads_and_merges() {
    let (ids, mask) = probe();
    let base = root().join("models/stories260K/hf");
    for (tag, sets) in METHODS {
        let recipe = quick_recipe(&format!("m-{tag}"), sets);
        let options = TrainOptions {
            quiet: true,
            ..Default::default()
        };
        let (summary, trained) = train_decoder::<Train>(&recipe, &device(), &options).unwrap();
        let (first, last) = (summary.first_loss.unwrap(), summary.last_loss.unwrap());
        assert!(last < first, "{tag}: loss {first} -> {last}");
        let want = trained.forward(ids.clone(), Some(mask.clone()));

        // Reload onto the original base.
        let out = recipe.run.output_dir.clone();
        let adapter = out.join("adapter");
        let (base_model, _) = burn_peft::model::any::load_model::<B>(&base, &device()).unwrap();
        let AnyModel::Decoder(reloaded) = base_model.with_adapter(&adapter).unwrap() else {
            unreachable!()
        };
        let err = max_abs_diff(
            reloaded.forward(ids.clone(), Some(mask.clone())),
            want.clone(),
        );
        // f32 rounding only: the reloaded model rebuilds its frozen residual and factors from
        // the saved tensors, and flex's gemm blocks its sums by shape (measured: LoTR 1.2e-5).
        assert!(
            err < 3e-5,
            "{tag}: reloaded adapter logits differ by {err:e}"
        );
        if tag == "lotr" {
            assert!(!reloaded.shared().lotr.is_empty());
        }

        // Merge through the binary and load the folder back as a plain model.
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
        let (merged, report) = Decoder::<B>::load(&merged_dir, &device()).unwrap();
        assert!(report.unused.is_empty());
        let err = max_abs_diff(
            merged.forward(ids.clone(), Some(mask.clone())),
            want.clone(),
        );
        assert!(err < 1e-4, "{tag}: merged model logits differ by {err:e}");

        // Export as a plain PEFT LoRA and apply it the PEFT way to the original base.
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
        let (plain, _) = Decoder::<B>::load(&base, &device()).unwrap();
        let peft = burn_peft::persist::peft::load_peft_lora(plain, &exported).unwrap();
        let err = max_abs_diff(peft.forward(ids.clone(), Some(mask.clone())), want);
        assert!(
            err < 1e-4,
            "{tag}: exported PEFT LoRA logits differ by {err:e}"
        );
        std::fs::remove_dir_all(&out).unwrap();
    }
}

#[test]
fn init_once_then_train_from_the_saved_initialisation() {
    let (ids, mask) = probe();
    let base = root().join("models/stories260K/hf");
    let dir = temp("init");
    let init = dir.join("init");
    burn_peft_ok(&["init", "--set", "adapter.rank=4", "--out", path(&init)]);
    // An initialised SORSA adapter on the original base is the base (exact split).
    let (plain, _) = Decoder::<B>::load(&base, &device()).unwrap();
    let want = plain.forward(ids.clone(), Some(mask.clone()));
    let (model, _) = burn_peft::model::any::load_model::<B>(&base, &device()).unwrap();
    let AnyModel::Decoder(initialised) = model.with_adapter(&init).unwrap() else {
        unreachable!()
    };
    let scale = max_abs_diff(want.clone(), want.clone() * 0.0);
    let err = max_abs_diff(initialised.forward(ids, Some(mask)), want);
    // f32 rounding of W_res + B·diag(S)·A across five layers, relative to logits of ~|10|.
    assert!(
        err < 2e-6 * scale,
        "initialised adapter changes logits by {err:e} (scale {scale})"
    );

    let recipe = quick_recipe(
        "from-init",
        &[&format!("model.init_adapter=\"{}\"", init.display())],
    );
    let (summary, _) = train_decoder::<Train>(
        &recipe,
        &device(),
        &TrainOptions {
            quiet: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(summary.last_loss.unwrap() < summary.first_loss.unwrap());
    let mismatched = quick_recipe(
        "mismatch",
        &[
            &format!("model.init_adapter=\"{}\"", init.display()),
            "adapter.rank=8",
        ],
    );
    let err = train_decoder::<Train>(
        &mismatched,
        &device(),
        &TrainOptions {
            quiet: true,
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("model.init_adapter")
            && err.contains("`adapter.rank` (adapter: 4, recipe: 8)"),
        "{err}"
    );
    // Every differing field is named, not only method and rank.
    let mismatched = quick_recipe(
        "mismatch-fields",
        &[
            &format!("model.init_adapter=\"{}\"", init.display()),
            "adapter.alpha=2",
            "adapter.seed=3",
        ],
    );
    let err = train_decoder::<Train>(
        &mismatched,
        &device(),
        &TrainOptions {
            quiet: true,
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("`adapter.alpha` (adapter: 4.0, recipe: 2.0)")
            && err.contains("`adapter.seed`"),
        "{err}"
    );
    for d in [dir, recipe.run.output_dir, mismatched.run.output_dir] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn init_adapter_trains_with_its_own_config() {
    // An svd-split LoRA-FA adapter changes the base (W − B₀A₀). A recipe that calls it plain
    // `svd` would save it as unsplit and count ΔW₀ twice on reload: refused.
    let (ids, mask) = probe();
    let dir = temp("init-split");
    let init = dir.join("init");
    let adapter = [
        "adapter.method=\"lora_fa\"",
        "adapter.init=\"svd-split\"",
        "adapter.gamma=0",
        "adapter.rank=4",
    ];
    let mut args = vec!["init"];
    for set in adapter {
        args.extend(["--set", set]);
    }
    args.extend(["--out", path(&init)]);
    burn_peft_ok(&args);
    let from_init = format!("model.init_adapter=\"{}\"", init.display());
    let options = TrainOptions {
        quiet: true,
        ..Default::default()
    };
    let mut wrong = adapter.to_vec();
    wrong[1] = "adapter.init=\"svd\"";
    wrong.push(&from_init);
    let wrong = quick_recipe("init-split-wrong", &wrong);
    let err = train_decoder::<Train>(&wrong, &device(), &options)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`adapter.init` (adapter: \"svd-split\", recipe: \"svd\")"),
        "{err}"
    );
    assert!(!wrong.run.output_dir.join("adapter").exists());

    let mut right = adapter.to_vec();
    right.push(&from_init);
    let right = quick_recipe("init-split-right", &right);
    let (_, trained) = train_decoder::<Train>(&right, &device(), &options).unwrap();
    let want = trained.forward(ids.clone(), Some(mask.clone()));
    let base = root().join("models/stories260K/hf");
    let (model, _) = burn_peft::model::any::load_model::<B>(&base, &device()).unwrap();
    let AnyModel::Decoder(reloaded) = model
        .with_adapter(&right.run.output_dir.join("adapter"))
        .unwrap()
    else {
        unreachable!()
    };
    let scale = max_abs_diff(want.clone(), want.clone() * 0.0);
    let err = max_abs_diff(reloaded.forward(ids, Some(mask)), want);
    assert!(
        err < 2e-6 * scale,
        "reloaded differs by {err:e} (scale {scale})"
    );
    for d in [dir, wrong.run.output_dir, right.run.output_dir] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// `bench train` (the README's speed and memory numbers) runs every method: a method whose
/// adapter configuration it builds wrongly (e.g. an SVD setting on LoRA) is refused there.
#[test]
fn bench_train_runs_every_method() {
    for method in ["lora", "pissa", "sorsa", "lora_fa", "lotr"] {
        let stdout = burn_peft_ok(&[
            "bench", "train", "--method", method, "--rank", "4", "--hidden", "64", "--layers", "1",
            "--vocab", "128", "--seq", "16", "--batch", "1", "--steps", "1",
        ]);
        assert!(
            stdout.contains(&format!("| {method} | 4 | f32 |")),
            "{method}: {stdout}"
        );
    }
}
