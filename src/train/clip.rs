//! Global-norm gradient clipping (`torch.nn.utils.clip_grad_norm_`): Burn's built-in clipping
//! works per tensor, which is not what the methods' published runs used.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{ElementConversion, Tensor, backend::AutodiffBackend};

/// Scales every gradient of `module`'s parameters so that their joint L2 norm is at most
/// `max_norm`. Returns the norm before clipping (read back to the host).
pub fn clip_global_norm<B: AutodiffBackend, M: Module<B>>(
    module: &M,
    grads: &mut GradientsParams,
    max_norm: f64,
) -> f64 {
    clip_global_norm_on_device(module, grads, max_norm)
        .map(|norm| norm.into_scalar().elem::<f64>())
        .unwrap_or(0.0)
}

/// [`clip_global_norm`] without a host synchronisation: the norm (`[1]`, `None` without
/// gradients) stays on the device and the clipping factor is applied there, so a training step
/// reads it back together with everything else it logs.
pub fn clip_global_norm_on_device<B: AutodiffBackend, M: Module<B>>(
    module: &M,
    grads: &mut GradientsParams,
    max_norm: f64,
) -> Option<Tensor<B::InnerBackend, 1>> {
    let mut sum = SumSquares::<B> { grads, total: None };
    module.visit(&mut sum);
    let norm = sum.total?.sqrt();
    if max_norm.is_finite() {
        // PyTorch's rule: scale by max / (norm + 1e-6) when the norm exceeds max, never when it
        // is not finite (NaN compares false).
        let clip = norm
            .clone()
            .greater_elem(max_norm)
            .bool_and(norm.clone().is_inf().bool_not());
        let factor = norm
            .ones_like()
            .mul_scalar(max_norm)
            .div(norm.clone().add_scalar(1e-6))
            .mask_where(clip.bool_not(), norm.ones_like());
        module.visit(&mut Scale::<B> { grads, factor });
    }
    Some(norm)
}

struct SumSquares<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    total: Option<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for SumSquares<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(grad) = self.grads.get::<B::InnerBackend, D>(param.id) {
            let squares = grad.square().sum();
            self.total = Some(match self.total.take() {
                Some(total) => total + squares,
                None => squares,
            });
        }
    }
}

struct Scale<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    /// `[1]`, broadcast over each gradient.
    factor: Tensor<B::InnerBackend, 1>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Scale<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(grad) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            let factor = self.factor.clone().reshape([1; D]).expand(grad.shape());
            self.grads
                .register::<B::InnerBackend, D>(param.id, grad * factor);
        }
    }
}
