//! Global-norm gradient clipping (`torch.nn.utils.clip_grad_norm_`): Burn's built-in clipping
//! works per tensor, which is not what the methods' published runs used.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{ElementConversion, Tensor, backend::AutodiffBackend};

/// Scales every gradient of `module`'s parameters so that their joint L2 norm is at most
/// `max_norm`. Returns the norm before clipping.
pub fn clip_global_norm<B: AutodiffBackend, M: Module<B>>(
    module: &M,
    grads: &mut GradientsParams,
    max_norm: f64,
) -> f64 {
    let mut sum = SumSquares::<B> { grads, total: None };
    module.visit(&mut sum);
    let norm = sum
        .total
        .map(|t| t.into_scalar().elem::<f64>().sqrt())
        .unwrap_or(0.0);
    if norm > max_norm && norm.is_finite() {
        // The same 1e-6 guard as PyTorch.
        let factor = max_norm / (norm + 1e-6);
        module.visit(&mut Scale::<B> {
            grads,
            factor,
            _b: std::marker::PhantomData,
        });
    }
    norm
}

struct SumSquares<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    total: Option<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for SumSquares<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(grad) = self.grads.get::<B::InnerBackend, D>(param.id) {
            // Accumulate on the device: one host sync for the whole model.
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
    factor: f64,
    _b: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Scale<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(grad) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            self.grads
                .register::<B::InnerBackend, D>(param.id, grad.mul_scalar(self.factor));
        }
    }
}
