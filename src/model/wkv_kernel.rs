//! The WKV recurrence as one CPU kernel for burn-flex, forward and backward: the step-by-step
//! definition run on the host, heads in parallel (rayon). It is `O(T · N²)` per head, as the
//! chunked composite is, but without the composite's dozens of full-size tensor ops (the
//! pairwise decays alone are `chunk ×` an activation per op): at `bench train`'s shapes one
//! layer's WKV forward and backward take milliseconds instead of over a second. There is no
//! cumulative decay to overflow: each step multiplies the state by its own decay.
//!
//! Burn's backend-extension pattern, dispatched at run time (see [`crate::kernel::dispatch`]).
//!
//! The backward pass recomputes the forward states from checkpoints every 16 steps (`SEGMENT`)
//! and runs the adjoint recurrence backwards:
//! `dS_t = diag(w_t) dS_{t+1} + r_tᵀ dout_t`, with `dr`, `dk`, `dv`, `dw` and `du` read off
//! each step.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};
use rayon::prelude::*;

use crate::kernel::dispatch::{
    FlexAutodiff as Ad, KernelBackend, device_tensor, host, inner, recast,
};

/// The inputs of one WKV call, `[batch, heads, seq, head_size]` (f32): receptance, key, value
/// and log-decay (`lw = -exp(·) ≤ 0`); `u` is `[heads, head_size]`.
pub struct WkvInputs<B: Backend> {
    pub r: Tensor<B, 4>,
    pub k: Tensor<B, 4>,
    pub v: Tensor<B, 4>,
    pub lw: Tensor<B, 4>,
    pub u: Tensor<B, 2>,
}

/// Steps between the forward states the backward pass keeps.
const SEGMENT: usize = 16;

/// What [`try_wkv6`] hands back when the kernel does not apply.
pub type Unsupported<B> = (WkvInputs<B>, Option<Tensor<B, 4>>);

/// The kernel's result when `B` is burn-flex (or burn-flex under autodiff) and the inputs are
/// f32; the inputs back otherwise.
#[allow(clippy::type_complexity)]
pub fn try_wkv6<B: Backend>(
    inputs: WkvInputs<B>,
    state: Option<Tensor<B, 4>>,
) -> Result<(Tensor<B, 4>, Tensor<B, 4>), Unsupported<B>> {
    let f32s = [&inputs.r, &inputs.k, &inputs.v, &inputs.lw]
        .iter()
        .all(|t| t.dtype() == DType::F32)
        && inputs.u.dtype() == DType::F32
        && state.as_ref().is_none_or(|s| s.dtype() == DType::F32);
    if !f32s {
        return Err((inputs, state));
    }
    match KernelBackend::of::<B>() {
        Some(KernelBackend::Flex) => {
            let (inputs, state) = recast::<_, Unsupported<Flex>>((inputs, state));
            let (out, state) = flex_forward(&inputs, state);
            Ok(recast((out, state)))
        }
        Some(KernelBackend::FlexAutodiff) => {
            let (inputs, state) = recast::<_, Unsupported<Ad>>((inputs, state));
            Ok(recast(autodiff_forward(inputs, state)))
        }
        None => Err((inputs, state)),
    }
}

/// `[batch, heads, seq, N]`.
#[derive(Clone, Copy, Debug)]
struct Dims {
    b: usize,
    h: usize,
    t: usize,
    n: usize,
}

/// The host inputs: r, k, v, lw as `[b·h][t][n]`, u as `[h][n]`, the initial state
/// `[b·h][n][n]` (zeros when absent).
struct HostInputs {
    r: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    lw: Vec<f32>,
    u: Vec<f32>,
    s0: Vec<f32>,
    dims: Dims,
}

impl HostInputs {
    fn of(inputs: &WkvInputs<Flex>, state: Option<Tensor<Flex, 4>>) -> Self {
        let [b, h, t, n] = inputs.r.dims();
        let dims = Dims { b, h, t, n };
        Self {
            r: host(inputs.r.clone()),
            k: host(inputs.k.clone()),
            v: host(inputs.v.clone()),
            lw: host(inputs.lw.clone()),
            u: host(inputs.u.clone().reshape([1, 1, h, n])),
            s0: state.map_or_else(|| vec![0.0; b * h * n * n], host),
            dims,
        }
    }

