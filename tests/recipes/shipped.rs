//! The shipped recipes: each parses, validates against its model's config.json (targets,
//! ranks, groups, modules_to_save, lengths) and its study README lists it; the trainable
//! parameters the published studies report follow from them.

use burn_peft::train::check::{CheckReport, check_recipe};
use burn_peft::train::recipe::Recipe;

use crate::{architecture_of, root, shipped_recipes};

fn check(relative: &str, overrides: &[&str]) -> burn_peft::Result<CheckReport> {
    let path = root().join(relative);
    let sets: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    let recipe = Recipe::load(Some(&path), &sets)?;
    check_recipe(&recipe, Some(&architecture_of(&recipe.model.path)))
}

#[test]
fn every_shipped_recipe_validates_against_its_architecture() {
    let recipes = shipped_recipes();
    // 8 stories260K recipes, 12 SORSA-study (3 methods x Llama 2, Mistral, Gemma, RWKV6), 6
    // LoRA-FA-study and 12 LoTR-study recipes.
    assert_eq!(recipes.len(), 38, "{recipes:?}");
    for path in &recipes {
        let relative = path.strip_prefix(root()).unwrap();
        let recipe =
            Recipe::load(Some(path), &[]).unwrap_or_else(|e| panic!("{}: {e}", relative.display()));
        let architecture = architecture_of(&recipe.model.path);
        assert!(
            architecture.join("config.json").is_file(),
            "{}: no config.json for {} (add it under tests/fixtures/configs/)",
            relative.display(),
            recipe.model.path.display()
        );
        let report = check_recipe(&recipe, Some(&architecture))
            .unwrap_or_else(|e| panic!("{}: {e}", relative.display()));
        assert!(!report.adapted.is_empty() && report.trainable_params > 0);

        // A study's README gives the command for each of its recipes.
        let folder = path.parent().unwrap();
        if folder != root().join("configs") {
            let readme = std::fs::read_to_string(folder.join("README.md"))
                .unwrap_or_else(|_| panic!("{} has no README.md", folder.display()));
            let name = path.file_stem().unwrap().to_str().unwrap();
            assert!(
                readme.contains(name),
                "{}/README.md does not mention {name}",
                folder.display()
            );
        }
    }
}

/// `count` within `percent` % of `published`.
fn near(count: usize, published: f64, percent: f64) -> bool {
    (count as f64 - published).abs() <= published * percent / 100.0
}

