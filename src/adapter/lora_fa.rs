//! LoRA-FA's optional gradient correction (LoRA-FA v2, as PEFT's LoRA-FA optimizer applies it):
//! `grad_B ← (1/scale²) · grad_B · (A Aᵀ + 1e-8 I)⁻¹`. In Burn layout (`a = Aᵀ`, `b = Bᵀ`) this is
//! `grad_b ← (1/scale²) (aᵀa + 1e-8 I)⁻¹ grad_b`.

use burn::optim::GradientsParams;
use burn::tensor::{Tensor, backend::AutodiffBackend};
use faer::linalg::solvers::DenseSolveCore;

use super::HasAdapters;
use super::linear::Adapter;
use crate::linalg::{mat_to_tensor, tensor_to_mat};
use crate::{Error, Result};

/// Applies the correction to the gradient of every LoRA-FA `b` in `grads`.
pub fn correct_gradients<B: AutodiffBackend, M: HasAdapters<B>>(
    model: &M,
    grads: &mut GradientsParams,
) -> Result<()> {
    for layer in model.adapted_layers() {
        let Adapter::LoraFa(fa) = &layer.adapter else {
            continue;
        };
        let Some(grad) = grads.remove::<B::InnerBackend, 2>(fa.b.id) else {
            continue;
        };
        let a = fa.a.val().inner();
        let gram = tensor_to_mat(&a.clone().transpose().matmul(a.clone()));
        let rank = gram.nrows();
        let regularised = faer::Mat::from_fn(rank, rank, |i, j| {
            gram[(i, j)] + if i == j { 1e-8 } else { 0.0 }
        });
        let inverse = regularised.partial_piv_lu().inverse();
        if inverse.norm_max().is_nan() {
            return Err(Error::Linalg {
                op: "LoRA-FA gradient correction",
                message: "A Aᵀ + 1e-8 I is singular".into(),
            });
        }
        let inverse: Tensor<B::InnerBackend, 2> = mat_to_tensor(inverse.as_ref(), &a.device());
        let corrected = inverse.matmul(grad).div_scalar(fa.scale * fa.scale);
        grads.register::<B::InnerBackend, 2>(fa.b.id, corrected);
    }
    Ok(())
}
