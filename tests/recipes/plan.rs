//! `burn-peft plan`: its parameter parts are exactly what the trainer's memory report counts
//! for the model training builds (per method, in f32 and bf16), and its estimate for the
//! published 7B recipes behaves as a user relies on (bf16 halves the base, checkpointing
//! shrinks activations).

use burn::tensor::DType;
use burn_peft::backend::{Cpu, Train};
use burn_peft::model::decoder::Decoder;
use burn_peft::model::{Precision, inject_adapters};
use burn_peft::persist::adapter::InitialAdapters;
use burn_peft::train::memory::{MemoryMonitor, MemorySource, ParamBytes, initial_bytes};
use burn_peft::train::memory_plan::MemoryPlan;
use burn_peft::train::recipe::Recipe;

use crate::{architecture_of, root};

type B = Train<Cpu>;

/// The parts the trainer reports before measuring anything: built as `train` builds them.
fn trainer_parts(recipe: &Recipe) -> [u64; 4] {
    let device = Default::default();
    let (model, _) =
        Decoder::<B>::load_as(&recipe.model.path, recipe.model.precision, &device).unwrap();
    let (model, _) = inject_adapters(model, &recipe.adapter).unwrap();
    let snapshot = initial_bytes(&InitialAdapters::of(&model));
    let report = MemoryMonitor::new(ParamBytes::of(&model), snapshot, MemorySource::Unmeasured)
        .report()
        .clone();
    [
        report.base,
        report.adapters,
        report.gradients,
        report.optimizer,
    ]
}

#[test]
fn plan_counts_the_parameters_the_trainer_holds() {
    let cases: [(&str, &str, &[&str]); 6] = [
        ("tiny-llama", "lora", &[]),
        ("tiny-llama", "sorsa", &["adapter.gamma=4e-4"]),
        ("tiny-llama", "lora_fa", &["adapter.init=\"kaiming\""]),
        ("tiny-llama", "lotr", &[]),
        ("tiny-llama-bf16", "pissa", &["model.precision=\"bf16\""]),
        (
            "tiny-llama-bf16",
            "sorsa",
            &[
                "model.precision=\"auto\"",
                "adapter.modules_to_save=[\"lm_head\"]",
            ],
        ),
    ];
    for (fixture, method, extra) in cases {
        let dir = root().join("tests/fixtures").join(fixture);
        let mut sets = vec![
            format!("model.path=\"{}\"", dir.display()),
            format!("adapter.method=\"{method}\""),
            "model.precision=\"f32\"".into(),
            "adapter.gamma=0".into(),
            "adapter.rank=4".into(),
            "adapter.svd=\"exact\"".into(),
            "adapter.targets=\"all-linear\"".into(),
        ];
        sets.extend(extra.iter().map(|s| s.to_string()));
        let recipe = Recipe::load(None, &sets).unwrap();
        let plan = MemoryPlan::of(&recipe, None).unwrap();
        assert_eq!(
            [plan.base, plan.adapters, plan.gradients, plan.optimizer],
            trainer_parts(&recipe),
            "{fixture} {method} {extra:?}: base, adapters, gradients, optimizer"
        );
        let bf16 = recipe.model.precision != Precision::F32;
        assert_eq!(
            DType::from(plan.base_dtype).size(),
            if bf16 { 2 } else { 4 },
            "{fixture}"
        );
    }
}

#[test]
fn plan_for_the_published_7b_recipe() {
    let path = root().join("configs/sorsa-metamath/llama2-7b-sorsa.toml");
    let plan_with = |sets: &[&str]| {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        let recipe = Recipe::load(Some(&path), &sets).unwrap();
        let arch = architecture_of(&recipe.model.path);
        MemoryPlan::of(&recipe, Some(&arch)).unwrap()
    };
    let bf16 = plan_with(&[]);
    // Llama-2-7B: 6.74 B parameters, stored in bf16 as the recipe sets.
    assert_eq!(bf16.check.skeleton.total_params(), 6_738_415_616);
    assert_eq!(bf16.base, 6_738_415_616 * 2);
    assert_eq!(bf16.gradients, 4 * bf16.check.trainable_params as u64);
    assert_eq!(bf16.optimizer, 2 * bf16.gradients);
    assert_eq!((bf16.batch, bf16.seq), (2, 1024));

    let f32 = plan_with(&["model.precision=\"f32\""]);
    assert_eq!(f32.base, 2 * bf16.base);
    let checkpointed = plan_with(&["model.gradient_checkpointing=true"]);
    assert!(
        checkpointed.activations * 3 < bf16.activations,
        "checkpointing keeps one hidden state per layer: {} vs {}",
        checkpointed.activations,
        bf16.activations
    );
    assert_eq!(checkpointed.base, bf16.base);
    let text = checkpointed.to_string();
    assert!(text.contains("device peak"), "{text}");
    assert!(text.contains("activation checkpointing on"), "{text}");

    // Recomputing 24 of the 32 layers keeps the other 8 layers' graphs: in between.
    let partial = plan_with(&[
        "model.gradient_checkpointing=true",
        "model.recomputed_layers=24",
    ]);
    assert!(
        checkpointed.activations < partial.activations && partial.activations < bf16.activations,
        "{} < {} < {}",
        checkpointed.activations,
        partial.activations,
        bf16.activations
    );
    let text = partial.to_string();
    assert!(text.contains("on (24 of 32 layers recomputed)"), "{text}");

    // More layers than the model has, or the setting without checkpointing: refused by name.
    let recipe = |sets: &[&str]| {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        Recipe::load(Some(&path), &sets)
            .and_then(|recipe| {
                let arch = architecture_of(&recipe.model.path);
                MemoryPlan::of(&recipe, Some(&arch))
            })
            .unwrap_err()
            .to_string()
    };
    let err = recipe(&[
        "model.gradient_checkpointing=true",
        "model.recomputed_layers=33",
    ]);
    assert!(
        err.contains("model.recomputed_layers") && err.contains("32 decoder layers"),
        "{err}"
    );
    let err = recipe(&["model.recomputed_layers=8"]);
    assert!(
        err.contains("model.recomputed_layers") && err.contains("gradient_checkpointing"),
        "{err}"
    );
}
