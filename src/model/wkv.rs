//! RWKV6's WKV recurrence (the "attention" of a Finch time-mix block), per head with a state
//! `S` of `[N, N]` (key index × value index):
//!
//! ```text
//! out_t = r_t (diag(u) k_tᵀ v_t + S_t)        S_{t+1} = k_tᵀ v_t + diag(w_t) S_t
//! ```
//!
//! with `w_t = exp(lw_t)` the data-dependent decay (`lw ≤ 0`) and `u` the bonus of the current
//! token (`time_faaaa`).
//!
//! [`wkv6`] computes it in chunks of [`CHUNK`] steps with matmuls (what training runs; exact
//! against [`wkv6_recurrent`], the step-by-step form, which the tests compare it with).
//! Numerical safety: with `c` the cumulative log-decay inside a chunk, the decay between steps
//! `s < t` is `exp(c_{t-1} - c_s)`. The usual factorisation `(r ⊙ e^{c}) (k ⊙ e^{-c})ᵀ`
//! overflows f32 once a chunk's decays pass e^88 (a trained Finch decays by up to e^-20 per step,
//! so within five steps); here every exponent is a difference of an earlier cumulative sum minus
//! a later one, `≤ 0`: inside the chunk the pairwise decays are formed explicitly (`[L, L, N]`),
//! across chunks the state carries `exp(c_last - c_s) ≤ 1` and is read with `exp(c_{t-1}) ≤ 1`.
//! What underflows to 0 is a decay below e^-103, whose true contribution is below f32's reach.
//! The recurrence runs in f32 whatever the model's dtype.

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, FloatDType, Tensor};

/// Steps per chunk: the pairwise decays cost `L` times an activation, the sequential part
/// `T / L` small matmuls.
pub const CHUNK: usize = 16;

pub use super::wkv_kernel::WkvInputs;

/// The WKV: outputs `[batch, heads, seq, head_size]` and the state after the last step
/// (`[batch, heads, N, N]`), from `state` (zeros when `None`). On burn-flex (the CPU device,
/// with or without autodiff) one kernel runs the recurrence ([`super::wkv_kernel`]); elsewhere
/// the chunked composite.
pub fn wkv6<B: Backend>(
    inputs: WkvInputs<B>,
    state: Option<Tensor<B, 4>>,
) -> (Tensor<B, 4>, Tensor<B, 4>) {
    match super::wkv_kernel::try_wkv6(inputs, state) {
        Ok(result) => result,
        Err((inputs, state)) => wkv6_chunked(inputs, state, CHUNK),
    }
}

