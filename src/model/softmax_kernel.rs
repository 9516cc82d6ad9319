//! Attention's softmax over the last axis as one CPU kernel for burn-flex, with the backward
//! pass that keeps only the probabilities (`dx = p ⊙ (g − Σ p ⊙ g)`).
//!
//! Under autodiff the composite ([`super::lean_backward::softmax_times_v`]) reaches the same
//! backward through a surrogate that costs a second `[.., s, t] × [.., t, d]` product in the
//! forward pass (computed to be subtracted) and half a dozen full-size elementwise ops on one
//! thread; burn-flex's softmax itself is four passes (max, shift and exp, sum, divide). The
//! kernel is one op whose output the `· v` product then uses as usual, rows in parallel. Values
//! agree with the composite to rounding (sums in another order; tested within 1e-6
//! relative). Burn's dispatch at run time: see [`crate::kernel::dispatch`].

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Tensor, TensorPrimitive};
use rayon::prelude::*;

use crate::kernel::dispatch::{
    FlexAutodiff as Ad, KernelBackend, device_tensor, host, inner, recast, with_values,
};

/// Rows per parallel task at least.
const MIN_ROWS: usize = 64;

/// Whether [`softmax`] runs for these scores: burn-flex (or burn-flex under autodiff), f32.
pub fn applies<B: Backend, const D: usize>(scores: &Tensor<B, D>) -> bool {
    KernelBackend::of::<B>().is_some() && scores.dtype() == DType::F32
}

/// `softmax(masked)` over the last axis, its gradient routed to `scores` (masked positions,
/// whose probability is 0, get none). `masked` is `scores` with the attention mask applied,
/// off the graph. Only where [`applies`] holds.
pub fn softmax<B: Backend, const D: usize>(
    scores: Tensor<B, D>,
    masked: Tensor<B, D>,
) -> Tensor<B, D> {
    match KernelBackend::of::<B>() {
        Some(KernelBackend::Flex) => {
            let masked = recast::<_, Tensor<Flex, D>>(masked);
            let shape = masked.dims();
            let device = masked.device();
            recast(device_tensor(
                softmax_host(host(masked), shape[D - 1]),
                shape,
                &device,
            ))
        }
        Some(KernelBackend::FlexAutodiff) => {
            let (scores, masked) = recast::<_, (Tensor<Ad, D>, Tensor<Ad, D>)>((scores, masked));
            recast(autodiff_softmax(scores, masked.inner()))
        }
        None => panic!("softmax kernel called on a backend it does not apply to"),
    }
}

fn softmax_host(mut values: Vec<f32>, width: usize) -> Vec<f32> {
    values
        .par_chunks_mut(width)
        .with_min_len(MIN_ROWS)
        .for_each(|row| {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0f32;
            for x in row.iter_mut() {
                *x = (*x - max).exp();
                sum += *x;
            }
            for x in row.iter_mut() {
                *x /= sum;
            }
        });
    values
}

/// `p ⊙ (g − Σ p ⊙ g)` row by row.
fn softmax_backward_host(probs: &[f32], mut grad: Vec<f32>, width: usize) -> Vec<f32> {
    grad.par_chunks_mut(width)
        .zip(probs.par_chunks(width))
        .with_min_len(MIN_ROWS)
        .for_each(|(g, p)| {
            let dot: f32 = g.iter().zip(p).map(|(g, p)| g * p).sum();
            for (g, &p) in g.iter_mut().zip(p) {
                *g = p * (*g - dot);
            }
        });
    grad
}

#[derive(Debug)]
struct SoftmaxBackward<const D: usize>;

impl<const D: usize> Backward<Flex, 1> for SoftmaxBackward<D> {
    /// The probabilities.
    type State = FloatTensor<Flex>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad: Tensor<Flex, D> = inner(grads.consume::<Flex>(&ops.node));
        let probs: Tensor<Flex, D> = inner(ops.state);
        let shape = probs.dims();
        let device = probs.device();
        let dx = with_values(&probs, |probs| {
            softmax_backward_host(probs, host(grad), shape[D - 1])
        });
        if let [Some(node)] = &ops.parents {
            let dx = device_tensor(dx, shape, &device);
            grads.register::<Flex>(node.id, dx.into_primitive().tensor());
        }
    }
}

fn autodiff_softmax<const D: usize>(
    scores: Tensor<Ad, D>,
    masked: Tensor<Flex, D>,
) -> Tensor<Ad, D> {
    let node = scores.into_primitive().tensor().node;
    let shape = masked.dims();
    let device = masked.device();
    let probs = device_tensor(softmax_host(host(masked), shape[D - 1]), shape, &device)
        .into_primitive()
        .tensor();
    let out = match SoftmaxBackward::<D>
        .prepare::<NoCheckpointing>([node])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(probs.clone(), probs),
        OpsKind::UnTracked(prep) => prep.finish(probs),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}
