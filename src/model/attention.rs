//! Scaled dot-product attention and the masks decoders need (causal, padding, sliding window),
//! computed with the backend's fused kernel (`burn::tensor::module::attention`: burn-flex's
//! tiled CPU kernel, cubecl's flash attention) when no gradient is recorded.
//!
//! Grouped-query attention never repeats keys and values: the `n` query heads that share a
//! key/value head are stacked along the sequence axis (`[b, kv, n·s, d]`), so one attention call
//! per key/value head covers them all, with the mask repeated along that axis.

use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, DType, Int, Tensor, backend::Backend};

use super::lean_backward::softmax_times_v;
use crate::kernel::dispatch::KernelBackend;
use crate::kernel::matmul::matmul;

/// Which keys each query may not see, `[batch, 1, seq, past + seq]` (`true` = masked), for
/// queries at cache columns `past..past + seq`:
/// - causal: keys after the query;
/// - padding: keys whose `key_mask` (`[batch, past + seq]`, 1 = real token) is 0;
/// - sliding window (Mistral, Qwen2): keys `window` or more columns before the query, as
///   transformers' `sliding_window_overlay` (`kv_idx > q_idx - window` is kept).
///
/// A query that would see no key at all (a left-padding position) sees itself instead, so that
/// every backend's softmax stays finite there; such rows feed no real position.
pub fn attention_mask<B: Backend>(
    key_mask: Option<Tensor<B, 2, Int>>,
    [batch, seq]: [usize; 2],
    past: usize,
    window: Option<usize>,
    device: &B::Device,
) -> Tensor<B, 4, Bool> {
    let total = past + seq;
    let shape = [batch, seq, total];
    let query = Tensor::<B, 1, Int>::arange(past as i64..total as i64, device)
        .reshape([1, seq, 1])
        .expand(shape);
    let key = Tensor::<B, 1, Int>::arange(0..total as i64, device)
        .reshape([1, 1, total])
        .expand(shape);
    let mut masked = key.clone().greater(query.clone());
    if let Some(window) = window {
        let too_old = key
            .clone()
            .lower_equal(query.clone().sub_scalar(window as i64));
        masked = masked.bool_or(too_old);
    }
    if let Some(key_mask) = key_mask {
        let padding = key_mask
            .equal_elem(0)
            .reshape([batch, 1, total])
            .expand(shape);
        masked = masked.bool_or(padding);
        let sees_nothing = masked.clone().all_dim(2).expand(shape);
        let itself = key.equal(query);
        masked = masked.bool_and(sees_nothing.bool_and(itself).bool_not());
    }
    masked.unsqueeze_dim(1)
}

/// On burn-flex, `mask` ([`attention_mask`], `[b, 1, s, total]`) in the layout
/// [`grouped_attention`] reads it in, `[b, kv, n·s, total]`, as one buffer: made once per forward
/// pass instead of in every layer, where burn-flex's masked fill copies the broadcast mask
/// element by element. Other backends broadcast it in place and get it back as it is.
pub fn mask_for_heads<B: Backend>(
    mask: Tensor<B, 4, Bool>,
    heads: usize,
    kv_heads: usize,
) -> Tensor<B, 4, Bool> {
    if KernelBackend::of::<B>().is_none() {
        return mask;
    }
    let n = heads / kv_heads;
    let mask = if n == 1 { mask } else { mask.repeat_dim(2, n) };
    mask.repeat_dim(1, kv_heads)
}

/// Queries per step up to which attention runs as products over the cache (see
/// [`grouped_attention`]).
const DECODE_QUERIES: usize = 8;

/// `softmax(q kᵀ / √d + mask) v` for `q: [b, h, s, d]`, `k, v: [b, kv, total, d]` with
/// `h = n·kv` (query head `i` reads key/value head `i / n`, as transformers' `repeat_kv`), and
/// `mask: [b, 1, s, total]` from [`attention_mask`] (or [`mask_for_heads`] of it). Returns
/// `[b, h, s, d]`.
pub fn grouped_attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    mask: Tensor<B, 4, Bool>,
) -> Tensor<B, 4> {
    let [b, h, s, d] = q.dims();
    let [_, kv, total, _] = k.dims();
    let n = h / kv;
    // Query heads of one group are adjacent (`i = g·n + j`): stack them along the sequence.
    // Without groups the shapes already agree, and the reshapes are left out: on burn-flex a
    // reshape copies a non-contiguous tensor, which the output's gradient is (a view through
    // the caller's `swap_dims`).
    let q = if n == 1 {
        q
    } else {
        q.reshape([b, kv, n * s, d])
    };
    let mask = if mask.dims() == [b, kv, n * s, total] {
        mask // from `mask_for_heads`
    } else {
        let mask = if n == 1 { mask } else { mask.repeat_dim(2, n) };
        mask.expand([b, kv, n * s, total])
    };
    let dtype = q.dtype();
    // Decoding on burn-flex reads the cache through a view of its buffer: the products read it
    // in place, where burn-flex's attention op copies every cached key and value each step.
    let decoding = s <= DECODE_QUERIES && total > s && KernelBackend::of::<B>().is_some();
    let out = if B::ad_enabled(&q.device()) || dtype != DType::F32 || decoding {
        // Under autodiff Burn runs `attention` as its generic fallback, whose softmax also
        // differentiates through the row maximum; the composed form keeps the backward to the
        // two matmuls and one softmax. A bf16/f16 model takes it too: scores in the hidden
        // dtype, the masked softmax in f32, as transformers' eager attention.
        let scale = 1.0 / (d as f64).sqrt();
        let scores = if KernelBackend::of::<B>().is_some() {
            matmul(q, k.swap_dims(2, 3)).mul_scalar(scale)
        } else {
            // Off burn-flex (the GPU backends; ndarray alike) the scale goes on `q`, not on
            // the scores: with Burn 0.21's fusion (burn-cubecl-fusion), a matmul whose scaled
            // output is kept (for the softmax's backward) next to a masked copy of it read
            // through the broadcast mask becomes one fused block with two outputs, and the
            // autotune candidate `fused_double_buffering_unit`, preferred for such blocks,
            // writes wrong scores there (`tests/gpu/fusion.rs`). Scaling `q` leaves the block
            // one op shorter, which that kernel computes right.
            q.mul_scalar(scale).matmul(k.swap_dims(2, 3))
        };
        // The probabilities are kept once, in the hidden dtype.
        softmax_times_v(scores, |s| s.mask_fill(mask, f32::NEG_INFINITY), v)
    } else {
        // Scale 1/√d (the default) and a boolean mask keep cubecl on its flash kernel.
        attention(q, k, v, Some(mask), None, AttentionModuleOptions::default())
    };
    if n == 1 {
        out
    } else {
        out.reshape([b, h, s, d])
    }
}
