//! SORSA: `Δy = scale · (((dropout(x) Aᵀ) ⊙ S) Bᵀ)` with trainable `A = V_rᵀ`, `S = σ_r`,
//! `B = U_r` of the base weight's principal part.
//!
//! Burn layout: `a` is `Aᵀ: [in, r]`, `b` is `Bᵀ: [r, out]`. In that layout the orthonormality
//! conditions `A Aᵀ = I` and `Bᵀ B = I` read `aᵀ a = I` and `b bᵀ = I`.

use burn::module::{Module, Param};
use burn::nn::Dropout;
use burn::tensor::{Tensor, backend::Backend};

use crate::kernel::matmul::linear;

/// Trainable singular factors of one layer's principal part.
#[derive(Module, Debug)]
pub struct Sorsa<B: Backend> {
    /// `Aᵀ = V_r`, `[in, r]`.
    pub a: Param<Tensor<B, 2>>,
    /// Singular values `σ_r`, `[r]`.
    pub s: Param<Tensor<B, 1>>,
    /// `Bᵀ = U_rᵀ`, `[r, out]`.
    pub b: Param<Tensor<B, 2>>,
    pub scale: f64,
    pub dropout: Dropout,
}

impl<B: Backend> Sorsa<B> {
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let hidden = linear(self.dropout.forward(x), self.a.val(), None);
        // The scale rides on the r singular values instead of a pass over the output.
        let s = if self.scale == 1.0 {
            self.s.val()
        } else {
            self.s.val().mul_scalar(self.scale)
        };
        linear(hidden * s.unsqueeze::<D>(), self.b.val(), None)
    }

    /// `scale · (B diag(S) A)ᵀ` in Burn layout `[in, out]`.
    pub fn delta_weight(&self) -> Tensor<B, 2> {
        (self.a.val() * self.s.val().unsqueeze::<2>())
            .matmul(self.b.val())
            .mul_scalar(self.scale)
    }

    pub fn rank(&self) -> usize {
        self.s.dims()[0]
    }
}
