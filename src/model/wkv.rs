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

/// The inputs of one WKV call, `[batch, heads, seq, head_size]` (f32): receptance, key, value
/// and log-decay (`lw = -exp(·) ≤ 0`); `u` is `[heads, head_size]`.
pub struct WkvInputs<B: Backend> {
    pub r: Tensor<B, 4>,
    pub k: Tensor<B, 4>,
    pub v: Tensor<B, 4>,
    pub lw: Tensor<B, 4>,
    pub u: Tensor<B, 2>,
}

/// The chunked WKV: outputs `[batch, heads, seq, head_size]` and the state after the last step
/// (`[batch, heads, N, N]`), from `state` (zeros when `None`).
pub fn wkv6<B: Backend>(
    inputs: WkvInputs<B>,
    state: Option<Tensor<B, 4>>,
) -> (Tensor<B, 4>, Tensor<B, 4>) {
    wkv6_chunked(inputs, state, CHUNK)
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
    // `true` where s ≥ t: those pairs get an exponent whose exp is 0 (masked before the exp,
    // so no inf ever reaches a product).
    let not_past: Tensor<B, 2, Bool> = Tensor::<B, 2, Bool>::tril_mask([l, l], -1, &device);
    let exponent = c_before.clone().unsqueeze_dim::<6>(4) - c.clone().unsqueeze_dim::<6>(3);
    let exponent = exponent.mask_fill(
        not_past
            .reshape([1, 1, 1, l, l, 1])
            .expand([b, h, chunks, l, l, n]),
        -1.0e30,
    );
    let decay = exponent.exp();
    let scores = (r.clone().unsqueeze_dim::<6>(4) * k.clone().unsqueeze_dim::<6>(3) * decay)
        .sum_dim(5)
        .reshape([b, h, chunks, l, l]);
    let bonus = (r.clone() * k.clone() * u.reshape([1, h, 1, 1, n])).sum_dim(4);
    let mut out = scores.matmul(v.clone()) + bonus * v.clone();

    // Across chunks: the state read at each step, and carried to the next chunk.
    let r_read = r * c_before.exp();
    let k_carry = k * (c_last.clone() - c).exp();
    let carried = k_carry.swap_dims(3, 4).matmul(v); // [b, h, chunks, N, N]
    let chunk_decay = c_last.exp().swap_dims(3, 4); // [b, h, chunks, N, 1]
    let mut s = state.unwrap_or_else(|| Tensor::zeros([b, h, n, n], &device));
    let mut reads = Vec::with_capacity(chunks);
    for j in 0..chunks {
        let at = |x: &Tensor<B, 5>, rows: usize, cols: usize| {
            x.clone()
                .slice([0..b, 0..h, j..j + 1, 0..rows, 0..cols])
                .reshape([b, h, rows, cols])
        };
        reads.push(at(&r_read, l, n).matmul(s.clone()));
        s = at(&chunk_decay, n, 1) * s + at(&carried, n, n);
    }
    out = out + Tensor::stack::<5>(reads, 2);
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
