//! SORSA's orthonormal regularizer (METHODS.md):
//! `L_reg = (1/K) Σ_layers (‖A Aᵀ − I‖_F + ‖Bᵀ B − I‖_F)`, K = 2·(number of SORSA layers),
//! with its closed-form gradient. In Burn layout (`a = Aᵀ: [in, r]`, `b = Bᵀ: [r, out]`):
//! `∂‖aᵀa − I‖/∂a = 2 a M / ‖M‖` and `∂‖b bᵀ − I‖/∂b = 2 M b / ‖M‖` (M symmetric). `S` gets no
//! gradient. The norm is not squared, so its gradient `M/‖M‖` is undefined at M = 0: below
//! [`ORTHO_EPS`]·r (f32 rounding noise of an orthonormal matrix) it is defined as 0.
//! Everything stays on the device: a training step reads `L_reg` back with its other numbers.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{ElementConversion, Tensor, backend::AutodiffBackend, backend::Backend};

use super::HasAdapters;
use super::linear::Adapter;

/// Per-rank threshold on ‖M‖_F under which M counts as zero (rounding noise).
pub const ORTHO_EPS: f64 = 1e-5;

/// The regularizer's value and gradient with respect to each SORSA factor, on the device.
#[derive(Debug, Clone)]
pub struct Regularization<B: Backend> {
    /// `L_reg`, `[1]` (read it with [`Regularization::value`]); `None` without SORSA layers.
    pub value: Option<Tensor<B, 1>>,
    /// Number of SORSA layers it covers.
    pub layers: usize,
    /// `∂L_reg/∂p` for each SORSA `a` and `b` parameter (empty when only the value was asked for).
    pub grads: Vec<(ParamId, Tensor<B, 2>)>,
}

impl<B: Backend> Regularization<B> {
    /// `L_reg` on the host (a synchronisation; 0 without SORSA layers).
    pub fn value(&self) -> f64 {
        self.value
            .clone()
            .map_or(0.0, |value| value.into_scalar().elem())
    }
}

/// `M = aᵀa − I` (columns orthonormal) or `b bᵀ − I` (rows), its rank and `‖M‖_F` (`[1]`).
fn deviation<B: Backend>(
    factor: &Tensor<B, 2>,
    columns_orthonormal: bool,
) -> (Tensor<B, 2>, usize, Tensor<B, 1>) {
    let (gram, rank) = if columns_orthonormal {
        let rank = factor.dims()[1];
        (factor.clone().transpose().matmul(factor.clone()), rank)
    } else {
        let rank = factor.dims()[0];
        (factor.clone().matmul(factor.clone().transpose()), rank)
    };
    let m = gram - Tensor::eye(rank, &factor.device());
    let norm = m.clone().square().sum().sqrt();
    (m, rank, norm)
}

/// One factor's gradient `2 a M / ‖M‖` (or `2 M b / ‖M‖`), zero where ‖M‖ is rounding noise;
/// computed on the device without reading the norm back.
fn term_gradient<B: Backend>(
    factor: Tensor<B, 2>,
    columns_orthonormal: bool,
    m: Tensor<B, 2>,
    rank: usize,
    norm: Tensor<B, 1>,
) -> Tensor<B, 2> {
    let grad = if columns_orthonormal {
        factor.matmul(m)
    } else {
        m.matmul(factor)
    };
    let counts = norm.clone().greater_elem(ORTHO_EPS * rank as f64).float();
    // 2/‖M‖ where it counts, 0 below the threshold (the clamp only keeps 0 · ∞ out).
    let scale = counts.mul_scalar(2.0) / norm.clamp_min(f32::MIN_POSITIVE);
    let dims = grad.dims();
    grad * scale.reshape([1, 1]).expand(dims)
}

/// Value (and, with `gradients`, gradient) over the given SORSA layers, each `(a, b)` with their
/// parameter ids. Nothing is read back to the host.
pub fn regularize<B: Backend>(
    factors: Vec<(ParamId, Tensor<B, 2>, ParamId, Tensor<B, 2>)>,
) -> Regularization<B> {
    regularize_with(factors, true)
}

