//! Rotary embeddings as one CPU kernel for burn-flex, forward and backward.
//!
//! The composite (`x·cos + rotate_half(x)·sin`) is five full-size ops on a permuted
//! `[batch, heads, seq, head_dim]` query or key and a `cos` broadcast over the heads: a layout
//! that none of burn-flex's SIMD broadcast paths covers, so each multiply walked the tensors
//! element by element through its strided iterator, forward and backward (≈ 10 % of a training
//! step of `bench train`). The kernel is one pass over the values, heads in parallel, and does
//! the composite's arithmetic in the composite's order (a product of `x` and `cos`, one of the
//! rotated `x` and `sin`, their sum; no fused multiply-add), so its results are the same bits.
//!
//! The backward pass is the transposed rotation:
//! `dx_j = g_j·cos_j + g_{j+d/2}·sin_{j+d/2}` for `j < d/2` and
//! `dx_j = g_j·cos_j - g_{j-d/2}·sin_{j-d/2}` above. Burn's dispatch at run time: see
//! [`crate::kernel::dispatch`].

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
    FlexAutodiff as Ad, KernelBackend, device_tensor, host, inner, recast,
};

/// Elements from which the heads are rotated in parallel.
const PARALLEL_ELEMENTS: usize = 1 << 15;

/// The kernel's result when `B` is burn-flex (or burn-flex under autodiff), all three tensors
/// are f32 and `cos`/`sin` are `[batch or 1, 1, seq, head_dim]`; `x` back otherwise.
pub fn try_rope<B: Backend>(
    x: Tensor<B, 4>,
    cos: &Tensor<B, 4>,
    sin: &Tensor<B, 4>,
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    let [b, _, s, d] = x.dims();
    let [cb, ch, cs, cd] = cos.dims();
    let supported = [x.dtype(), cos.dtype(), sin.dtype()] == [DType::F32; 3]
        && (cb == b || cb == 1)
        && ch == 1
        && (cs, cd) == (s, d)
        && sin.dims() == cos.dims()
        && d % 2 == 0;
    if !supported {
        return Err(x);
    }
    match KernelBackend::of::<B>() {
        Some(KernelBackend::Flex) => {
            let (x, cos, sin) = recast::<_, (Tensor<Flex, 4>, Tensor<Flex, 4>, Tensor<Flex, 4>)>((
                x,
                cos.clone(),
                sin.clone(),
            ));
            Ok(recast(flex_rope(x, cos, sin, Direction::Forward)))
        }
        Some(KernelBackend::FlexAutodiff) => {
            let (x, cos, sin) = recast::<_, (Tensor<Ad, 4>, Tensor<Ad, 4>, Tensor<Ad, 4>)>((
                x,
                cos.clone(),
                sin.clone(),
            ));
            Ok(recast(autodiff_rope(x, cos.inner(), sin.inner())))
        }
        None => Err(x),
    }
}

/// The rotation, or its transpose (the backward pass).
#[derive(Clone, Copy, Debug)]
enum Direction {
    Forward,
    Transposed,
}

/// One `head_dim` row: `x` rotated by the angles whose `cos`/`sin` are given.
fn rotate_row(x: &[f32], cos: &[f32], sin: &[f32], out: &mut [f32], direction: Direction) {
    let half = x.len() / 2;
    let (x1, x2) = x.split_at(half);
    let (o1, o2) = out.split_at_mut(half);
    let (c1, c2) = cos.split_at(half);
    let (s1, s2) = sin.split_at(half);
    match direction {
        // [x1, x2]·cos + [-x2, x1]·sin
        Direction::Forward => {
            for j in 0..half {
                o1[j] = x1[j] * c1[j] + (-x2[j]) * s1[j];
                o2[j] = x2[j] * c2[j] + x1[j] * s2[j];
            }
        }
        // g·cos + [g2·sin2, -(g1·sin1)]
        Direction::Transposed => {
            for j in 0..half {
                o1[j] = x1[j] * c1[j] + x2[j] * s2[j];
                o2[j] = x2[j] * c2[j] + -(x1[j] * s1[j]);
            }
        }
    }
}

fn flex_rope(
    x: Tensor<Flex, 4>,
    cos: Tensor<Flex, 4>,
    sin: Tensor<Flex, 4>,
    direction: Direction,
) -> Tensor<Flex, 4> {
    let device = x.device();
    let [b, h, s, d] = x.dims();
    let per_batch = cos.dims()[0] == b;
    let (x, cos, sin) = (host(x), host(cos), host(sin));
    let mut out = vec![0.0f32; x.len()];
    let head = |(bh, (out, x)): (usize, (&mut [f32], &[f32]))| {
        let batch = if per_batch { bh / h } else { 0 };
        let angles = batch * s * d..(batch + 1) * s * d;
        let (cos, sin) = (&cos[angles.clone()], &sin[angles]);
        for t in 0..s {
            let row = t * d..(t + 1) * d;
            rotate_row(
                &x[row.clone()],
                &cos[row.clone()],
                &sin[row.clone()],
                &mut out[row],
                direction,
            );
        }
    };
    // A decode step's few rows are not worth waking another thread for.
    if x.len() < PARALLEL_ELEMENTS {
        out.chunks_mut(s * d)
            .zip(x.chunks(s * d))
            .enumerate()
            .for_each(head);
    } else {
        out.par_chunks_mut(s * d)
            .zip(x.par_chunks(s * d))
            .enumerate()
            .for_each(head);
    }
    device_tensor(out, [b, h, s, d], &device)
}

#[derive(Debug)]
struct RopeBackward;

impl Backward<Flex, 1> for RopeBackward {
    /// `cos` and `sin` (constants: positions carry no gradient).
    type State = (FloatTensor<Flex>, FloatTensor<Flex>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad: Tensor<Flex, 4> = inner(grads.consume::<Flex>(&ops.node));
        let (cos, sin) = ops.state;
        let dx = flex_rope(grad, inner(cos), inner(sin), Direction::Transposed);
        if let [Some(node)] = &ops.parents {
            grads.register::<Flex>(node.id, dx.into_primitive().tensor());
        }
    }
}

fn autodiff_rope(x: Tensor<Ad, 4>, cos: Tensor<Flex, 4>, sin: Tensor<Flex, 4>) -> Tensor<Ad, 4> {
    let x = x.into_primitive().tensor();
    let node = x.node.clone();
    let out = flex_rope(
        Tensor::from_primitive(TensorPrimitive::Float(x.primitive)),
        cos.clone(),
        sin.clone(),
        Direction::Forward,
    )
    .into_primitive()
    .tensor();
    let out = match RopeBackward
        .prepare::<NoCheckpointing>([node])
        // Marked compute-bound: memory-bound ops must be able to rerun their forward pass
        // under a checkpointing strategy, and training's graph keeps every activation anyway.
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(
            (cos.into_primitive().tensor(), sin.into_primitive().tensor()),
            out,
        ),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}
