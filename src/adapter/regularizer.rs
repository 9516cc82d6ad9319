//! SORSA's orthonormal regularizer (METHODS.md):
//! `L_reg = (1/K) Σ_layers (‖A Aᵀ − I‖_F + ‖Bᵀ B − I‖_F)`, K = 2·(number of SORSA layers),
//! with its closed-form gradient. In Burn layout (`a = Aᵀ: [in, r]`, `b = Bᵀ: [r, out]`):
//! `∂‖aᵀa − I‖/∂a = 2 a M / ‖M‖` and `∂‖b bᵀ − I‖/∂b = 2 M b / ‖M‖` (M symmetric). `S` gets no
//! gradient. The norm is not squared, so its gradient `M/‖M‖` is undefined at M = 0: below
//! [`ORTHO_EPS`]·r (f32 rounding noise of an orthonormal matrix) it is defined as 0.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{ElementConversion, Tensor, backend::AutodiffBackend, backend::Backend};

use super::HasAdapters;
use super::linear::Adapter;

/// Per-rank threshold on ‖M‖_F under which M counts as zero (rounding noise).
pub const ORTHO_EPS: f64 = 1e-5;

/// The regularizer's value and gradient with respect to each SORSA factor.
#[derive(Debug, Clone)]
pub struct Regularization<B: Backend> {
    /// `L_reg`.
    pub value: f64,
    /// Number of SORSA layers it covers.
    pub layers: usize,
    /// `∂L_reg/∂p` for each SORSA `a` and `b` parameter.
    pub grads: Vec<(ParamId, Tensor<B, 2>)>,
}

/// One factor's term `‖M‖_F` and its gradient.
fn term<B: Backend>(factor: Tensor<B, 2>, columns_orthonormal: bool) -> (f64, Tensor<B, 2>) {
    let device = factor.device();
    let (gram, rank) = if columns_orthonormal {
        let rank = factor.dims()[1];
        (factor.clone().transpose().matmul(factor.clone()), rank)
    } else {
        let rank = factor.dims()[0];
        (factor.clone().matmul(factor.clone().transpose()), rank)
    };
    let m = gram - Tensor::eye(rank, &device);
    let norm: f64 = m.clone().square().sum().sqrt().into_scalar().elem();
    if norm <= ORTHO_EPS * rank as f64 {
        return (norm, factor.zeros_like());
    }
    let grad = if columns_orthonormal {
        factor.matmul(m)
    } else {
        m.matmul(factor)
    };
    (norm, grad.mul_scalar(2.0 / norm))
}

/// Value and gradient over the given SORSA layers, each `(a, b)` with their parameter ids.
pub fn regularize<B: Backend>(
    factors: Vec<(ParamId, Tensor<B, 2>, ParamId, Tensor<B, 2>)>,
) -> Regularization<B> {
    let layers = factors.len();
    if layers == 0 {
        return Regularization {
            value: 0.0,
            layers,
            grads: Vec::new(),
        };
    }
    let k = 2.0 * layers as f64;
    let mut value = 0.0;
    let mut grads = Vec::with_capacity(2 * layers);
    for (a_id, a, b_id, b) in factors {
        let (value_a, grad_a) = term(a, true);
        let (value_b, grad_b) = term(b, false);
        value += value_a + value_b;
        grads.push((a_id, grad_a.div_scalar(k)));
        grads.push((b_id, grad_b.div_scalar(k)));
    }
    Regularization {
        value: value / k,
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
    regularize::<B>(factors).value
}

/// Value and gradient of a model under training, computed outside the autodiff graph.
pub fn regularizer_gradients<B: AutodiffBackend, M: HasAdapters<B>>(
    model: &M,
) -> Regularization<B::InnerBackend> {
    let factors = sorsa_factors(model)
        .into_iter()
        .map(|(ia, a, ib, b)| (ia, a.inner(), ib, b.inner()))
        .collect();
    regularize(factors)
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
