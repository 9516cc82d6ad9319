//! Attention's softmax and the gated MLP activation with a backward pass that keeps less than
//! Burn's composites do, for training memory (issue #12).
//!
//! Burn's autodiff softmax is built from `exp` (which keeps its input) and a division (which
//! keeps its output): 8 bytes per f32 score, where PyTorch keeps the output alone. Burn's
//! `silu(g) · u` keeps `g`, `σ(g)`, `silu(g)` and `u`. Burn 0.21 has no user-level custom
//! backward for a generic `B: Backend`, so both are written as the value computed off the graph
//! plus a surrogate `s` that is linear in the inputs, whose Jacobian is the op's and which enters
//! as `s − detach(s)`, exactly zero in the forward pass. The backward pass then keeps only the
//! surrogate's constant coefficients:
//! - softmax: `y ⊙ (x − Σ y ⊙ x)` has Jacobian `diag(y) − y yᵀ` and keeps `y` (4 bytes a score);
//! - `act(g) · u`: `act(g) ⊙ u + (u ⊙ act'(g)) ⊙ g` keeps two tensors in the hidden dtype.
//!
//! Without autodiff both are the plain ops. On burn-flex both run as CPU kernels with the same
//! backward ([`super::softmax_kernel`], [`super::silu_mul_kernel`]); these are the other
//! backends' forms.

use burn::tensor::activation::{gelu_approximate, sigmoid, silu, softmax};
use burn::tensor::{FloatDType, Tensor, backend::Backend};

use super::silu_mul_kernel::try_silu_mul;
use super::softmax_kernel;
use crate::kernel::matmul::matmul;

/// `softmax(masked(scores))` over the last axis. `masked` applies the attention mask (fill or
/// additive bias) to a copy of the scores; the gradient of masked positions is zero, as their
/// probability is.
pub fn masked_softmax<B: Backend, const D: usize>(
    scores: Tensor<B, D>,
    masked: impl FnOnce(Tensor<B, D>) -> Tensor<B, D>,
) -> Tensor<B, D> {
    let last = D - 1;
    if softmax_kernel::applies(&scores) {
        let masked = masked(scores.clone().detach());
        return softmax_kernel::softmax(scores, masked);
    }
    if !B::ad_enabled(&scores.device()) {
        return softmax(masked(scores), last);
    }
    let probs = softmax(masked(scores.clone().detach()), last);
    let surrogate = softmax_surrogate(probs.clone(), scores);
    surrogate.clone() - surrogate.detach() + probs
}

/// `p ⊙ (x − Σ p ⊙ x)` over the last axis: linear in the scores `x`, with the softmax's
/// Jacobian `diag(p) − p pᵀ` at the probabilities `p` (a constant); its graph keeps `p`.
fn softmax_surrogate<B: Backend, const D: usize>(
    probs: Tensor<B, D>,
    scores: Tensor<B, D>,
) -> Tensor<B, D> {
    // Unmasked scores are finite, so masked positions contribute 0 · x = 0 to the sum.
    let mean = (probs.clone() * scores.clone()).sum_dim(D - 1);
    probs * (scores - mean)
}

/// `softmax(masked(scores)) · v` for `scores: [.., s, t]` and `v: [.., t, d]` in the hidden
/// dtype, as transformers' eager attention computes it: the masked softmax in f32, the
/// probabilities rounded to `v`'s dtype, the product accumulated in f32 and rounded once.
///
/// Under autodiff the graph keeps the rounded probabilities once, in `v`'s dtype (2 bytes a
/// score with a bf16 `v`), and `v` itself; the composite (softmax, cast, matmul) keeps the
/// f32 probabilities and their copy in `v`'s dtype: 6 bytes a score. The value `p · v` is
/// differentiated directly with respect to `v` (the product keeps `p`); the scores get their
/// gradient through `s(x) · v − detach(·)`, `s` the softmax's surrogate at `p`, which is
/// exactly zero in the forward pass. With a half-precision `v` the surrogate's backward runs
/// in that dtype: the probabilities' gradient `dO · vᵀ` is rounded to it as in the composite
/// (whose `dP` is a bf16 matmul's output), and the softmax's Jacobian is applied in it, within
/// a few roundings of the composite's f32 Jacobian, whose result the product `q · kᵀ`
/// rounds to the hidden dtype anyway.
pub fn softmax_times_v<B: Backend, const D: usize>(
    scores: Tensor<B, D>,
    masked: impl FnOnce(Tensor<B, D>) -> Tensor<B, D>,
    v: Tensor<B, D>,
) -> Tensor<B, D> {
    let last = D - 1;
    let dtype = FloatDType::from(v.dtype());
    if softmax_kernel::applies(&scores) && dtype == FloatDType::F32 {
        let masked = masked(scores.clone().detach());
        return matmul(softmax_kernel::softmax(scores, masked), v);
    }
    let probs =
        |scores: Tensor<B, D>| softmax(masked(scores.cast(FloatDType::F32)), last).cast(dtype);
    if !B::ad_enabled(&scores.device()) {
        return matmul(probs(scores), v);
    }
    let probs = probs(scores.clone().detach());
    let surrogate = softmax_surrogate(probs.clone(), scores.cast(dtype)).matmul(v.clone().detach());
    let value = probs.matmul(v);
    surrogate.clone() - surrogate.detach() + value
}