    /// One head's slices: r, k, v, lw (`[t][n]`), u (`[n]`), s0 (`[n][n]`).
    fn head(&self, bh: usize) -> [&[f32]; 6] {
        let Dims { h, t, n, .. } = self.dims;
        let seq = bh * t * n..(bh + 1) * t * n;
        [
            &self.r[seq.clone()],
            &self.k[seq.clone()],
            &self.v[seq.clone()],
            &self.lw[seq],
            &self.u[(bh % h) * n..(bh % h + 1) * n],
            &self.s0[bh * n * n..(bh + 1) * n * n],
        ]
    }
}

/// One step of the recurrence: `out = r (diag(u) kᵀ v + S)`, then `S ← kᵀ v + diag(w) S`.
#[inline]
fn step(r: &[f32], k: &[f32], v: &[f32], lw: &[f32], u: &[f32], s: &mut [f32], out: &mut [f32]) {
    let n = r.len();
    let bonus: f32 = (0..n).map(|i| r[i] * u[i] * k[i]).sum();
    for (o, &vj) in out.iter_mut().zip(v) {
        *o = bonus * vj;
    }
    for i in 0..n {
        let row = &mut s[i * n..(i + 1) * n];
        let (ri, ki, wi) = (r[i], k[i], lw[i].exp());
        for j in 0..n {
            out[j] += ri * row[j];
            row[j] = row[j] * wi + ki * v[j];
        }
    }
}

/// [`step`] on step `t` of one head's `[r, k, v, lw]` (`[t][n]`) with its `u`.
#[inline]
fn step_at(x: [&[f32]; 5], t: usize, s: &mut [f32], out: &mut [f32]) {
    let [r, k, v, lw, u] = x;
    let at = t * u.len()..(t + 1) * u.len();
    step(
        &r[at.clone()],
        &k[at.clone()],
        &v[at.clone()],
        &lw[at],
        u,
        s,
        out,
    );
}

/// Outputs `[b·h][t][n]` and final states `[b·h][n][n]`.
fn forward_host(x: &HostInputs) -> (Vec<f32>, Vec<f32>) {
    let Dims { b, h, t, n } = x.dims;
    let mut out = vec![0.0f32; b * h * t * n];
    let mut states = x.s0.clone();
    out.par_chunks_mut(t * n)
        .zip(states.par_chunks_mut(n * n))
        .enumerate()
        .for_each(|(bh, (out, s))| {
            let [r, k, v, lw, u, _] = x.head(bh);
            for (step_t, out) in out.chunks_mut(n).enumerate() {
                step_at([r, k, v, lw, u], step_t, s, out);
            }
        });
    (out, states)
}

