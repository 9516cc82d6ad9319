//! Token-level cross-entropy as transformers computes it for causal LMs: logits at position t
//! predict label t + 1, labels of −100 are ignored, the mean runs over the counted tokens.

use burn::tensor::activation::log_softmax;
use burn::tensor::{DType, FloatDType, IndexingUpdateOp, Int, Tensor, backend::Backend};

use super::cross_entropy_kernel::try_cross_entropy;

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
    let [b, s] = labels.dims();
    // Shift the labels (the last position predicts nothing), not the logits: a slice of the
    // [batch, seq, vocab] logits would be copied, and its backward would build another
    // full-size gradient.
    let nothing = Tensor::full([b, 1], IGNORE_INDEX, &labels.device());
    let next = Tensor::cat(vec![labels.slice([0..b, 1..s]), nothing], 1);
    masked_cross_entropy(logits, next)
}

/// Mean cross-entropy over the positions whose label is not −100, computed in f32 whatever the
/// logits' dtype (transformers upcasts bf16 logits the same way).
///
/// Under autodiff the loss and its gradient with respect to the logits,
/// `(softmax − one_hot) · keep / count`, are computed off the graph in the forward pass, a chunk
/// of rows at a time; the graph holds only that gradient, in the logits' dtype, and enters the
/// loss as `Σ G ⊙ logits − detach(…)`, exactly zero in value (see [`super::lean_backward`]).
/// Burn's composite `log_softmax` of the f32 logits would keep about 8 bytes per logit, and
/// its transients more: at a 128k–256k vocabulary, most of a large model's activations.
pub fn masked_cross_entropy<B: Backend>(
    logits: Tensor<B, 3>,
    labels: Tensor<B, 2, Int>,
) -> Tensor<B, 1> {
    // burn-flex: one CPU kernel for the loss and its gradient.
    let (logits, labels) = match try_cross_entropy(logits, labels, IGNORE_INDEX) {
        Ok(loss) => return loss,
        Err(unsupported) => unsupported,
    };
    // f32 logits need no cast, and the softmax is built in place in one buffer: chunks would
    // only add the concatenation. Other dtypes are cast to f32 a chunk at a time.
    let chunk_elements = if logits.dtype() == DType::F32 {
        usize::MAX
    } else {
        LOSS_CHUNK_ELEMENTS
    };
    chunked_cross_entropy(logits, labels, chunk_elements)
}

/// [`masked_cross_entropy`] with the softmax computed `chunk_elements` logits at a time
/// (rounded to whole rows).
fn chunked_cross_entropy<B: Backend>(
    logits: Tensor<B, 3>,
    labels: Tensor<B, 2, Int>,
    chunk_elements: usize,
) -> Tensor<B, 1> {
    let keep = labels.clone().not_equal_elem(IGNORE_INDEX).float();
    let targets = labels.clamp_min(0).unsqueeze_dim::<3>(2);
    let count = keep.clone().sum().clamp_min(1.0);
    if !B::ad_enabled(&logits.device()) {
        let picked = log_softmax(logits.cast(FloatDType::F32), 2)
            .gather(2, targets)
            .squeeze_dim::<2>(2);
        return (picked * keep).sum().neg() / count;
    }
    let [batch, seq, vocab] = logits.dims();
    let rows = batch * seq;
    let dtype = FloatDType::from(logits.dtype());
    let flat = logits.clone().detach().reshape([rows, vocab]);
    let targets = targets.reshape([rows, 1]);
    let weight = (keep / count.clone().unsqueeze()).reshape([rows, 1]);
    // Rows in chunks: the f32 softmax of a chunk is a transient (a cast on the CPU backend
    // also goes through an f64 buffer), and only the gradient in the logits' dtype is kept.
    // The order keeps each chunk's softmax in one buffer, built in place.
    let chunk = (chunk_elements / vocab).max(1);
    let mut picked = Tensor::<B, 1>::zeros([1], &flat.device());
    let mut gradients = Vec::with_capacity(rows.div_ceil(chunk));
    for start in (0..rows).step_by(chunk) {
        let range = start..(start + chunk).min(rows);
        let z = flat.clone().slice(range.clone()).cast(FloatDType::F32);
        let (targets, weight) = (
            targets.clone().slice(range.clone()),
            weight.clone().slice(range.clone()),
        );
        let max = z.clone().max_dim(1);
        let target_logit = z.clone().gather(1, targets.clone());
        let exp = (z - max.clone()).exp();
        let sum = exp.clone().sum_dim(1);
        picked = picked + ((target_logit - max - sum.clone().log()) * weight.clone()).sum();
        let part = (exp * (weight.clone() / sum))
            .scatter(1, targets, weight.neg(), IndexingUpdateOp::Add)
            .cast(dtype);
        gradients.push(part);
    }
    let gradient = if gradients.len() == 1 {
        gradients.pop().expect("one chunk")
    } else {
        Tensor::cat(gradients, 0)
    };
    let gradient = gradient.reshape([batch, seq, vocab]);
    let surrogate = (logits * gradient).sum().cast(FloatDType::F32);
    surrogate.clone() - surrogate.detach() - picked
}