fn regularize_with<B: Backend>(
    factors: Vec<(ParamId, Tensor<B, 2>, ParamId, Tensor<B, 2>)>,
    gradients: bool,
) -> Regularization<B> {
    let layers = factors.len();
    let mut value: Option<Tensor<B, 1>> = None;
    let mut grads = Vec::with_capacity(if gradients { 2 * layers } else { 0 });
    let k = 2.0 * layers as f64;
    for (a_id, a, b_id, b) in factors {
        for (id, factor, columns) in [(a_id, a, true), (b_id, b, false)] {
            let (m, rank, norm) = deviation(&factor, columns);
            if gradients {
                let grad = term_gradient(factor, columns, m, rank, norm.clone());
                grads.push((id, grad.div_scalar(k)));
            }
            value = Some(match value {
                Some(sum) => sum + norm,
                None => norm,
            });
        }
    }
    Regularization {
        value: value.map(|sum| sum.div_scalar(k)),
        layers,
        grads,
    }
}

/// The SORSA factors of a model, read from any backend.
fn sorsa_factors<B: Backend, M: HasAdapters<B>>(
    model: &M,
) -> Vec<(ParamId, Tensor<B, 2>, ParamId, Tensor<B, 2>)> {
    model
        .adapted_layers()
        .into_iter()
        .filter_map(|layer| match &layer.adapter {
            Adapter::Sorsa(s) => Some((s.a.id, s.a.val(), s.b.id, s.b.val())),
            _ => None,
        })
        .collect()
}

/// `L_reg` of a model (for logging and evaluation; any backend).
pub fn regularizer_value<B: Backend, M: HasAdapters<B>>(model: &M) -> f64 {
    let factors = sorsa_factors(model)
        .into_iter()
        .map(|(ia, a, ib, b)| (ia, a.detach(), ib, b.detach()))
        .collect();
    regularize_with::<B>(factors, false).value()
}

/// Value and gradient of a model under training, computed outside the autodiff graph.
pub fn regularizer_gradients<B: AutodiffBackend, M: HasAdapters<B>>(
    model: &M,
) -> Regularization<B::InnerBackend> {
    regularize_with(inner_factors(model), true)
}

/// Only the value of a model under training (γ = 0: logged, not applied), on the device.
pub fn regularizer_value_on_device<B: AutodiffBackend, M: HasAdapters<B>>(
    model: &M,
) -> Regularization<B::InnerBackend> {
    regularize_with(inner_factors(model), false)
}

/// Factors as inner-backend tensors (no autodiff graph).
type InnerFactors<B> = Vec<(
    ParamId,
    Tensor<<B as AutodiffBackend>::InnerBackend, 2>,
    ParamId,
    Tensor<<B as AutodiffBackend>::InnerBackend, 2>,
)>;

fn inner_factors<B: AutodiffBackend, M: HasAdapters<B>>(model: &M) -> InnerFactors<B> {
    sorsa_factors(model)
        .into_iter()
        .map(|(ia, a, ib, b)| (ia, a.inner(), ib, b.inner()))
        .collect()
}

/// Reference mode: adds `weight · ∇L_reg` to the (already clipped) task gradients, where
/// `weight = γ / η₀` (divided by the accumulation steps when that option is on).
pub fn add_to_gradients<B: AutodiffBackend>(
    grads: &mut GradientsParams,
    reg: &Regularization<B::InnerBackend>,
    weight: f64,
) {
    for (id, grad) in &reg.grads {
        let scaled = grad.clone().mul_scalar(weight);
        let total = match grads.remove::<B::InnerBackend, 2>(*id) {
            Some(task) => task + scaled,
            None => scaled,
        };
        grads.register::<B::InnerBackend, 2>(*id, total);
    }
}

/// Separate mode: the plain step `p ← p − γ ∇L_reg` on each SORSA factor.
pub fn separate_step<B: AutodiffBackend, M: Module<B>>(
    model: M,
    reg: &Regularization<B::InnerBackend>,
    gamma: f64,
) -> M {
    let updates = reg
        .grads
        .iter()
        .map(|(id, grad)| (*id, grad.clone().mul_scalar(gamma)))
        .collect();
    model.map(&mut SubtractUpdates::<B> { updates })
}

struct SubtractUpdates<B: AutodiffBackend> {
    updates: HashMap<ParamId, Tensor<B::InnerBackend, 2>>,
}

impl<B: AutodiffBackend> ModuleMapper<B> for SubtractUpdates<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let Some(update) = self.updates.remove(&param.id) else {
            return param;
        };
        param.map(|tensor| {
            let require_grad = tensor.is_require_grad();
            let update = update.reshape(tensor.shape());
            Tensor::from_inner(tensor.inner() - update).set_require_grad(require_grad)
        })
    }
}
