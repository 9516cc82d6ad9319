//! A classification fine-tune on a shipped GLUE task: stories260K with a fresh `score` head.

use burn_peft::train::metrics::MetricsLog;
use burn_peft::train::trainer::{TrainOptions, train};

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
