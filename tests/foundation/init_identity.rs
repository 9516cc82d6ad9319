//! At initialisation every adapter leaves the layer's output unchanged (issue test 1), and the
//! SVD split is exact whatever SVD engine ran.

use burn_peft::adapter::{AdaptedGroup, AdapterInit};

use super::common::*;

#[test]
fn every_adapter_starts_at_the_base_output() {
    for (name, w) in test_weights() {
        let (out_f, in_f) = (w.nrows(), w.ncols());
        let x = inputs(16, in_f, 9);
        let base = linear(&w, 4);
        let want = base.forward(x.clone());
        for cfg in all_configs(4) {
            let mut init = AdapterInit::new(cfg.clone()).unwrap();
            // Two copies of the layer form a group (LoTR shares factors across it).
            let group = AdaptedGroup::new(vec![base.clone(), linear(&w, 4)], &mut init)
                .unwrap_or_else(|e| panic!("{name} {}: {e}", describe(&cfg)));
            for (i, got) in group.forward(x.clone()).into_iter().enumerate() {
                let err = max_rel_diff(got, want.clone());
                assert!(
                    err < 1e-5,
                    "{name} [{out_f}, {in_f}] {} layer {i}: relative error {err:e}",
                    describe(&cfg)
                );
            }
        }
    }
}

#[test]
fn the_split_reconstructs_the_weight_exactly() {
    let w = random_weight(64, 48, 11);
    let base = linear(&w, 1);
    let original = base.weight.val();
    for cfg in all_configs(8) {
        let mut init = AdapterInit::new(cfg.clone()).unwrap();
        let group = AdaptedGroup::new(vec![base.clone()], &mut init).unwrap();
        let merged = group.layers[0].merged_weight(&group.shared);
        let err = max_rel_diff(merged, original.clone());
        assert!(
            err < 1e-6,
            "{}: W_res + ΔW differs from W by {err:e}",
            describe(&cfg)
        );
    }
}