/// The gated MLP activations of the Llama family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateActivation {
    /// `silu(g) = g · σ(g)` (Llama, Mistral, Qwen2).
    Silu,
    /// GeLU with the tanh approximation (Gemma).
    GeluTanh,
}

impl GateActivation {
    fn value<B: Backend, const D: usize>(self, g: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            GateActivation::Silu => silu(g),
            GateActivation::GeluTanh => gelu_approximate(g),
        }
    }

    /// The derivative, elementwise.
    fn slope<B: Backend, const D: usize>(self, g: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            // σ(g) · (1 + g · (1 − σ(g)))
            GateActivation::Silu => {
                let s = sigmoid(g.clone());
                s.clone() * (g * (s.neg() + 1.0) + 1.0)
            }
            // ½(1 + t) + ½ g (1 − t²) k (1 + 3c g²), t = tanh(k (g + c g³)), k = √(2/π)
            GateActivation::GeluTanh => {
                let (k, c) = ((2.0 / std::f64::consts::PI).sqrt(), 0.044715);
                let g2 = g.clone().square();
                let t = (g.clone() * (g2.clone() * c + 1.0) * k).tanh();
                let half_one_plus_t = (t.clone() + 1.0) * 0.5;
                let inner = (g2 * (3.0 * c) + 1.0) * k;
                half_one_plus_t + g * (t.square().neg() + 1.0) * inner * 0.5
            }
        }
    }
}

/// `act(gate) · up`, the activation computed in f32 and rounded once to the hidden dtype (as
/// transformers does), the product in the hidden dtype.
pub fn gated_activation<B: Backend, const D: usize>(
    gate: Tensor<B, D>,
    up: Tensor<B, D>,
    act: GateActivation,
) -> Tensor<B, D> {
    // burn-flex: one CPU kernel for the value and the factors of its gradient.
    let (gate, up) = match act {
        GateActivation::Silu => match try_silu_mul(gate, up) {
            Ok(out) => return out,
            Err(unsupported) => unsupported,
        },
        GateActivation::GeluTanh => (gate, up),
    };
    gated_activation_composite(gate, up, act)
}

