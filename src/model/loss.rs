//! Token-level cross-entropy as transformers computes it for causal LMs: logits at position t
//! predict label t + 1, labels of −100 are ignored, the mean runs over the counted tokens.

use burn::tensor::activation::log_softmax;
use burn::tensor::{FloatDType, Int, Tensor, backend::Backend};

/// The label value that is left out of the loss (PyTorch's `ignore_index`).
pub const IGNORE_INDEX: i64 = -100;

/// Labels for plain language modelling: the input ids, −100 where `attention_mask` is 0.
pub fn lm_labels<B: Backend>(
    input_ids: Tensor<B, 2, Int>,
    attention_mask: Option<Tensor<B, 2, Int>>,
) -> Tensor<B, 2, Int> {
    match attention_mask {
        Some(mask) => input_ids.mask_fill(mask.equal_elem(0), IGNORE_INDEX),
        None => input_ids,
    }
}

/// Mean next-token cross-entropy of `logits: [batch, seq, vocab]` against `labels: [batch, seq]`
/// (shifted inside, as HF's `ForCausalLMLoss`).
pub fn causal_lm_loss<B: Backend>(logits: Tensor<B, 3>, labels: Tensor<B, 2, Int>) -> Tensor<B, 1> {
    let [b, s, v] = logits.dims();
    let logits = logits.slice([0..b, 0..s - 1, 0..v]);
    let labels = labels.slice([0..b, 1..s]);
    masked_cross_entropy(logits, labels)
}

/// Mean cross-entropy over the positions whose label is not −100, computed in f32 whatever the
/// logits' dtype (transformers upcasts bf16 logits the same way).
pub fn masked_cross_entropy<B: Backend>(
    logits: Tensor<B, 3>,
    labels: Tensor<B, 2, Int>,
) -> Tensor<B, 1> {
    let logits = logits.cast(FloatDType::F32);
    let keep = labels.clone().not_equal_elem(IGNORE_INDEX).float();
    let targets = labels.clamp_min(0).unsqueeze_dim::<3>(2);
    let picked = log_softmax(logits, 2)
        .gather(2, targets)
        .squeeze_dim::<2>(2);
    let count = keep.clone().sum().clamp_min(1.0);
    (picked * keep).sum().neg() / count
}
