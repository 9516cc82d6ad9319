//! Burn's fused backends (burn-fusion: `backend::WgpuFused`, `backend::CudaFused`) against
//! the CPU.
//!
//! Burn 0.21's fused matmul (burn-cubecl-fusion) has an autotune candidate,
//! `fused_double_buffering_unit`, that computes wrong values for this graph:
//!
//! ```text
//! scores = q.reshape([b, kv, n·s, d]).matmul(kᵀ).mul_scalar(c)   // kept, and
//! masked = scores.mask_fill(mask.expand([b, kv, n·s, t]), −∞)    // a broadcast mask
//! ```
//!
//! The matmul, the scaling and the fill become one fused block with two outputs (`scores` is
//! read again by the softmax's backward), and autotune prefers the double-buffered kernel for
//! blocks with several outputs; which candidate wins is measured, so the error comes and goes
//! with the shapes (on llvmpipe: from ~80 tokens on, or at every length once that kernel is
//! the cached winner). Without the scaling in the block, with a full-size mask or with a
//! materialised `q` the same kernel is right. Attention used to build exactly this graph
//! under autodiff; it now scales `q` before the product on the GPU backends
//! ([`burn_peft::model::attention::grouped_attention`]). No upstream issue matches it; Burn's
//! fusion fixes after 0.21 (#5134, #5138, #5400) are not backported.
//!
//! Fusion is not the default yet: RWKV6's greedy generation through its recurrent state
//! gives other tokens on the fused wgpu backend (the ignored test below; its logits over a
//! whole prompt match). The unfused backends run every other GPU test.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use burn_peft::adapter::{AdapterConfig, Method, Targets};
use burn_peft::backend::{Cpu, Train};
use burn_peft::model::attention::{attention_mask, grouped_attention};
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
    let mask = padding_mask(batch, seq, 70);
    let ids = Tensor::<Bk, 2, Int>::from_data(TensorData::new(ids, [batch, seq]), device);
    let mask = Tensor::<Bk, 2, Int>::from_data(mask, device);
    let logits = model.forward(ids, Some(mask));
    Tensor::from_data(logits.into_data(), &Default::default())
}

/// `[batch, seq]`, 1 for real tokens: the first row full, the others `real` tokens long.
fn padding_mask(batch: usize, seq: usize, real: usize) -> TensorData {
    let mask: Vec<i64> = (0..batch * seq)
        .map(|i| i64::from(i / seq == 0 || i % seq < real))
        .collect();
    TensorData::new(mask, [batch, seq])
}

/// SORSA on every linear and on `v_proj` alone, ranks 4 and 8, under autodiff on `Bk`: the
/// case fusion used to get wrong (logits off by 5.48).
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

/// Deterministic values in [-0.5, 0.5).
fn uniform<const D: usize>(shape: [usize; D], seed: u64) -> TensorData {
    let mut state = seed;
    let values: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    TensorData::new(values, shape)
}

/// Grouped-query attention (8 query heads over 4 key/value heads, head dim 8, a padded row)
/// under autodiff with `v` tracked, at lengths either side of where the fused matmul's
/// candidates change, against the CPU.
fn grouped_attention_under_autodiff_matches_the_cpu<Bk: Backend>(device: &Bk::Device) {
    fn attend<B: Backend>(seq: usize, device: &B::Device) -> Tensor<Cpu, 4> {
        let b = 2;
        // `q` from an elementwise op, as RoPE's output is: its reshape is a view.
        let q = Tensor::<B, 4>::from_data(uniform([b, 8, seq, 8], 1), device).mul_scalar(2.0);
        let k = Tensor::<B, 4>::from_data(uniform([b, 4, seq, 8], 2), device);
        let v = Tensor::<B, 4>::from_data(uniform([b, 4, seq, 8], 3), device).require_grad();
        let key_mask = Tensor::from_data(padding_mask(b, seq, seq * 3 / 4), device);
        let mask = attention_mask(Some(key_mask), [b, seq], 0, None, device);
        let out = grouped_attention(q, k, v, mask);
        Tensor::from_data(out.into_data(), &Default::default())
    }
    for seq in [8, 16, 32, 64, 96] {
        let want = attend::<Cpu>(seq, &Default::default());
        let err = max_abs_diff(attend::<Train<Bk>>(seq, device), want);
        assert!(err < 1e-5, "{seq} tokens: attention differs by {err:e}");
    }
}

backend_tests!(
    sorsa_logits_under_autodiff_match_the_cpu,
    grouped_attention_under_autodiff_matches_the_cpu
);

/// The same checks on the fused backends.
macro_rules! fused_tests {
    ($module:ident, $backend:ty) => {
        mod $module {
            #[test]
            fn sorsa_logits_under_autodiff_match_the_cpu() {
                super::sorsa_logits_under_autodiff_match_the_cpu::<$backend>(&Default::default());
            }

            #[test]
            fn grouped_attention_under_autodiff_matches_the_cpu() {
                super::grouped_attention_under_autodiff_matches_the_cpu::<$backend>(
                    &Default::default(),
                );
            }

            #[test]
            #[ignore = "burn-fusion 0.21: RWKV6's generation through its state gives other tokens"]
            fn rwkv6_greedy_tokens_match_the_rwkv_package() {
                crate::decoder::rwkv6::greedy_tokens_match_the_rwkv_package::<$backend>(
                    &Default::default(),
                );
            }
        }
    };
}

#[cfg(feature = "wgpu")]
fused_tests!(wgpu_fused, burn_peft::backend::WgpuFused);
#[cfg(feature = "cuda")]
fused_tests!(cuda_fused, burn_peft::backend::CudaFused);
