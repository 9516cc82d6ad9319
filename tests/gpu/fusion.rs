//! A SORSA-adapted stories260K under autodiff, 96 tokens, against the CPU. Burn 0.21's fused
//! wgpu backend (`burn::backend::Wgpu`, burn-fusion) gets it wrong: with SORSA on `v_proj`,
//! logits from the second position on drift away (max 5.48 at 96 tokens; fine at 64 tokens,
//! fine without autodiff, fine for LoRA, PiSSA and LoRA-FA, fine with Burn's composite
//! softmax in place of the lean-backward attention, fine on the unfused backend). That is why
//! `backend::Wgpu` is the unfused backend; the ignored test below tells when a Burn upgrade
//! fixes fusion (`cargo test --features wgpu --test gpu -- --ignored`).

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use burn_peft::adapter::{AdapterConfig, Method, Targets};
use burn_peft::backend::{Cpu, Train};
use burn_peft::model::decoder::Decoder;
use burn_peft::model::inject_adapters;

use crate::train_common::{max_abs_diff, root};

/// Logits of stories260K with SORSA (rank `rank`, on `targets`) for a fixed `[2, 96]` batch
/// whose second row is padded, brought back to the CPU.
fn sorsa_logits<Bk: Backend>(targets: &str, rank: usize, device: &Bk::Device) -> Tensor<Cpu, 3> {
    let base = root().join("models/stories260K/hf");
    let (model, _) = Decoder::<Bk>::load(&base, device).unwrap();
    let mut config = AdapterConfig::new(Method::Sorsa, rank);
    config.targets = Some(Targets::Pattern(targets.into()));
    let (model, _) = inject_adapters(model, &config).unwrap();
    let (batch, seq) = (2, 96);
    let ids: Vec<i64> = (0..batch * seq).map(|i| (i * 37 % 500) as i64).collect();
    let mask: Vec<i64> = (0..batch * seq)
        .map(|i| i64::from(i / seq == 0 || i % seq < 70))
        .collect();
    let ids = Tensor::<Bk, 2, Int>::from_data(TensorData::new(ids, [batch, seq]), device);
    let mask = Tensor::<Bk, 2, Int>::from_data(TensorData::new(mask, [batch, seq]), device);
    let logits = model.forward(ids, Some(mask));
    Tensor::from_data(logits.into_data(), &Default::default())
}

/// SORSA on every linear and on `v_proj` alone, ranks 4 and 8, under autodiff on `Bk`.
fn sorsa_logits_under_autodiff_match_the_cpu<Bk: Backend>(device: &Bk::Device) {
    for targets in ["all-linear", r".*\.v_proj"] {
        for rank in [4, 8] {
            let want = sorsa_logits::<Cpu>(targets, rank, &Default::default());
            let got = sorsa_logits::<Train<Bk>>(targets, rank, device);
            let err = max_abs_diff(got, want);
            assert!(
                err < 1e-4,
                "SORSA on {targets}, rank {rank}: logits differ by {err:e}"
            );
        }
    }
}

backend_tests!(sorsa_logits_under_autodiff_match_the_cpu);

/// The same on Burn's fused wgpu backend: fails on Burn 0.21 (see the module docs).
#[cfg(feature = "wgpu")]
#[test]
#[ignore = "Burn 0.21's burn-fusion computes this wrong (logits off by 5.48); backend::Wgpu is unfused"]
fn fused_wgpu_sorsa_logits_under_autodiff_match_the_cpu() {
    sorsa_logits_under_autodiff_match_the_cpu::<burn::backend::Wgpu<f32>>(&Default::default());
}
