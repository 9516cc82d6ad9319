//! The training loss over the vocabulary as one CPU kernel for burn-flex: each row's max,
//! log-sum-exp, picked log-probability and gradient `(softmax − one_hot)·weight` in one pass,
//! rows in parallel, read from the logits in place.
//!
//! The composite ([`super::loss`]) walks the `[batch, seq, vocab]` logits about ten times on one
//! thread (max, shift, exp, sum, scale, scatter, then the surrogate product and its backward),
//! each time into a fresh full-size buffer: ≈ 15 % of a `bench train` step at a 32k
//! vocabulary. Here the graph holds the gradient as the op's state (one buffer, as the
//! composite's surrogate did) and the backward pass hands it on, scaled by the incoming
//! gradient when that is not 1.
//!
//! Sums run in another order than burn-flex's reductions, so values agree with the composite
//! to rounding (tested within 1e-6 relative), and rows are summed in a fixed order, so the loss
//! is the same bits from run to run whatever the threads do. Burn's dispatch at run time: see
//! [`crate::kernel::dispatch`].

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, ElementConversion, Int, Tensor, TensorPrimitive};
use rayon::prelude::*;

use crate::kernel::dispatch::{
    FlexAutodiff as Ad, KernelBackend, device_tensor, inner, recast, with_values,
};
use crate::kernel::vector_math;

/// What [`try_cross_entropy`] hands back when the kernel does not apply.
pub type Unsupported<B> = (Tensor<B, 3>, Tensor<B, 2, Int>);

/// The mean cross-entropy of `logits: [batch, seq, vocab]` against `labels: [batch, seq]`
/// (already aligned: label `t` is what logits `t` predict; `ignore_index` left out), when `B`
/// is burn-flex (or burn-flex under autodiff), the logits are f32 and every kept label is a
/// valid index; the inputs back otherwise.
pub fn try_cross_entropy<B: Backend>(
    logits: Tensor<B, 3>,
    labels: Tensor<B, 2, Int>,
    ignore_index: i64,
) -> Result<Tensor<B, 1>, Unsupported<B>> {
    let Some(backend) = KernelBackend::of::<B>() else {
        return Err((logits, labels));
    };
    if logits.dtype() != DType::F32 {
        return Err((logits, labels));
    }
    let vocab = logits.dims()[2];
    // Each row's target, `None` where ignored (other negative labels read as 0, as the
    // composite's `clamp_min(0)` does).
    let targets: Vec<Option<usize>> = labels
        .to_data()
        .iter::<i64>()
        .map(|label| (label != ignore_index).then_some(label.max(0) as usize))
        .collect();
    if targets.iter().flatten().any(|&target| target >= vocab) {
        return Err((logits, labels));
    }
    Ok(match backend {
        KernelBackend::Flex => {
            let logits = recast::<_, Tensor<Flex, 3>>(logits);
            let (loss, _) = cross_entropy_host(&logits, &targets, false);
            recast(device_tensor(vec![loss], [1], &logits.device()))
        }
        KernelBackend::FlexAutodiff => {
            let logits = recast::<_, Tensor<Ad, 3>>(logits);
            recast(autodiff_cross_entropy(logits, &targets))
        }
    })
}

/// The loss, and with `with_gradient` its gradient with respect to the logits (`[rows·vocab]`).
fn cross_entropy_host(
    logits: &Tensor<Flex, 3>,
    targets: &[Option<usize>],
    with_gradient: bool,
) -> (f32, Option<Vec<f32>>) {
    with_values(logits, |values| {
        cross_entropy_rows(values, logits.dims()[2], targets, with_gradient)
    })
}

fn cross_entropy_rows(
    values: &[f32],
    vocab: usize,
    targets: &[Option<usize>],
    with_gradient: bool,
) -> (f32, Option<Vec<f32>>) {
    let count = targets.iter().flatten().count().max(1) as f32;
    // Each row's `(target − max − log Σ exp)·weight`, gradient row written alongside; an
    // ignored row weighs 0 (its gradient is zeros, as the composite's).
    let row_loss = |row: &[f32], target: Option<usize>, gradient: Option<&mut [f32]>| -> f32 {
        let (target, weight) = match target {
            Some(target) => (target, 1.0 / count),
            None => (0, 0.0),
        };
        let max = vector_math::max(row);
        let sum = match gradient {
            Some(gradient) => {
                let sum = vector_math::exp_shifted(row, max, gradient);
                vector_math::scale(gradient, weight / sum);
                gradient[target] += -weight;
                sum
            }
            None => vector_math::exp_shifted_sum(row, max),
        };
        (row[target] - max - sum.ln()) * weight
    };
    let rows = targets.len();
    let mut picked = vec![0.0f32; rows];
    let gradient = if with_gradient {
        let mut gradient = vec![0.0f32; rows * vocab];
        gradient
            .par_chunks_mut(vocab)
            .zip(values.par_chunks(vocab))
            .zip(picked.par_iter_mut())
            .zip(targets.par_iter())
            .for_each(|(((gradient, row), picked), &target)| {
                *picked = row_loss(row, target, Some(gradient));
            });
        Some(gradient)
    } else {
        picked
            .par_iter_mut()
            .zip(values.par_chunks(vocab))
            .zip(targets.par_iter())
            .for_each(|((picked, row), &target)| *picked = row_loss(row, target, None));
        None
    };
    // Rows summed in order: the same bits whatever the threads did.
    let total: f64 = picked.iter().map(|&p| f64::from(p)).sum();
    (-(total as f32), gradient)
}

#[derive(Debug)]
struct CrossEntropyBackward;

impl Backward<Flex, 1> for CrossEntropyBackward {
    /// The loss's gradient with respect to the logits.
    type State = FloatTensor<Flex>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let upstream: Tensor<Flex, 1> = inner(grads.consume::<Flex>(&ops.node));
        let scale: f32 = upstream.into_scalar().elem();
        let gradient: Tensor<Flex, 3> = inner(ops.state);
        let gradient = if scale == 1.0 {
            gradient
        } else {
            gradient.mul_scalar(scale)
        };
        if let [Some(node)] = &ops.parents {
            grads.register::<Flex>(node.id, gradient.into_primitive().tensor());
        }
    }
}

fn autodiff_cross_entropy(logits: Tensor<Ad, 3>, targets: &[Option<usize>]) -> Tensor<Ad, 1> {
    let shape = logits.dims();
    let primitive = logits.into_primitive().tensor();
    let node = primitive.node.clone();
    let logits: Tensor<Flex, 3> = inner(primitive.primitive);
    let device = logits.device();
    let (loss, gradient) = cross_entropy_host(&logits, targets, true);
    let loss = device_tensor(vec![loss], [1], &device)
        .into_primitive()
        .tensor();
    let out = match CrossEntropyBackward
        .prepare::<NoCheckpointing>([node])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let gradient = gradient.expect("computed with the gradient");
            let gradient = device_tensor(gradient, shape, &device);
            prep.finish(gradient.into_primitive().tensor(), loss)
        }
        OpsKind::UnTracked(prep) => prep.finish(loss),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}