#[test]
fn published_parameter_counts_follow_from_the_recipes() {
    // METHODS.md's table: 320M (Llama 2), 168M (Mistral), 200M (Gemma), rounded to 1M.
    for (model, published) in [
        ("llama2-7b", 320e6),
        ("mistral-7b", 168e6),
        ("gemma-7b", 200e6),
    ] {
        for method in ["sorsa", "pissa", "lora"] {
            let recipe = format!("configs/sorsa-metamath/{model}-{method}.toml");
            let report = check(&recipe, &[]).unwrap();
            assert!(
                near(report.trainable_params, published, 0.5),
                "{recipe}: {} trainable, published {published}",
                report.trainable_params
            );
            assert_eq!(report.adapted.len(), 7 * report.skeleton.num_layers);
        }
    }
    // RWKV6 7B: 176M, every linear of the 32 blocks (5 in the time mix, 3 in the channel mix).
    for method in ["sorsa", "pissa", "lora"] {
        let recipe = format!("configs/sorsa-metamath/rwkv6-7b-{method}.toml");
        let report = check(&recipe, &[]).unwrap();
        assert!(
            near(report.trainable_params, 176e6, 0.5),
            "{recipe}: {} trainable, published 176M",
            report.trainable_params
        );
        assert_eq!(report.adapted.len(), 8 * 32);
        assert!(
            report.adapted.iter().all(|l| !l.is_head),
            "{recipe}: the head is not adapted"
        );
    }
    // SORSA adds the r singular values per layer to LoRA's r·(in + out).
    let lora = check("configs/sorsa-metamath/llama2-7b-lora.toml", &[]).unwrap();
    let sorsa = check("configs/sorsa-metamath/llama2-7b-sorsa.toml", &[]).unwrap();
    assert_eq!(lora.trainable_params, 319_815_680);
    assert_eq!(sorsa.trainable_params, 319_815_680 + 224 * 128);
    // "Full FT" rows: the whole model (HF's num_parameters()).
    assert_eq!(lora.skeleton.total_params(), 6_738_415_616);
    let mistral = check("configs/sorsa-metamath/mistral-7b-lora.toml", &[]).unwrap();
    assert_eq!(mistral.skeleton.total_params(), 7_241_732_096);
    let gemma = check("configs/sorsa-metamath/gemma-7b-lora.toml", &[]).unwrap();
    assert_eq!(gemma.skeleton.total_params(), 8_537_680_896);

    // LoTR r 32 on RoBERTa-base: (768 + 768)·32 + 24·32² = 73,728, plus the classifier's
    // 1,536-weight output projection = METHODS.md's 75,264; its 2 biases train too.
    for task in ["cola", "mrpc", "qnli", "rte", "sst2", "stsb"] {
        let lotr = check(&format!("configs/lotr-glue/{task}-lotr-r32.toml"), &[]).unwrap();
        let labels = if task == "stsb" { 1 } else { 2 };
        assert_eq!(lotr.groups.len(), 1);
        assert_eq!(lotr.groups[0].layers, 24);
        assert_eq!(
            lotr.trainable_params,
            73_728 + 768 * labels + labels,
            "{task}"
        );
        // LoRA r 1: 24·(768 + 768) + the output projection: "38k".
        let lora = check(&format!("configs/lotr-glue/{task}-lora-r1.toml"), &[]).unwrap();
        assert_eq!(
            lora.trainable_params,
            36_864 + 768 * labels + labels,
            "{task}"
        );
    }
    let lotr = check("configs/lotr-glue/mrpc-lotr-r32.toml", &[]).unwrap();
    assert_eq!(lotr.trainable_params, 75_264 + 2);
    // RoBERTa-base with a 2-label head, as transformers counts RobertaForSequenceClassification.
    assert_eq!(lotr.skeleton.total_params(), 124_647_170);

    // LoRA-FA trains B (out × r) on q, k, v, attention.output.dense, and the whole head.
    let fa = check("configs/lora-fa-glue/mrpc-svd.toml", &[]).unwrap();
    assert_eq!(fa.adapted.len(), 48);
    assert_eq!(
        fa.trainable_params,
        48 * 768 * 8 + (768 * 768 + 768) + (768 * 2 + 2)
    );
}

