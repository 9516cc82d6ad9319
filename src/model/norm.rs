//! RMSNorm as the Llama family computes it: `x / √(mean(x²) + ε) · w`, Gemma with `(1 + w)`.
//!
//! The division is a true division: `recip()` would be ndarray's approximate `rcp` instruction
//! (12-bit on AVX2, 14-bit on AVX-512, on buffers of 32+ values from their first aligned
//! element), which made its logits on real weights 40–250× less exact than transformers' and
//! different from run to run.

use burn::module::{Module, Param};
use burn::tensor::{Tensor, backend::Backend};

#[derive(Module, Debug)]
pub struct RmsNorm<B: Backend> {
    pub weight: Param<Tensor<B, 1>>,
    pub eps: f64,
    /// 0 for Llama/Qwen2/Mistral, 1 for Gemma (`x̂ · (1 + w)`).
    pub offset: f64,
}

impl<B: Backend> RmsNorm<B> {
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let variance = x.clone().square().mean_dim(D - 1);
        let normed = x / (variance + self.eps).sqrt();
        normed * (self.weight.val() + self.offset).unsqueeze::<D>()
    }
}
