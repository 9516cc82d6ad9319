//! Training with a bf16 base: the default recipe's loss curve against the f32 run, the memory
//! report, f32-only gradients, and per-layer recomputation giving the same gradients.

use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{DType, ElementConversion, FloatDType, Int, Tensor, TensorData};
use burn_peft::adapter::{AdapterConfig, Method, Targets};
use burn_peft::backend::{Cpu, Train as TrainOn};
use burn_peft::io::checkpoint::{Checkpoint, OutTensor, write_safetensors};
use burn_peft::model::Precision;
use burn_peft::model::decoder::Decoder;
use burn_peft::model::inject_adapters;
use burn_peft::model::loss::causal_lm_loss;
use burn_peft::train::metrics::MetricsLog;
use burn_peft::train::recipe::Recipe;
use burn_peft::train::recompute::causal_lm_gradients;
use burn_peft::train::{TrainOptions, TrainSummary, train};

use crate::common::{root, temp};

type T = TrainOn<Cpu>;

fn cpu() -> burn::tensor::Device<Cpu> {
    Default::default()
}

/// stories260K's HF folder with every weight rounded to bf16, as `save_pretrained` in bf16
/// writes it.
fn bf16_stories(dir: &Path) -> PathBuf {
    let source = root().join("models/stories260K/hf");
    let out = dir.join("stories260K-bf16");
    std::fs::create_dir_all(&out).unwrap();
    let ckpt = Checkpoint::open_dir(&source).unwrap();
    let tensors = ckpt
        .names()
        .into_iter()
        .map(|name| {
            let (values, shape) = ckpt.read_f32(name).unwrap();
            OutTensor::f32_as(name.to_string(), shape, &values, FloatDType::BF16)
        })
        .collect();
    write_safetensors(&out.join("model.safetensors"), tensors, None).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(source.join("config.json")).unwrap())
            .unwrap();
    config["torch_dtype"] = "bfloat16".into();
    std::fs::write(out.join("config.json"), config.to_string()).unwrap();
    for file in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(source.join(file), out.join(file)).unwrap();
    }
    out
}

/// The embedded default recipe on `model`, writing to `out` (paths made absolute).
fn default_recipe(model: &Path, out: &Path) -> Recipe {
    let sets = [
        format!("model.path=\"{}\"", model.display()),
        format!(
            "data.train=\"{}\"",
            root().join("datasets/gsm8k/train.jsonl").display()
        ),
        format!("run.output_dir=\"{}\"", out.display()),
    ];
    Recipe::load(None, &sets).unwrap()
}

/// The first `steps` steps of `recipe` (its schedule unchanged).
fn run(recipe: &Recipe, steps: usize) -> TrainSummary {
    let options = TrainOptions {
        quiet: true,
        stop_after: Some(steps),
        ..TrainOptions::default()
    };
    train::<T>(recipe, &cpu(), &options).unwrap()
}

#[test]
fn bf16_stories260k_follows_the_f32_loss_curve() {
    let dir = temp("bf16-curve");
    std::fs::create_dir_all(&dir).unwrap();
    let bf16_model = bf16_stories(&dir);
    let f32_run = default_recipe(&root().join("models/stories260K/hf"), &dir.join("f32"));
    let bf16_run = default_recipe(&bf16_model, &dir.join("bf16"));
    assert_eq!(bf16_run.model.precision, Precision::Auto);
    // The first 30 of the recipe's 64 steps (its logged steps 10, 20, 30) keep the test short;
    // the README has the full run.
    let f32_summary = run(&f32_run, 30);
    let bf16_summary = run(&bf16_run, 30);

    let f32_curve = MetricsLog::read(&dir.join("f32/metrics.jsonl")).unwrap();
    let bf16_curve = MetricsLog::read(&dir.join("bf16/metrics.jsonl")).unwrap();
    assert_eq!(f32_curve.len(), 30);
    assert_eq!(bf16_curve.len(), 30);
    // Every step, not only the logged ones (every `log_every` = 10 steps).
    for (a, b) in f32_curve.iter().zip(&bf16_curve) {
        let rel = (b.loss - a.loss).abs() / a.loss;
        assert!(
            rel <= 0.02,
            "step {}: bf16 loss {:.4} vs f32 {:.4} ({:.2} %)",
            a.step,
            b.loss,
            a.loss,
            100.0 * rel
        );
    }

    // The memory report: exact parts, the bf16 base at half the f32 one, adapters f32 in both.
    let (m32, m16) = (
        f32_summary.memory.clone().unwrap(),
        bf16_summary.memory.clone().unwrap(),
    );
    assert_eq!(m16.base * 2, m32.base, "{m16:?} vs {m32:?}");
    assert_eq!(m16.gradients, m32.gradients);
    assert_eq!(m16.optimizer, 2 * m16.gradients);
    let peak = m16.peak.expect("peak RSS is measured on the CPU device");
    let parts = m16.base + m16.adapters + m16.gradients + m16.optimizer;
    assert!(peak >= parts + m16.activations.unwrap(), "{m16:?}");
    assert_eq!(parts + m16.activations.unwrap() + m16.other.unwrap(), peak);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every parameter that requires a gradient: id, dtype and rank.
struct Trainable(Vec<(burn::module::ParamId, DType, usize)>);

impl<B: burn::tensor::backend::Backend> ModuleVisitor<B> for Trainable {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if param.is_require_grad() {
            self.0.push((param.id, param.val().dtype(), D));
        }
    }
}