#[test]
fn check_refuses_what_training_would_fail_on() {
    let llama = "configs/sorsa-metamath/llama2-7b-sorsa.toml";
    let err = |recipe: &str, sets: &[&str]| check(recipe, sets).unwrap_err().to_string();

    let e = err(llama, &["adapter.rank=5000"]);
    assert!(
        e.contains("adapter.rank") && e.contains("model.layers.0.self_attn.q_proj"),
        "{e}"
    );
    let e = err(llama, &["adapter.targets=[\"query\"]"]);
    assert!(
        e.contains("adapter.targets") && e.contains("gate_proj"),
        "{e}"
    );
    let e = err(llama, &["adapter.modules_to_save=[\"classifier\"]"]);
    assert!(
        e.contains("adapter.modules_to_save") && e.contains("lm_head"),
        "{e}"
    );
    // The whole LM head or a layer's norm are modules.
    check(
        llama,
        &["adapter.modules_to_save=[\"lm_head\", \"model.norm\"]"],
    )
    .unwrap();

    // LoTR: one group per weight shape, the rank checked against each.
    let report = check(
        llama,
        &[
            "adapter.method=lotr",
            "adapter.gamma=0",
            "adapter.svd=exact",
        ],
    )
    .unwrap();
    let shapes: Vec<[usize; 2]> = report.groups.iter().map(|g| g.shape).collect();
    assert_eq!(shapes, [[4096, 4096], [11008, 4096], [4096, 11008]]);
    assert_eq!(report.groups[0].layers, 128);
    let e = err(
        "configs/lotr-glue/rte-lotr-r32.toml",
        &["adapter.rank=1000"],
    );
    assert!(e.contains("adapter.rank") && e.contains("768"), "{e}");

    // An encoder trains on a GLUE task, within its 512 positions.
    let e = err("configs/lotr-glue/rte-lotr-r32.toml", &["data.task=\"\""]);
    assert!(e.contains("data.task"), "{e}");
    let rte = root().join("configs/lotr-glue/rte-lotr-r32.toml");
    let mut recipe = Recipe::load(Some(&rte), &[]).unwrap();
    recipe.data.task = None;
    let e = check_recipe(&recipe, Some(&architecture_of(&recipe.model.path)))
        .unwrap_err()
        .to_string();
    assert!(e.contains("encoder") && e.contains("data.task"), "{e}");
    let e = err(
        "configs/lotr-glue/rte-lotr-r32.toml",
        &["data.max_prompt_length=1024"],
    );
    assert!(
        e.contains("data.max_prompt_length") && e.contains("512"),
        "{e}"
    );

    // Columns of the wrong kind of data are refused when the recipe is read.
    let e = err(llama, &["data.columns.label=\"y\""]);
    assert!(e.contains("data.columns.label"), "{e}");
    let e = err(
        "configs/lotr-glue/rte-lotr-r32.toml",
        &["data.columns.prompt=\"x\""],
    );
    assert!(e.contains("data.columns.prompt"), "{e}");
    // Columns on a shipped TSV: refused when the file is read.
    let e = err(
        "configs/lotr-glue/rte-lotr-r32.toml",
        &["data.columns.label=\"y\""],
    );
    assert!(e.contains("fixed layouts"), "{e}");
}

#[test]
fn check_reads_the_data_that_is_present() {
    let parquet = root().join("tests/fixtures/hf-datasets/gsm8k-200.parquet");
    let recipe = "configs/stories260k-sorsa.toml";
    let train = format!("data.train=\"{}\"", parquet.display());
    let report = check(recipe, &[&train, "data.format=\"auto\""]).unwrap();
    assert_eq!(report.rows_checked, 8);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let e = check(recipe, &[&train, "data.format=\"query_response\""])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&parquet.display().to_string()) && e.contains("no column `query`"),
        "{e}"
    );
    let ok = check(
        recipe,
        &[
            &train,
            "data.columns={ prompt = \"question\", response = \"answer\" }",
        ],
    )
    .unwrap();
    assert_eq!(ok.rows_checked, 8);

    // The 7B recipes' data is not in the repository: reported, not failed.
    let report = check("configs/sorsa-metamath/llama2-7b-sorsa.toml", &[]).unwrap();
    assert_eq!(report.rows_checked, 0);
    assert!(
        report.warnings[0].contains("MetaMathQA-395K.json"),
        "{:?}",
        report.warnings
    );

    // Chat data is rendered with the tokenizer's template.
    let chat = root().join("tests/fixtures/hf-datasets/chat.parquet");
    let tokenizer = root().join("tests/fixtures/chat-stories260K/tokenizer.json");
    let sets = [
        format!("data.train=\"{}\"", chat.display()),
        "data.format=\"messages\"".to_string(),
        format!("model.tokenizer=\"{}\"", tokenizer.display()),
    ];
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let report = check(recipe, &sets).unwrap();
    assert_eq!(report.rows_checked, 8);
    // The stories260K tokenizer has no chat template.
    let e = check(recipe, &sets[..2]).unwrap_err().to_string();
    assert!(e.contains("no chat template"), "{e}");
}