/// The gradients of r, k, v, lw (`[b·h][t][n]`), u (`[h][n]`, summed over the batch) and the
/// initial state (`[b·h][n][n]`) for `grad`, per head the outputs' gradient (`[t][n]`) followed
/// by the final state's (`[n][n]`).
fn backward_host(x: &HostInputs, grad: &[f32]) -> [Vec<f32>; 6] {
    let Dims { b, h, t, n } = x.dims;
    let per_head: Vec<[Vec<f32>; 6]> = (0..b * h)
        .into_par_iter()
        .map(|bh| {
            let [r, k, v, lw, u, s0] = x.head(bh);
            let head = &grad[bh * (t * n + n * n)..(bh + 1) * (t * n + n * n)];
            let (dout, d_final) = head.split_at(t * n);
            // The state before each segment's first step.
            let segments = t.div_ceil(SEGMENT);
            let mut starts = Vec::with_capacity(segments * n * n);
            let mut s = s0.to_vec();
            let mut scratch = vec![0.0f32; n];
            for step_t in 0..t {
                if step_t % SEGMENT == 0 {
                    starts.extend_from_slice(&s);
                }
                step_at([r, k, v, lw, u], step_t, &mut s, &mut scratch);
            }
            let (mut dr, mut dk, mut dv, mut dlw) = (
                vec![0.0; t * n],
                vec![0.0; t * n],
                vec![0.0; t * n],
                vec![0.0; t * n],
            );
            let mut du = vec![0.0f32; n];
            let mut g = d_final.to_vec(); // dL/dS after the current step
            let mut states = vec![0.0f32; SEGMENT * n * n];
            for segment in (0..segments).rev() {
                let first = segment * SEGMENT;
                let last = (first + SEGMENT).min(t);
                // The states before each step of the segment.
                let mut s = starts[segment * n * n..(segment + 1) * n * n].to_vec();
                for step_t in first..last {
                    let slot = (step_t - first) * n * n;
                    states[slot..slot + n * n].copy_from_slice(&s);
                    step_at([r, k, v, lw, u], step_t, &mut s, &mut scratch);
                }
                for step_t in (first..last).rev() {
                    let slot = (step_t - first) * n * n;
                    let s = &states[slot..slot + n * n];
                    let at = step_t * n..(step_t + 1) * n;
                    let (rt, kt, vt, lwt, dot) = (
                        &r[at.clone()],
                        &k[at.clone()],
                        &v[at.clone()],
                        &lw[at.clone()],
                        &dout[at.clone()],
                    );
                    let dv_dot: f32 = (0..n).map(|j| dot[j] * vt[j]).sum();
                    let bonus: f32 = (0..n).map(|i| rt[i] * u[i] * kt[i]).sum();
                    let dvt = &mut dv[at.clone()];
                    for j in 0..n {
                        dvt[j] = bonus * dot[j];
                    }
                    for i in 0..n {
                        let (row, grow) = (&s[i * n..(i + 1) * n], &mut g[i * n..(i + 1) * n]);
                        let (mut dri, mut dki, mut dwi) = (0.0f32, 0.0f32, 0.0f32);
                        for j in 0..n {
                            dri += dot[j] * row[j];
                            dki += grow[j] * vt[j];
                            dwi += grow[j] * row[j];
                            dvt[j] += grow[j] * kt[i];
                        }
                        let wi = lwt[i].exp();
                        dr[step_t * n + i] = dri + u[i] * kt[i] * dv_dot;
                        dk[step_t * n + i] = dki + u[i] * rt[i] * dv_dot;
                        dlw[step_t * n + i] = dwi * wi;
                        du[i] += rt[i] * kt[i] * dv_dot;
                        for j in 0..n {
                            grow[j] = wi * grow[j] + rt[i] * dot[j];
                        }
                    }
                }
            }
            [dr, dk, dv, dlw, du, g]
        })
        .collect();
    let mut grads: [Vec<f32>; 6] = Default::default();
    let mut du = vec![0.0f32; h * n];
    for (bh, head) in per_head.into_iter().enumerate() {
        let [dr, dk, dv, dlw, du_head, ds0] = head;
        for (acc, d) in du[(bh % h) * n..(bh % h + 1) * n].iter_mut().zip(du_head) {
            *acc += d;
        }
        for (slot, part) in grads.iter_mut().zip([dr, dk, dv, dlw, Vec::new(), ds0]) {
            slot.extend(part);
        }
    }
    grads[4] = du;
    grads
}

fn flex_forward(
    inputs: &WkvInputs<Flex>,
    state: Option<Tensor<Flex, 4>>,
) -> (Tensor<Flex, 4>, Tensor<Flex, 4>) {
    let device = inputs.r.device();
    let x = HostInputs::of(inputs, state);
    let Dims { b, h, t, n } = x.dims;
    let (out, states) = forward_host(&x);
    (
        device_tensor(out, [b, h, t, n], &device),
        device_tensor(states, [b, h, n, n], &device),
    )
}

#[derive(Debug)]
struct WkvBackward;

/// What the backward pass keeps: the inputs on the inner backend.
#[derive(Clone, Debug)]
struct Saved {
    r: FloatTensor<Flex>,
    k: FloatTensor<Flex>,
    v: FloatTensor<Flex>,
    lw: FloatTensor<Flex>,
    u: FloatTensor<Flex>,
    s0: Option<FloatTensor<Flex>>,
}

