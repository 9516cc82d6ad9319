//! The two-factor low-rank update shared by LoRA, PiSSA and LoRA-FA:
//! `Δy = scale · ((dropout(x) Aᵀ) Bᵀ)`.
//!
//! Factors are stored in Burn's `[in, out]` convention of the maps they implement: `a` is
//! `Aᵀ: [in, r]` and `b` is `Bᵀ: [r, out]` (PEFT's `lora_A.weight` and `lora_B.weight`
//! transposed; see [`crate::linalg::layout`]). The forward goes through the rank-r bottleneck and
//! never builds an `[in, out]` update. For LoRA-FA `a` is frozen, and since Burn's autodiff keeps a
//! `linear`'s input only when its weight is tracked, the backward keeps the r-wide `x Aᵀ` and not
//! `x`: the method's activation saving holds without a custom backward.

use burn::module::{Module, Param};
use burn::nn::Dropout;
use burn::tensor::{Tensor, backend::Backend};

use crate::kernel::matmul::linear;

/// Factors A and B of a low-rank update with their scale and input dropout.
#[derive(Module, Debug)]
pub struct LowRank<B: Backend> {
    /// `Aᵀ`, `[in, r]`.
    pub a: Param<Tensor<B, 2>>,
    /// `Bᵀ`, `[r, out]`.
    pub b: Param<Tensor<B, 2>>,
    /// Output scale (`alpha / r`, or `alpha / √r` for rsLoRA).
    pub scale: f64,
    pub dropout: Dropout,
}

impl<B: Backend> LowRank<B> {
    /// `scale · ((dropout(x) Aᵀ) Bᵀ)` for `x: [..., in]`.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let hidden = linear(self.dropout.forward(x), self.a.val(), None);
        // Scaling the r-wide bottleneck costs r/out of scaling the output; 1 needs no pass.
        let hidden = if self.scale == 1.0 {
            hidden
        } else {
            hidden.mul_scalar(self.scale)
        };
        linear(hidden, self.b.val(), None)
    }

    /// `scale · (B A)ᵀ`, the update in Burn layout `[in, out]` (merging only).
    pub fn delta_weight(&self) -> Tensor<B, 2> {
        self.a.val().matmul(self.b.val()).mul_scalar(self.scale)
    }

    pub fn rank(&self) -> usize {
        self.a.dims()[1]
    }
}