/// stories260K with SORSA on every linear layer, its adapters moved off their initial values
/// (so the gradients do not vanish anywhere), and a fixed batch.
fn adapted(precision: Precision) -> (Decoder<T>, [Tensor<T, 2, Int>; 3]) {
    let (model, _) =
        Decoder::<T>::load_as(&root().join("models/stories260K/hf"), precision, &cpu()).unwrap();
    let mut config = AdapterConfig::new(Method::Sorsa, 4);
    config.targets = Some(Targets::Pattern("all-linear".into()));
    let (model, _) = inject_adapters(model, &config).unwrap();
    let ids: Vec<i64> = (0..2 * 24).map(|i| (i * 37 + 5) % 512).collect();
    let ids = Tensor::<T, 2, Int>::from_data(TensorData::new(ids, [2, 24]), &cpu());
    let mask = Tensor::<T, 2, Int>::from_data(
        TensorData::new(
            (0..48).map(|i| i64::from(i < 24 || i % 24 < 20)).collect(),
            [2, 24],
        ),
        &cpu(),
    );
    let labels = burn_peft::model::loss::lm_labels(ids.clone(), Some(mask.clone()));
    (model, [ids, mask, labels])
}

#[test]
fn layer_recompute_gives_the_gradients_of_the_plain_backward() {
    for precision in [Precision::F32, Precision::Bf16] {
        let (model, [ids, mask, labels]) = adapted(precision);
        let mut trainable = Trainable(Vec::new());
        model.visit(&mut trainable);
        assert!(!trainable.0.is_empty());
        for (_, dtype, _) in &trainable.0 {
            assert_eq!(*dtype, DType::F32, "{precision}: adapters are f32");
        }

        let logits = model.forward(ids.clone(), Some(mask.clone()));
        let loss = causal_lm_loss(logits, labels.clone());
        let plain_loss: f64 = loss.clone().into_scalar().elem();
        let plain = GradientsParams::from_grads(loss.backward(), &model);
        // Every layer recomputed, and the first two only (the others keep their graph).
        let layers = model.layers.len();
        for recomputed_layers in [layers, 2] {
            let (loss_tensor, recomputed) = causal_lm_gradients(
                &model,
                ids.clone(),
                mask.clone(),
                labels.clone(),
                1.0,
                7,
                recomputed_layers,
            );
            let loss: f64 = loss_tensor.into_scalar().elem();
            assert!(
                (loss - plain_loss).abs() < 1e-6,
                "{precision}, {recomputed_layers} recomputed: {loss} vs {plain_loss}"
            );

            // Exactly the trainable parameters get a gradient, in f32; frozen bf16 weights none.
            assert_eq!(plain.len(), trainable.0.len(), "{precision}");
            assert_eq!(recomputed.len(), trainable.0.len(), "{precision}");
            let tolerance = if precision == Precision::F32 {
                1e-5
            } else {
                2e-2
            };
            for (id, _, rank) in &trainable.0 {
                let flat = |g: &GradientsParams| -> Tensor<Cpu, 1> {
                    let missing = "a gradient for every trainable parameter";
                    match rank {
                        2 => g.get::<Cpu, 2>(*id).expect(missing).flatten(0, 1),
                        _ => g.get::<Cpu, 1>(*id).expect(missing),
                    }
                };
                let (a, b) = (flat(&plain), flat(&recomputed));
                assert_eq!(a.dtype(), DType::F32);
                let scale: f64 = a.clone().abs().max().into_scalar().elem();
                let err: f64 = (a - b).abs().max().into_scalar().elem();
                assert!(
                    err <= tolerance * scale.max(1e-6),
                    "{precision}, {recomputed_layers} recomputed: gradient differs by {err:e} (scale {scale:e})"
                );
            }
        }
    }
}