impl Backward<Flex, 6> for WkvBackward {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, 6>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let grad: Tensor<Flex, 3> = inner(grads.consume::<Flex>(&ops.node));
        let saved = ops.state;
        let inputs = WkvInputs {
            r: inner(saved.r),
            k: inner(saved.k),
            v: inner(saved.v),
            lw: inner(saved.lw),
            u: inner(saved.u),
        };
        let device = inputs.r.device();
        let x = HostInputs::of(&inputs, saved.s0.map(inner));
        let Dims { b, h, t, n } = x.dims;
        let grad = grad
            .into_data()
            .into_vec::<f32>()
            .expect("the kernel runs on f32");
        let [dr, dk, dv, dlw, du, ds0] = backward_host(&x, &grad);
        let sequence = |values| {
            device_tensor(values, [b, h, t, n], &device)
                .into_primitive()
                .tensor()
        };
        let du = Tensor::<Flex, 2>::from_data(TensorData::new(du, [h, n]), &device);
        let computed = [
            sequence(dr),
            sequence(dk),
            sequence(dv),
            sequence(dlw),
            du.into_primitive().tensor(),
            device_tensor(ds0, [b, h, n, n], &device)
                .into_primitive()
                .tensor(),
        ];
        for (parent, grad) in ops.parents.iter().zip(computed) {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

fn autodiff_forward(
    inputs: WkvInputs<Ad>,
    state: Option<Tensor<Ad, 4>>,
) -> (Tensor<Ad, 4>, Tensor<Ad, 4>) {
    let device = inputs.r.device();
    let [b, h, _, n] = inputs.r.dims();
    let s0 = state.unwrap_or_else(|| Tensor::zeros([b, h, n, n], &device));
    let tracked = [
        inputs.r.clone(),
        inputs.k.clone(),
        inputs.v.clone(),
        inputs.lw.clone(),
    ];
    let primitives = tracked.map(|t| t.into_primitive().tensor());
    let u = inputs.u.clone().into_primitive().tensor();
    let s0p = s0.clone().into_primitive().tensor();
    let nodes = [
        primitives[0].node.clone(),
        primitives[1].node.clone(),
        primitives[2].node.clone(),
        primitives[3].node.clone(),
        u.node.clone(),
        s0p.node.clone(),
    ];
    let inner_inputs = WkvInputs {
        r: inputs.r.inner(),
        k: inputs.k.inner(),
        v: inputs.v.inner(),
        lw: inputs.lw.inner(),
        u: inputs.u.inner(),
    };
    // One output, each head's outputs followed by its final state, so that the backward pass
    // gets the gradients of both.
    let x = HostInputs::of(&inner_inputs, Some(s0.clone().inner()));
    let Dims { t, .. } = x.dims;
    let (out, states) = forward_host(&x);
    let combined: Vec<f32> = out
        .chunks(t * n)
        .zip(states.chunks(n * n))
        .flat_map(|(o, s)| o.iter().chain(s).copied())
        .collect();
    let combined =
        Tensor::<Flex, 3>::from_data(TensorData::new(combined, [b, h, t * n + n * n]), &device)
            .into_primitive()
            .tensor();
    let combined = match WkvBackward
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let saved = Saved {
                r: inner_inputs.r.into_primitive().tensor(),
                k: inner_inputs.k.into_primitive().tensor(),
                v: inner_inputs.v.into_primitive().tensor(),
                lw: inner_inputs.lw.into_primitive().tensor(),
                u: inner_inputs.u.into_primitive().tensor(),
                s0: Some(s0.inner().into_primitive().tensor()),
            };
            prep.finish(saved, combined)
        }
        OpsKind::UnTracked(prep) => prep.finish(combined),
    };
    let combined: Tensor<Ad, 3> = Tensor::from_primitive(TensorPrimitive::Float(combined));
    let out = combined
        .clone()
        .slice([0..b, 0..h, 0..t * n])
        .reshape([b, h, t, n]);
    let state = combined
        .slice([0..b, 0..h, t * n..t * n + n * n])
        .reshape([b, h, n, n]);
    (out, state)
}
