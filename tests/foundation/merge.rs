//! Merging gives a plain linear with the adapted layer's outputs, and unmerging restores the
//! base (issue test 6).

use burn::module::AutodiffModule;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn_peft::adapter::{AdaptedGroup, AdaptedLinear, AdapterInit};

use super::common::*;

#[test]
fn merged_linear_matches_the_adapted_layer_after_training_and_unmerge_restores_it() {
    let w = random_weight(48, 64, 21);
    let x = inputs(16, 64, 22);
    for cfg in all_configs(6) {
        let mut init = AdapterInit::new(cfg.clone()).unwrap();
        let mut group = AdaptedGroup::new(vec![linear(&w, 1), linear(&w, 2)], &mut init).unwrap();
        let mut optim = AdamWConfig::new().init();
        for step in 0..4 {
            let target = inputs(16, 48, 100 + step);
            let loss = group
                .forward(x.clone())
                .into_iter()
                .map(|y| (y - target.clone()).square().mean())
                .reduce(|a, b| a + b)
                .unwrap();
            let grads = GradientsParams::from_grads(loss.backward(), &group);
            group = optim.step(2e-2, group, grads);
        }
        let trained = group.valid();
        let x = x.clone().inner();
        let adapted = trained.forward(x.clone());
        let bases: Vec<_> = trained.layers.iter().map(|l| l.base.weight.val()).collect();
        let adapters: Vec<_> = trained.layers.iter().map(|l| l.adapter.clone()).collect();
        let shared = trained.shared.clone();
        let merged = trained.merge();
        for (i, (linear, y)) in merged.iter().zip(&adapted).enumerate() {
            let err = max_rel_diff(linear.forward(x.clone()), y.clone());
            assert!(
                err < 1e-5,
                "{} layer {i}: merged output differs by {err:e}",
                describe(&cfg)
            );
        }
        let merged_weights: Vec<_> = merged.iter().map(|l| l.weight.val()).collect();
        for (i, ((linear, adapter), base)) in
            merged.into_iter().zip(adapters).zip(bases).enumerate()
        {
            let restored = AdaptedLinear::unmerge(linear, adapter, &shared);
            let err = max_rel_diff(restored.base.weight.val(), base);
            assert!(
                err < 1e-6,
                "{} layer {i}: unmerge differs from the base by {err:e}",
                describe(&cfg)
            );
            // merge(unmerge(x)) == x
            let again = restored.merged_weight(&shared);
            let err = max_rel_diff(again, merged_weights[i].clone());
            assert!(
                err < 1e-6,
                "{} layer {i}: merge(unmerge(W)) differs by {err:e}",
                describe(&cfg)
            );
        }
    }
}