/// [`gated_activation`] as tensor ops, on every backend.
pub fn gated_activation_composite<B: Backend, const D: usize>(
    gate: Tensor<B, D>,
    up: Tensor<B, D>,
    act: GateActivation,
) -> Tensor<B, D> {
    let dtype = FloatDType::from(gate.dtype());
    if !B::ad_enabled(&gate.device()) {
        return act.value(gate.cast(FloatDType::F32)).cast(dtype) * up;
    }
    let g = gate.clone().detach().cast(FloatDType::F32);
    let u = up.clone().detach();
    let activated = act.value(g.clone()).cast(dtype);
    let slope = (act.slope(g) * u.clone().cast(FloatDType::F32)).cast(dtype);
    let out = activated.clone() * u;
    let surrogate = activated * up + slope * gate;
    surrogate.clone() - surrogate.detach() + out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Cpu, Train};
    use burn::tensor::{Distribution, Tolerance};

    type B = Train<Cpu>;

    fn random(shape: [usize; 3], scale: f64) -> Tensor<B, 3> {
        Tensor::random(shape, Distribution::Normal(0.0, scale), &Default::default())
    }

    /// Value and gradient against Burn's composite ops, with masked positions.
    #[test]
    fn masked_softmax_matches_burns_softmax_and_its_gradient() {
        use burn::tensor::ElementConversion;
        // On burn-flex this is the CPU kernel: values and gradients within 1e-6 relative of
        // Burn's composite softmax, on a tiny and an attention-sized shape, a permuted
        // (non-contiguous) input included, and without autodiff.
        let relative = |got: Tensor<Cpu, 3>, want: Tensor<Cpu, 3>| -> f64 {
            let scale: f64 = want.clone().abs().max().into_scalar().elem();
            let err: f64 = (got - want).abs().max().into_scalar().elem();
            err / scale
        };
        for (shape, permuted) in [([2, 5, 7], false), ([6, 70, 257], true)] {
            let x = if permuted {
                random([shape[1], shape[0], shape[2]], 2.0).swap_dims(0, 1)
            } else {
                random(shape, 2.0)
            };
            let weights = random(shape, 1.0);
            let mask = random(shape, 1.0).greater_elem(0.8);
            let run = |lean: bool| {
                let x = x.clone().require_grad();
                let mask = mask.clone();
                let y = if lean {
                    masked_softmax(x.clone(), |s| s.mask_fill(mask, f32::NEG_INFINITY))
                } else {
                    softmax(x.clone().mask_fill(mask, f32::NEG_INFINITY), 2)
                };
                let grads = (y.clone() * weights.clone()).sum().backward();
                (y.inner(), x.grad(&grads).unwrap())
            };
            let ((y, dx), (y_ref, dx_ref)) = (run(true), run(false));
            let err = relative(y, y_ref.clone());
            assert!(err <= 1e-6, "{shape:?}: values differ by {err:e}");
            let err = relative(dx, dx_ref);
            assert!(err <= 1e-6, "{shape:?}: gradients differ by {err:e}");
            let inference = masked_softmax(x.clone().inner(), |s| {
                s.mask_fill(mask.clone().inner(), f32::NEG_INFINITY)
            });
            let err = relative(inference, y_ref);
            assert!(err <= 1e-6, "{shape:?}: inference differs by {err:e}");
        }
    }

    /// Normal values from a fixed seed: the same inputs on every run, whatever other tests do
    /// to the backend's generator.
    fn seeded(shape: [usize; 3], scale: f32, seed: u64) -> Tensor<B, 3> {
        let mut rng = crate::linalg::gaussian::rng(seed);
        let values = crate::linalg::gaussian::standard_normal(&mut rng, shape.iter().product(), 1);
        let values: Vec<f32> = (0..values.nrows())
            .map(|i| values[(i, 0)] * scale)
            .collect();
        Tensor::from_data(
            burn::tensor::TensorData::new(values, shape),
            &Default::default(),
        )
    }

    /// Bit for bit the composite's value (softmax, cast, matmul) in bf16 and f32; gradients
    /// within the bf16 rounding of the probabilities (bf16) or 1e-5 (f32). The inputs are
    /// seeded: drawn afresh each run, the bf16 gradient once in many runs rounded 2.15e-2 away
    /// from the composite's, past the bound.
    #[test]
    fn softmax_times_v_matches_the_composite() {
        let x = seeded([2, 5, 7], 2.0, 1);
        let v = seeded([2, 7, 3], 1.0, 2);
        let weights = seeded([2, 5, 3], 1.0, 3);
        let mask = seeded([2, 5, 7], 1.0, 4).greater_elem(0.8);
        for dtype in [FloatDType::BF16, FloatDType::F32] {
            let run = |lean: bool| {
                // The scores in the hidden dtype, as attention computes them.
                let x = x.clone().cast(dtype).require_grad();
                let v = v.clone().cast(dtype).require_grad();
                let fill = |s: Tensor<B, 3>| s.mask_fill(mask.clone(), f32::NEG_INFINITY);
                let y = if lean {
                    softmax_times_v(x.clone(), fill, v.clone())
                } else {
                    let x = x.clone().cast(FloatDType::F32);
                    softmax(fill(x), 2).cast(dtype).matmul(v.clone())
                };
                let loss = (y.clone().cast(FloatDType::F32) * weights.clone()).sum();
                let grads = loss.backward();
                let dv = v.grad(&grads).unwrap().cast(FloatDType::F32);
                let dx = x.grad(&grads).unwrap().cast(FloatDType::F32);
                (y.inner(), dx, dv)
            };
            let ((y, dx, dv), (y_ref, dx_ref, dv_ref)) = (run(true), run(false));
            y.into_data().assert_eq(&y_ref.into_data(), true);
            let tol = if dtype == FloatDType::F32 {
                Tolerance::absolute(1e-5)
            } else {
                Tolerance::absolute(2e-2)
            };
            dx.into_data()
                .assert_approx_eq::<f32>(&dx_ref.into_data(), tol);
            dv.into_data()
                .assert_approx_eq::<f32>(&dv_ref.into_data(), tol);
        }
    }

    #[test]
    fn gated_activation_matches_the_composite_and_its_gradients() {
        for act in [GateActivation::Silu, GateActivation::GeluTanh] {
            let (g, u) = (random([2, 3, 11], 3.0), random([2, 3, 11], 1.0));
            let weights = random([2, 3, 11], 1.0);
            let run = |lean: bool| {
                let (g, u) = (g.clone().require_grad(), u.clone().require_grad());
                let y = if lean {
                    gated_activation(g.clone(), u.clone(), act)
                } else {
                    act.value(g.clone()) * u.clone()
                };
                let grads = (y.clone() * weights.clone()).sum().backward();
                (y.inner(), g.grad(&grads).unwrap(), u.grad(&grads).unwrap())
            };
            let (lean, plain) = (run(true), run(false));
            let tol = Tolerance::absolute(1e-5);
            lean.0
                .into_data()
                .assert_approx_eq::<f32>(&plain.0.into_data(), tol);
            lean.1
                .into_data()
                .assert_approx_eq::<f32>(&plain.1.into_data(), tol);
            lean.2
                .into_data()
                .assert_approx_eq::<f32>(&plain.2.into_data(), tol);
        }
    }

    /// The burn-flex kernel against the composite it replaces: values and both gradients
    /// within 1e-6 relative, on random shapes, permuted (non-contiguous) inputs included, and
    /// without autodiff.
    #[test]
    fn silu_mul_kernel_matches_the_composite() {
        use burn::tensor::ElementConversion;
        B::seed(&Default::default(), 5);
        let relative = |got: Tensor<Cpu, 3>, want: Tensor<Cpu, 3>| -> f64 {
            let scale: f64 = want.clone().abs().max().into_scalar().elem();
            let err: f64 = (got - want).abs().max().into_scalar().elem();
            err / scale
        };
        for (shape, permuted) in [
            ([2, 3, 11], false),
            ([3, 40, 700], true),
            ([1, 1, 5], false),
        ] {
            let input = |scale| {
                if permuted {
                    random([shape[1], shape[0], shape[2]], scale).swap_dims(0, 1)
                } else {
                    random(shape, scale)
                }
            };
            let (g, u, weights) = (input(4.0), input(1.0), random(shape, 1.0));
            let run = |kernel: bool| {
                let (g, u) = (g.clone().require_grad(), u.clone().require_grad());
                let y = if kernel {
                    gated_activation(g.clone(), u.clone(), GateActivation::Silu)
                } else {
                    gated_activation_composite(g.clone(), u.clone(), GateActivation::Silu)
                };
                let grads = (y.clone() * weights.clone()).sum().backward();
                [y.inner(), g.grad(&grads).unwrap(), u.grad(&grads).unwrap()]
            };
            let (kernel, composite) = (run(true), run(false));
            for (what, got, want) in [
                ("values", &kernel[0], &composite[0]),
                ("gate gradient", &kernel[1], &composite[1]),
                ("up gradient", &kernel[2], &composite[2]),
            ] {
                let err = relative(got.clone(), want.clone());
                assert!(
                    err <= 1e-6,
                    "{shape:?} permuted {permuted}: {what} differ by {err:e}"
                );
            }
            let inference =
                gated_activation(g.clone().inner(), u.clone().inner(), GateActivation::Silu);
            let err = relative(inference, composite[0].clone());
            assert!(err <= 1e-6, "{shape:?}: inference differs by {err:e}");
        }
    }
}
