//! RMSNorm as the Llama family computes it: `x / √(mean(x²) + ε) · w`, Gemma with `(1 + w)`.
//! The statistics are computed in f32 whatever the input dtype, as transformers does in bf16.

use burn::module::{Module, Param};
use burn::tensor::{FloatDType, Tensor, backend::Backend};

#[derive(Module, Debug)]
pub struct RmsNorm<B: Backend> {
    pub weight: Param<Tensor<B, 1>>,
    pub eps: f64,
    /// 0 for Llama/Qwen2/Mistral, 1 for Gemma (`x̂ · (1 + w)`).
    pub offset: f64,
}

impl<B: Backend> RmsNorm<B> {
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let dtype = FloatDType::from(x.dtype());
        let x = x.cast(FloatDType::F32);
        let variance = x.clone().square().mean_dim(D - 1);
        let normed = x * (variance + self.eps).sqrt().recip();
        let weight = self.weight.val();
        if self.offset == 0.0 {
            // Llama: `weight * normed.to(input_dtype)`, the product in the input dtype.
            normed.cast(dtype) * weight.cast(dtype).unsqueeze::<D>()
        } else {
            // Gemma: `normed * (1 + weight.float())` in f32, then `.type_as(x)`.
            (normed * (weight.cast(FloatDType::F32) + self.offset).unsqueeze::<D>()).cast(dtype)
        }
    }
}