/// Logits per chunk of rows of the training loss (2^22: 16 MiB in f32).
const LOSS_CHUNK_ELEMENTS: usize = 1 << 22;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Cpu, Train};
    use burn::tensor::{Distribution, TensorData, Tolerance};

    /// Value and logits gradient of the lean loss against the composite, ignored labels
    /// included.
    #[test]
    fn cross_entropy_matches_the_composite_and_its_gradient() {
        type B = Train<Cpu>;
        let device = Default::default();
        let logits = Tensor::<B, 3>::random([2, 4, 9], Distribution::Normal(0.0, 2.0), &device);
        let labels = Tensor::<B, 2, Int>::from_data(
            TensorData::from([[3i64, -100, 8, 0], [-100, 5, 1, 1]]),
            &device,
        );
        // One chunk, then chunks of 2 rows and of 3 (the last one shorter).
        let lean = |chunk_elements: usize| {
            let x = logits.clone().require_grad();
            let loss = chunked_cross_entropy(x.clone(), labels.clone(), chunk_elements);
            let grads = loss.backward();
            (loss.inner(), x.grad(&grads).unwrap())
        };
        let composite = {
            let x = logits.clone().require_grad();
            let keep = labels.clone().not_equal_elem(IGNORE_INDEX).float();
            let picked = log_softmax(x.clone(), 2)
                .gather(2, labels.clone().clamp_min(0).unsqueeze_dim::<3>(2))
                .squeeze_dim::<2>(2);
            let loss = (picked * keep.clone()).sum().neg() / keep.sum();
            let grads = loss.backward();
            (loss.inner(), x.grad(&grads).unwrap())
        };
        let tol = Tolerance::absolute(1e-6);
        for chunk_elements in [LOSS_CHUNK_ELEMENTS, 18, 27] {
            let (loss, grad) = lean(chunk_elements);
            loss.into_data()
                .assert_approx_eq::<f32>(&composite.0.clone().into_data(), tol);
            grad.into_data()
                .assert_approx_eq::<f32>(&composite.1.clone().into_data(), tol);
        }
    }

    /// The burn-flex kernel (what `masked_cross_entropy` runs on the CPU) against the composite:
    /// loss and gradient within 1e-6 relative, on random shapes with ignored rows, a permuted
    /// (non-contiguous) logits view, a loss scaled before `backward` and inference without
    /// autodiff.
    #[test]
    fn cross_entropy_kernel_matches_the_composite() {
        use burn::tensor::ElementConversion;
        type B = Train<Cpu>;
        let device = Default::default();
        B::seed(&device, 3);
        let relative = |got: Tensor<Cpu, 3>, want: Tensor<Cpu, 3>| -> f64 {
            let scale: f64 = want.clone().abs().max().into_scalar().elem();
            let err: f64 = (got - want).abs().max().into_scalar().elem();
            err / scale
        };
        for (batch, seq, vocab, permuted) in
            [(2, 5, 11, false), (3, 4, 300, true), (1, 1, 7, false)]
        {
            let logits = if permuted {
                Tensor::<B, 3>::random([seq, batch, vocab], Distribution::Normal(0.0, 3.0), &device)
                    .swap_dims(0, 1)
            } else {
                Tensor::<B, 3>::random([batch, seq, vocab], Distribution::Normal(0.0, 3.0), &device)
            };
            let labels = Tensor::<B, 2, Int>::random(
                [batch, seq],
                Distribution::Uniform(0.0, vocab as f64),
                &device,
            );
            // Every third position ignored.
            let ignored = Tensor::<B, 1, Int>::arange(0..(batch * seq) as i64, &device)
                .reshape([batch, seq])
                .remainder_scalar(3)
                .equal_elem(1);
            let labels = labels.mask_fill(ignored, IGNORE_INDEX);
            let run = |kernel: bool| {
                let x = logits.clone().detach().require_grad();
                let loss = if kernel {
                    masked_cross_entropy(x.clone(), labels.clone())
                } else {
                    chunked_cross_entropy(x.clone(), labels.clone(), LOSS_CHUNK_ELEMENTS)
                };
                let grads = loss.clone().mul_scalar(0.5).backward();
                (loss.inner(), x.grad(&grads).unwrap())
            };
            let ((loss, grad), (want_loss, want_grad)) = (run(true), run(false));
            let case = format!("[{batch}, {seq}, {vocab}] permuted {permuted}");
            let (loss, want_loss): (f64, f64) =
                (loss.into_scalar().elem(), want_loss.into_scalar().elem());
            assert!(
                (loss - want_loss).abs() <= 1e-6 * want_loss.abs(),
                "{case}: loss {loss} vs {want_loss}"
            );
            let err = relative(grad, want_grad);
            assert!(err <= 1e-6, "{case}: gradient differs by {err:e} relative");
            let inference: f64 =
                masked_cross_entropy(logits.clone().inner(), labels.clone().inner())
                    .into_scalar()
                    .elem();
            assert!(
                (inference - want_loss).abs() <= 1e-6 * want_loss.abs(),
                "{case}: inference loss {inference} vs {want_loss}"
            );
        }
    }
}
