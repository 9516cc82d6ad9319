//! `silu(gate) · up`, the Llama MLP's gated activation, as one CPU kernel for burn-flex.
//!
//! The composite ([`super::lean_backward::gated_activation`]) builds the value, the activation
//! and its slope with about a dozen full-size elementwise ops on one thread (sigmoid, products,
//! sums, the surrogate that carries the gradient), and its backward two more products. The
//! kernel reads `gate` and `up` once, rows in parallel, and writes the output with the two
//! factors the backward pass needs: `silu(g)` (the gradient of `up`) and
//! `σ(g)·(1 + g·(1 − σ(g)))·u` (that of `gate`), which is what the composite's graph keeps
//! too. Values agree with the composite to rounding (`σ` is computed as `1 / (1 + e^{−g})`;
//! tested within 1e-6 relative). Burn's dispatch at run time: see
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

/// What [`try_silu_mul`] hands back when the kernel does not apply.
pub type Unsupported<B, const D: usize> = (Tensor<B, D>, Tensor<B, D>);

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// `silu(gate) · up` when `B` is burn-flex (or burn-flex under autodiff) and both are f32 of
/// one shape; the inputs back otherwise.
pub fn try_silu_mul<B: Backend, const D: usize>(
    gate: Tensor<B, D>,
    up: Tensor<B, D>,
) -> Result<Tensor<B, D>, Unsupported<B, D>> {
    let supported =
        gate.dtype() == DType::F32 && up.dtype() == DType::F32 && gate.dims() == up.dims();
    match KernelBackend::of::<B>() {
        Some(KernelBackend::Flex) if supported => {
            let (gate, up) = recast::<_, (Tensor<Flex, D>, Tensor<Flex, D>)>((gate, up));
            let shape = gate.dims();
            let device = gate.device();
            let (out, _) = silu_mul_host(&host(gate), &host(up), false);
            Ok(recast(device_tensor(out, shape, &device)))
        }
        Some(KernelBackend::FlexAutodiff) if supported => {
            let (gate, up) = recast::<_, (Tensor<Ad, D>, Tensor<Ad, D>)>((gate, up));
            Ok(recast(autodiff_silu_mul(gate, up)))
        }
        _ => Err((gate, up)),
    }
}

/// The output, and with `with_factors` the factors of the backward pass (`silu(g)` and
/// `silu'(g)·u`).
fn silu_mul_host(
    gate: &[f32],
    up: &[f32],
    with_factors: bool,
) -> (Vec<f32>, Option<[Vec<f32>; 2]>) {
    let n = gate.len();
    let mut out = vec![0.0f32; n];
    if !with_factors {
        out.par_chunks_mut(CHUNK)
            .zip(gate.par_chunks(CHUNK).zip(up.par_chunks(CHUNK)))
            .for_each(|(out, (gate, up))| {
                for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
                    let s = 1.0 / (1.0 + (-g).exp());
                    *o = g * s * u;
                }
            });
        return (out, None);
    }
    let (mut activated, mut slope) = (vec![0.0f32; n], vec![0.0f32; n]);
    out.par_chunks_mut(CHUNK)
        .zip(
            activated
                .par_chunks_mut(CHUNK)
                .zip(slope.par_chunks_mut(CHUNK)),
        )
        .zip(gate.par_chunks(CHUNK).zip(up.par_chunks(CHUNK)))
        .for_each(|((out, (activated, slope)), (gate, up))| {
            for i in 0..out.len() {
                let (g, u) = (gate[i], up[i]);
                let s = 1.0 / (1.0 + (-g).exp());
                let a = g * s;
                activated[i] = a;
                slope[i] = s * (g * (1.0 - s) + 1.0) * u;
                out[i] = a * u;
            }
        });
    (out, Some([activated, slope]))
}

#[derive(Debug)]
struct SiluMulBackward<const D: usize>;

impl<const D: usize> Backward<Flex, 2> for SiluMulBackward<D> {
    /// `silu(g)` and `silu'(g)·u`.
    type State = (FloatTensor<Flex>, FloatTensor<Flex>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad: Tensor<Flex, D> = inner(grads.consume::<Flex>(&ops.node));
        let (activated, slope) = ops.state;
        let [gate_node, up_node] = &ops.parents;
        if let Some(node) = gate_node {
            let d_gate = grad.clone() * inner::<D>(slope);
            grads.register::<Flex>(node.id, d_gate.into_primitive().tensor());
        }
        if let Some(node) = up_node {
            let d_up = grad * inner::<D>(activated);
            grads.register::<Flex>(node.id, d_up.into_primitive().tensor());
        }
    }
}

fn autodiff_silu_mul<const D: usize>(gate: Tensor<Ad, D>, up: Tensor<Ad, D>) -> Tensor<Ad, D> {
    let shape = gate.dims();
    let (gate, up) = (gate.into_primitive().tensor(), up.into_primitive().tensor());
    let nodes = [gate.node.clone(), up.node.clone()];
    let (gate, up): (Tensor<Flex, D>, Tensor<Flex, D>) =
        (inner(gate.primitive), inner(up.primitive));
    let device = gate.device();
    let (out, factors) = silu_mul_host(&host(gate), &host(up), true);
    let out = device_tensor(out, shape, &device).into_primitive().tensor();
    let out = match SiluMulBackward::<D>
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let [activated, slope] = factors.expect("computed with the factors");
            let state = (
                device_tensor(activated, shape, &device)
                    .into_primitive()
                    .tensor(),
                device_tensor(slope, shape, &device)
                    .into_primitive()
                    .tensor(),
            );
            prep.finish(state, out)
        }
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}
