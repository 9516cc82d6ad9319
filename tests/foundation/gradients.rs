//! Gradients reach exactly the trainable parameters; frozen tensors stay bit-identical through
//! an AdamW step (issue test 3). The regularizer's two application modes agree (METHODS.md).

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer, SgdConfig};
use burn::tensor::{Tensor, TensorData};
use burn_peft::adapter::{
    AdaptedGroup, AdapterConfig, AdapterInit, Init, Method, ParamReport, RegularizerMode,
};
use burn_peft::train::PeftStep;

use super::common::*;

struct GradPresence<'a> {
    grads: &'a <B as burn::tensor::backend::AutodiffBackend>::Gradients,
    path: Vec<String>,
    found: Vec<(String, bool)>,
}

impl ModuleVisitor<B> for GradPresence<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let has = param.val().grad(self.grads).is_some();
        self.found.push((self.path.join("."), has));
    }
}

struct Snapshot {
    path: Vec<String>,
    values: Vec<(String, TensorData)>,
}

impl ModuleVisitor<B> for Snapshot {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.values
            .push((self.path.join("."), param.val().into_data()));
    }
}

fn snapshot(group: &AdaptedGroup<B>) -> Vec<(String, TensorData)> {
    let mut s = Snapshot {
        path: vec![],
        values: vec![],
    };
    group.visit(&mut s);
    s.values
}

/// Parameter paths that must receive gradients, per method (two layers in the group).
fn expected_trainable(method: Method) -> Vec<&'static str> {
    match method {
        Method::Lora => vec![
            "layers.0.adapter.Lora.a",
            "layers.0.adapter.Lora.b",
            "layers.1.adapter.Lora.a",
            "layers.1.adapter.Lora.b",
        ],
        Method::Pissa => vec![
            "layers.0.adapter.Pissa.a",
            "layers.0.adapter.Pissa.b",
            "layers.1.adapter.Pissa.a",
            "layers.1.adapter.Pissa.b",
        ],
        Method::LoraFa => vec!["layers.0.adapter.LoraFa.b", "layers.1.adapter.LoraFa.b"],
        Method::Sorsa => vec![
            "layers.0.adapter.Sorsa.a",
            "layers.0.adapter.Sorsa.s",
            "layers.0.adapter.Sorsa.b",
            "layers.1.adapter.Sorsa.a",
            "layers.1.adapter.Sorsa.s",
            "layers.1.adapter.Sorsa.b",
        ],
        Method::Lotr => vec![
            "layers.0.adapter.Lotr.core",
            "layers.1.adapter.Lotr.core",
            "shared.lotr.0.r",
            "shared.lotr.0.l",
        ],
    }
}

fn toy_loss(group: &AdaptedGroup<B>, x: Tensor<B, 2>) -> Tensor<B, 1> {
    group
        .forward(x)
        .into_iter()
        .map(|y| (y - 0.5).square().mean())
        .reduce(|a, b| a + b)
        .unwrap()
}

#[test]
fn gradients_reach_exactly_the_trainable_parameters() {
    let w = random_weight(24, 16, 3);
    let x = inputs(8, 16, 4);
    for cfg in all_configs(4) {
        let mut init = AdapterInit::new(cfg.clone()).unwrap();
        let group = AdaptedGroup::new(vec![linear(&w, 1), linear(&w, 2)], &mut init).unwrap();
        let before = snapshot(&group);

        // A first step so zero-initialised factors (LoRA's B, LoTR's cores) no longer block
        // the gradient of their partner factor.
        let mut optim = AdamWConfig::new().init();
        let grads = toy_loss(&group, x.clone()).backward();
        let group = optim.step(
            1e-2,
            group.clone(),
            GradientsParams::from_grads(grads, &group),
        );

        let grads = toy_loss(&group, x.clone()).backward();
        let mut presence = GradPresence {
            grads: &grads,
            path: vec![],
            found: vec![],
        };
        group.visit(&mut presence);
        let mut with_grad: Vec<String> = presence
            .found
            .iter()
            .filter(|(_, g)| *g)
            .map(|(p, _)| p.clone())
            .collect();
        let mut expected: Vec<String> = expected_trainable(cfg.method)
            .into_iter()
            .map(String::from)
            .collect();
        with_grad.sort();
        expected.sort();
        assert_eq!(with_grad, expected, "{}", describe(&cfg));

        // Frozen tensors are bit-identical after the step; trainable ones moved.
        let after = snapshot(&group);
        for ((path, old), (_, new)) in before.iter().zip(&after) {
            if expected.contains(path) {
                assert_ne!(old, new, "{}: {path} did not train", describe(&cfg));
            } else {
                assert_eq!(old, new, "{}: frozen {path} changed", describe(&cfg));
            }
        }

        // Accounting agrees with the gradient flow.
        let report = ParamReport::of(&group);
        let trainable: Vec<String> = report
            .entries
            .iter()
            .filter(|e| e.trainable)
            .map(|e| e.path.clone())
            .collect();
        let mut trainable_sorted = trainable.clone();
        trainable_sorted.sort();
        assert_eq!(trainable_sorted, expected, "{}: accounting", describe(&cfg));
        assert_eq!(report.total(), report.trainable() + report.frozen());
    }
}

