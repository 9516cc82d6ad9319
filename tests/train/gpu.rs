//! wgpu (`--features wgpu`; on a machine without a GPU, Mesa's llvmpipe): six steps of every
//! method track the CPU run's losses, and a run stopped and resumed on wgpu ends with the
//! uninterrupted run's adapter.

use burn::tensor::backend::AutodiffBackend;
use burn_peft::backend::{Cpu, Train as TrainOn, Wgpu};
use burn_peft::train::metrics::MetricsLog;
use burn_peft::train::trainer::{TrainOptions, train};

use crate::common::*;

const STEPS: usize = 6;

/// The per-step losses of the first `STEPS` steps of the quick recipe with `extra` on `B`.
fn losses<B: AutodiffBackend>(tag: &str, extra: &[&str]) -> Vec<f64> {
    let recipe = quick_recipe(tag, extra);
    let options = TrainOptions {
        quiet: true,
        stop_after: Some(STEPS),
        ..TrainOptions::default()
    };
    train::<B>(&recipe, &Default::default(), &options).unwrap();
    let log = MetricsLog::read(&recipe.run.output_dir.join("metrics.jsonl")).unwrap();
    std::fs::remove_dir_all(&recipe.run.output_dir).unwrap();
    log.iter().map(|record| record.loss).collect()
}

#[test]
fn every_method_tracks_the_cpu_losses_on_wgpu() {
    // Every method, and SORSA with its regularizer in the second mode too.
    let separate: (&str, &[&str]) = ("sorsa-separate", &["adapter.regularizer_mode=\"separate\""]);
    let cases = METHODS.into_iter().chain(std::iter::once(separate));
    for (name, extra) in cases {
        let cpu = losses::<TrainOn<Cpu>>(&format!("gpu-{name}-cpu"), extra);
        let gpu = losses::<TrainOn<Wgpu>>(&format!("gpu-{name}-wgpu"), extra);
        assert_eq!(cpu.len(), STEPS, "{name}");
        assert_eq!(gpu.len(), STEPS, "{name}");
        for (step, (c, g)) in cpu.iter().zip(&gpu).enumerate() {
            assert!(
                (c - g).abs() <= 1e-3,
                "{name}, step {}: wgpu loss {g:.6} vs cpu {c:.6}",
                step + 1
            );
        }
    }
}

#[test]
fn a_resumed_wgpu_run_ends_where_the_uninterrupted_one_does() {
    type T = TrainOn<Wgpu>;
    let quiet = TrainOptions {
        quiet: true,
        ..Default::default()
    };
    let full = quick_recipe("gpu-full", &[]);
    train::<T>(&full, &Default::default(), &quiet).unwrap();
    let split = quick_recipe("gpu-split", &[]);
    let stopped = train::<T>(
        &split,
        &Default::default(),
        &TrainOptions {
            stop_after: Some(4),
            ..quiet.clone()
        },
    )
    .unwrap();
    assert_eq!(stopped.steps, 4);
    train::<T>(
        &split,
        &Default::default(),
        &TrainOptions {
            resume: true,
            ..quiet
        },
    )
    .unwrap();
    assert_same_adapters(&full.run.output_dir, &split.run.output_dir, 2e-5);
    for dir in [&full.run.output_dir, &split.run.output_dir] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}
