//! Burn's fused backends (burn-fusion: `backend::WgpuFused`, `backend::CudaFused`, what
//! `--device wgpu` and `--device cuda` run and what this suite runs on) against the CPU, on the
//! graphs Burn 0.21's fusion got wrong.
//!
//! The fault: burn-cubecl-fusion's fused matmul has an autotune candidate,
//! `fused_double_buffering_unit`, that autotune raises for fused blocks with several outputs
//! (`should_tune_double_buffering(num_out_buffers > 1, ..)`), and that writes wrong values when
//! such a block's elementwise part reads an operand broadcast against the product. Whether it
//! wins is measured, so the error comes and goes with the shapes, the machine and the autotune
//! cache (`target/autotune/`). With the cache edited to pick it, attention was wrong at every
//! length; autotune picked it for the WKV's one 8-step chunk, which was wrong, and for longer
//! WKVs, which were right. With `fused_simple_unit` every case was right. Our graphs were:
//!
//! ```text
//! attention: scores = q.reshape(..).matmul(kᵀ).mul_scalar(c)          // kept, and
//!            masked = scores.mask_fill(mask.expand(..), −∞)            // broadcast mask
//! RWKV6 WKV: out = scores.matmul(v) + Σ(r·k·u)[L, 1] * v               // broadcast bonus,
//!            r_read = r * exp(c_before), k_carry = …                   // queued after it
//! ```
//!
//! Each is now built so that no broadcast operand reaches the matmul's fused block (attention
//! scales `q` first; the WKV queues its elementwise terms, the bonus among them, before the
//! matmul): see
//! [`burn_peft::model::attention::grouped_attention`] and
//! [`burn_peft::model::wkv::wkv6_chunked`]. No upstream issue matches; Burn's fusion fixes
//! after 0.21 (#5134, #5138, #5400) are not backported. Every other test of this suite runs
//! fused too.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use burn_peft::adapter::{AdapterConfig, Method, Targets};
use burn_peft::backend::{Cpu, Train};
use burn_peft::model::attention::{attention_mask, grouped_attention};
use burn_peft::model::decoder::Decoder;
use burn_peft::model::inject_adapters;
use burn_peft::model::wkv::{CHUNK, WkvInputs, wkv6_chunked, wkv6_recurrent};

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

/// The chunked WKV (what the GPU backends run) against the CPU's step-by-step recurrence, one
/// to several chunks, from the empty state and from a given one: at 8 steps (one chunk of 8,
/// a block with the broadcast bonus) the fused backend was off by 3.
fn wkv_chunks_match_the_recurrence<Bk: Backend>(device: &Bk::Device) {
    fn wkv<B: Backend>(
        t: usize,
        with_state: bool,
        chunked: bool,
        device: &B::Device,
    ) -> [Tensor<Cpu, 4>; 2] {
        let (b, h, n) = (1, 4, 16);
        let input = |seed| Tensor::<B, 4>::from_data(uniform([b, h, t, n], seed), device);
        // Inputs made by elementwise ops, as the model's are.
        let inputs = WkvInputs {
            r: input(1).mul_scalar(2.0),
            k: input(2).mul_scalar(2.0),
            v: input(3).mul_scalar(2.0),
            lw: input(4).exp().neg(),
            u: Tensor::from_data(uniform([h, n], 5), device),
        };
        let state = with_state.then(|| Tensor::from_data(uniform([b, h, n, n], 6), device));
        let (out, state) = if chunked {
            wkv6_chunked(inputs, state, CHUNK)
        } else {
            wkv6_recurrent(inputs, state)
        };
        [out, state].map(|x| Tensor::from_data(x.into_data(), &Default::default()))
    }
    for t in [1, 8, 12, 16, 24] {
        for with_state in [false, true] {
            let want = wkv::<Cpu>(t, with_state, false, &Default::default());
            let got = wkv::<Bk>(t, with_state, true, device);
            for ((w, g), what) in want.into_iter().zip(got).zip(["output", "state"]) {
                let err = max_abs_diff(g, w);
                assert!(
                    err < 1e-4,
                    "{t} steps (state given: {with_state}): {what} differs by {err:e}"
                );
            }
        }
    }
}

backend_tests!(
    sorsa_logits_under_autodiff_match_the_cpu,
    grouped_attention_under_autodiff_matches_the_cpu,
    wkv_chunks_match_the_recurrence
);
