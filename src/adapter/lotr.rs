//! LoTR: a group of layers of equal shape shares `L: [out, r]` and `R: [r, in]`; each layer has
//! its own core `G_s: [r, r]`, and `Δy_s = scale · (((x Rᵀ) G_sᵀ) Lᵀ)`.
//!
//! The shared factors live once, in [`SharedFactors`](super::SharedFactors), and each layer's
//! [`LotrCore`] names its group: gradients from every layer accumulate into the single `L` and `R`
//! parameters (real sharing; Burn's optimizer would update only one of several cloned copies).
//! Burn layout: `r` holds `Rᵀ: [in, r]`, `l` holds `Lᵀ: [r, out]`, `core` holds `G_sᵀ`.

use burn::module::{Module, Param};
use burn::tensor::{Tensor, backend::Backend};

use crate::kernel::matmul::linear;

/// The factors one LoTR group shares.
#[derive(Module, Debug)]
pub struct LotrFactors<B: Backend> {
    /// `Rᵀ`, `[in, r]`.
    pub r: Param<Tensor<B, 2>>,
    /// `Lᵀ`, `[r, out]`.
    pub l: Param<Tensor<B, 2>>,
}

/// One layer's core in a LoTR group.
#[derive(Module, Debug)]
pub struct LotrCore<B: Backend> {
    /// `G_sᵀ`, `[r, r]`.
    pub core: Param<Tensor<B, 2>>,
    /// Index of the group's factors in `SharedFactors::lotr`.
    pub group: usize,
    pub scale: f64,
}

impl<B: Backend> LotrCore<B> {
    pub fn forward<const D: usize>(
        &self,
        x: Tensor<B, D>,
        factors: &LotrFactors<B>,
    ) -> Tensor<B, D> {
        let hidden = linear(x, factors.r.val(), None);
        let hidden = linear(hidden, self.core.val(), None);
        linear(hidden, factors.l.val(), None).mul_scalar(self.scale)
    }

    /// `scale · (L G_s R)ᵀ` in Burn layout `[in, out]`.
    pub fn delta_weight(&self, factors: &LotrFactors<B>) -> Tensor<B, 2> {
        factors
            .r
            .val()
            .matmul(self.core.val())
            .matmul(factors.l.val())
            .mul_scalar(self.scale)
    }

    pub fn rank(&self) -> usize {
        self.core.dims()[0]
    }
}