#[test]
fn lotr_parameter_count_matches_the_formula() {
    // (out + in)·r + N·r² for a group of N layers.
    let (out_f, in_f, r, n) = (24, 16, 4, 3);
    let w = random_weight(out_f, in_f, 3);
    let cfg = AdapterConfig::new(Method::Lotr, r);
    let bases = (0..n).map(|i| linear(&w, i as u64)).collect();
    let group = AdaptedGroup::new(bases, &mut AdapterInit::new(cfg).unwrap()).unwrap();
    let report = ParamReport::of(&group);
    assert_eq!(report.trainable(), (out_f + in_f) * r + n * r * r);
    assert_eq!(report.frozen(), n * (out_f * in_f + out_f));
    assert!(
        report
            .to_string()
            .starts_with("trainable params: 208 || all params: 1,432 || trainable%: 14.5251")
    );
}

/// A SORSA group pushed off orthonormality by a few large AdamW steps on a toy loss.
fn perturbed_sorsa() -> AdaptedGroup<B> {
    let w = random_weight(24, 16, 8);
    let cfg = AdapterConfig::new(Method::Sorsa, 4);
    let group = AdaptedGroup::new(
        vec![linear(&w, 1), linear(&w, 2)],
        &mut AdapterInit::new(cfg).unwrap(),
    )
    .unwrap();
    let mut optim = AdamWConfig::new().init();
    let mut group = group;
    for _ in 0..3 {
        let grads = toy_loss(&group, inputs(8, 16, 4)).backward();
        let g = GradientsParams::from_grads(grads, &group);
        group = optim.step(0.05, group, g);
    }
    group
}

#[test]
fn reference_and_separate_modes_take_the_same_step_on_the_regularizer_alone() {
    let gamma = 4e-2;
    let base_lr = 3e-2;
    let group = perturbed_sorsa();
    let start = burn_peft::adapter::regularizer::regularizer_value(&group);
    assert!(
        start > 1e-2,
        "the toy steps should break orthonormality, got {start}"
    );
    let mut results = Vec::new();
    for mode in [RegularizerMode::Reference, RegularizerMode::Separate] {
        let mut cfg = AdapterConfig::new(Method::Sorsa, 4).with_gamma(gamma);
        cfg.regularizer_mode = mode;
        let step = PeftStep::new(&cfg, base_lr, Some(1.0), 1);
        // Plain SGD at η = η₀ and no task gradient: reference adds (γ/η₀)·∇ and steps by η₀,
        // separate steps by γ. Both move p by −γ∇L_reg.
        let mut sgd = SgdConfig::new().init();
        let (next, report) = step
            .apply(group.clone(), &mut sgd, GradientsParams::new(), base_lr)
            .unwrap();
        assert!((report.regularizer - start).abs() < 1e-9);
        results.push(snapshot(&next));
        let after = burn_peft::adapter::regularizer::regularizer_value(&next);
        assert!(
            after < start,
            "{mode:?}: regularizer {start} -> {after} did not decrease"
        );
    }
    for ((path, a), (_, b)) in results[0].iter().zip(&results[1]) {
        let a = a.to_vec::<f32>().unwrap();
        let b = b.to_vec::<f32>().unwrap();
        let diff = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 1e-6, "{path}: modes differ by {diff}");
    }
}

#[test]
fn regularizer_is_weighted_by_gamma_over_base_lr_in_reference_mode() {
    let group = perturbed_sorsa();
    let reg = burn_peft::adapter::regularizer::regularizer_gradients(&group);
    let cfg = AdapterConfig::new(Method::Sorsa, 4).with_gamma(4e-4);
    let step = PeftStep::new(&cfg, 3e-5, None, 1);
    let mut sgd = SgdConfig::new().init();
    // One SGD step at rate η: Δp = −η·(γ/η₀)·∇L_reg.
    let lr = 1e-5;
    let (next, _) = step
        .apply(group.clone(), &mut sgd, GradientsParams::new(), lr)
        .unwrap();
    let before = snapshot(&group);
    let after = snapshot(&next);
    let (_, grad_a0) = &reg.grads[0];
    let a_index = before
        .iter()
        .position(|(p, _)| p == "layers.0.adapter.Sorsa.a")
        .unwrap();
    let moved: Vec<f32> = before[a_index]
        .1
        .to_vec::<f32>()
        .unwrap()
        .iter()
        .zip(after[a_index].1.to_vec::<f32>().unwrap())
        .map(|(b, a)| b - a)
        .collect();
    let want: Vec<f32> = to_vec(grad_a0.clone())
        .iter()
        .map(|g| g * (lr * 4e-4 / 3e-5) as f32)
        .collect();
    for (m, w) in moved.iter().zip(&want) {
        assert!(
            (m - w).abs() <= 1e-6 + 1e-3 * w.abs(),
            "moved {m} expected {w}"
        );
    }
}

#[test]
fn global_norm_clipping_scales_all_gradients_jointly() {
    let w = random_weight(24, 16, 3);
    let cfg = AdapterConfig::new(Method::LoraFa, 4).with_init(Init::SvdSplit);
    let group = AdaptedGroup::new(
        vec![linear(&w, 1), linear(&w, 2)],
        &mut AdapterInit::new(cfg).unwrap(),
    )
    .unwrap();
    let grads = toy_loss(&group, inputs(8, 16, 4)).backward();
    let mut g = GradientsParams::from_grads(grads, &group);
    let norm = burn_peft::train::clip_global_norm(&group, &mut g, 1e-3);
    assert!(norm > 1e-3);
    let clipped = burn_peft::train::clip_global_norm(&group, &mut g, f64::INFINITY);
    assert!(
        (clipped - 1e-3).abs() < 1e-6,
        "norm after clipping {clipped}"
    );
}
