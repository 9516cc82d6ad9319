//! LoTR shares L and R for real (issue test 5): one parameter pair, whose gradient is the sum of
//! the per-layer contributions, and whose update every layer sees.

use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::Tensor;
use burn_peft::adapter::{AdaptedGroup, AdapterConfig, AdapterInit, Init, Method};

use super::common::*;

fn layer_loss(group: &AdaptedGroup<B>, layer: usize, x: Tensor<B, 2>) -> Tensor<B, 1> {
    group.layers[layer]
        .forward(x, &group.shared)
        .square()
        .mean()
}

#[test]
fn gradient_of_shared_factors_is_the_sum_over_layers() {
    let w0 = random_weight(24, 16, 1);
    let w1 = random_weight(24, 16, 2);
    // SVD (Tucker-2) init gives non-zero cores, so both layers contribute to ∂L and ∂R.
    let cfg = AdapterConfig::new(Method::Lotr, 4).with_init(Init::Svd);
    let group = AdaptedGroup::new(
        vec![linear(&w0, 1), linear(&w1, 2)],
        &mut AdapterInit::new(cfg).unwrap(),
    )
    .unwrap();
    assert_eq!(group.shared.lotr.len(), 1, "one shared pair for the group");
    let x = inputs(8, 16, 3);
    let l = group.shared.lotr[0].l.val();
    let r = group.shared.lotr[0].r.val();

    let grads_0 = layer_loss(&group, 0, x.clone()).backward();
    let grads_1 = layer_loss(&group, 1, x.clone()).backward();
    let total = (layer_loss(&group, 0, x.clone()) + layer_loss(&group, 1, x.clone())).backward();
    for (name, factor) in [("L", &l), ("R", &r)] {
        let g0 = factor.grad(&grads_0).unwrap();
        let g1 = factor.grad(&grads_1).unwrap();
        let sum = factor.grad(&total).unwrap();
        assert!(
            max_rel_diff(g0.clone(), sum.clone()) > 1e-2,
            "{name}: layer 1 contributes nothing"
        );
        assert!(
            max_rel_diff(g1.clone(), sum.clone()) > 1e-2,
            "{name}: layer 0 contributes nothing"
        );
        let err = max_rel_diff(g0 + g1, sum);
        assert!(
            err < 1e-5,
            "{name}: ∂(l0 + l1) differs from ∂l0 + ∂l1 by {err:e}"
        );
    }

    // One step: the single L and R change, and both layers compute with the updated pair.
    let mut optim = AdamWConfig::new().init();
    let grads = GradientsParams::from_grads(total, &group);
    let stepped = optim.step(1e-2, group.clone(), grads);
    assert_eq!(stepped.shared.lotr.len(), 1);
    let new_l = stepped.shared.lotr[0].l.val();
    assert!(
        max_rel_diff(new_l.clone(), l.clone()) > 1e-4,
        "L did not move"
    );
    for layer in 0..2 {
        let core = &stepped.layers[layer];
        let burn_peft::adapter::Adapter::Lotr(c) = &core.adapter else {
            panic!()
        };
        let expected = stepped.shared.lotr[0]
            .r
            .val()
            .matmul(c.core.val())
            .matmul(new_l.clone())
            .mul_scalar(c.scale);
        let delta = core.adapter.delta_weight(&stepped.shared);
        assert!(max_rel_diff(delta, expected) < 1e-6);
    }
}