/// [`wkv6`] with chunks of `chunk` steps.
pub fn wkv6_chunked<B: Backend>(
    inputs: WkvInputs<B>,
    state: Option<Tensor<B, 4>>,
    chunk: usize,
) -> (Tensor<B, 4>, Tensor<B, 4>) {
    let WkvInputs { r, k, v, lw, u } = inputs;
    let [b, h, t, n] = r.dims();
    let device = r.device();
    let l = chunk.clamp(1, t.max(1));
    let chunks = t.div_ceil(l);
    let padded = chunks * l;
    // Padding steps at the end with k = 0 and lw = 0 leave the state as it was.
    let pad = |x: Tensor<B, 4>| {
        if padded == t {
            x
        } else {
            let zeros = Tensor::<B, 4>::zeros([b, h, padded - t, n], &device);
            Tensor::cat(vec![x, zeros], 2)
        }
    };
    let split = |x: Tensor<B, 4>| pad(x).reshape([b, h, chunks, l, n]);
    let (r, k, v, lw) = (split(r), split(k), split(v), split(lw));

    let c = lw.clone().cumsum(3); // inclusive: c_t = lw_0 + … + lw_t
    let c_before = c.clone() - lw; // exclusive: c_{t-1}
    let c_last = c.clone().slice([0..b, 0..h, 0..chunks, l - 1..l, 0..n]);

    // Inside each chunk: A[t, s] = Σ_i r_t[i] k_s[i] exp(c_{t-1}[i] - c_s[i]) for s < t.
    // Laid out [chunk, i, s, t] so that every full-size elementwise op reads its broadcast
    // operand as a per-row scalar or a shared row (burn-flex's SIMD paths; a general broadcast
    // walks both operands element by element, ~8x slower on this [L, L, N] tensor).
    let g = b * h * chunks;
    let by_channel = |x: &Tensor<B, 5>| {
        x.clone().reshape([g, l, n]).swap_dims(1, 2).mul_scalar(1.0) // materialised channel-major: `[g, N, L]`
    };
    let across = |x: Tensor<B, 3>| x.unsqueeze_dim::<4>(2).repeat_dim(2, l); // [g, N, s, t]
    // 0 where s < t, -1e30 elsewhere (before the exp: no inf ever reaches a product).
    let mask_row = Tensor::<B, 2, Bool>::tril_mask([l, l], 0, &device) // true where t > s
        .float()
        .sub_scalar(1.0)
        .mul_scalar(1.0e30)
        .reshape([1, l * l]);
    let exponent = (across(by_channel(&c_before)) - by_channel(&c).unsqueeze_dim::<4>(3))
        .reshape([g * n, l * l])
        + mask_row;
    let weighted = exponent.reshape([g, n, l, l]).exp()
        * by_channel(&k).unsqueeze_dim::<4>(3)
        * across(by_channel(&r));
    let scores = weighted
        .sum_dim(1)
        .reshape([g, l, l])
        .swap_dims(1, 2) // [g, t, s]
        .reshape([b, h, chunks, l, l]);
    let bonus = (r.clone() * k.clone() * u.reshape([1, h, 1, 1, n])).sum_dim(4) * v.clone();
    // Across chunks, without a sequential loop: the state at the start of chunk j is
    //   S_j = Σ_{i<j} exp(G_{j-1} - G_i) ⊙ KV_i + exp(G_{j-1}) ⊙ S_0
    // with KV_i chunk i's own contribution (its keys decayed to its end), G the cumulative
    // log-decay at chunk ends (per key channel) and every exponent again ≤ 0.
    let r_read = r * c_before.exp(); // [b, h, chunks, L, N]
    let k_carry = k * (c_last.clone() - c).exp();
    // The elementwise terms above, the bonus with its broadcast `[L, 1]` factor among them, are
    // queued before this matmul. Queued after it, they joined its fused block (two outputs, a
    // broadcast operand), and Burn 0.21's double-buffered fused matmul wrote wrong values there
    // (as in attention's case: `model::attention::grouped_attention`); now the block reads no
    // broadcast operand, and that kernel, still autotune's pick for it, is right.
    let mut out = scores.matmul(v.clone()) + bonus;
    let carried = k_carry.swap_dims(3, 4).matmul(v); // KV_i: [b, h, chunks, N, N]
    let chunk_decay = c_last.reshape([b, h, chunks, n]); // ≤ 0
    let g = chunk_decay.clone().cumsum(2); // G_j, inclusive
    let g_before = g.clone() - chunk_decay; // G_{j-1}
    let not_earlier: Tensor<B, 2, Bool> =
        Tensor::<B, 2, Bool>::tril_mask([chunks, chunks], -1, &device);
    let weights = (g_before.clone().unsqueeze_dim::<5>(3) - g.clone().unsqueeze_dim::<5>(2))
        .mask_fill(
            not_earlier
                .reshape([1, 1, chunks, chunks, 1])
                .expand([b, h, chunks, chunks, n]),
            -1.0e30,
        )
        .exp(); // [b, h, j, i, N(key)]
    // Σ_i as a matmul per key channel: [j, i] × [i, N(value)].
    let starts = weights
        .permute([0, 1, 4, 2, 3])
        .matmul(carried.clone().permute([0, 1, 3, 2, 4]))
        .permute([0, 1, 3, 2, 4]); // [b, h, chunks, N, N]
    let s0 = state.unwrap_or_else(|| Tensor::zeros([b, h, n, n], &device));
    let from_s0 = |exponent: Tensor<B, 4>, rows: usize| {
        exponent.exp().reshape([b, h, rows, n, 1]) * s0.clone().reshape([b, h, 1, n, n])
    };
    let starts = starts + from_s0(g_before, chunks);
    out = out + r_read.matmul(starts);
    // The state after the last chunk: every chunk's contribution decayed to the end.
    let g_last = g.clone().slice([0..b, 0..h, chunks - 1..chunks, 0..n]); // [b, h, 1, N]
    let to_end = (g_last.clone() - g).exp().reshape([b, h, chunks, n, 1]);
    let s = (to_end * carried).sum_dim(2).reshape([b, h, n, n])
        + from_s0(g_last, 1).reshape([b, h, n, n]);
    let out = out.reshape([b, h, padded, n]);
    let out = if padded == t {
        out
    } else {
        out.slice([0..b, 0..h, 0..t, 0..n])
    };
    (out, s)
}

/// The step-by-step recurrence (the definition; one step per token).
pub fn wkv6_recurrent<B: Backend>(
    inputs: WkvInputs<B>,
    state: Option<Tensor<B, 4>>,
) -> (Tensor<B, 4>, Tensor<B, 4>) {
    let WkvInputs { r, k, v, lw, u } = inputs;
    let [b, h, t, n] = r.dims();
    let device = r.device();
    let u = u.reshape([1, h, n, 1]);
    let mut s = state.unwrap_or_else(|| Tensor::zeros([b, h, n, n], &device));
    let mut outs = Vec::with_capacity(t);
    for step in 0..t {
        let at = |x: &Tensor<B, 4>| x.clone().slice([0..b, 0..h, step..step + 1, 0..n]);
        let kv = at(&k).swap_dims(2, 3).matmul(at(&v)); // [b, h, N, N]
        outs.push(at(&r).matmul(u.clone() * kv.clone() + s.clone()));
        s = kv + at(&lw).exp().swap_dims(2, 3) * s;
    }
    (Tensor::cat(outs, 2), s)
}

/// `x` in f32 (the recurrence's dtype).
pub fn to_f32<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    if x.dtype() == burn::tensor::DType::F32 {
        x
    } else {
        x.cast(FloatDType::F32)
    }
}
