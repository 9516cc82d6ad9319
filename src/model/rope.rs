//! Rotary position embeddings in HF's rotate-half layout, with Llama-3 frequency scaling.

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use serde::Deserialize;

use super::rope_kernel::try_rope;

/// HF's `rope_parameters` / `rope_scaling` block.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RopeParameters {
    pub rope_theta: Option<f64>,
    pub rope_type: Option<String>,
    pub factor: Option<f64>,
    pub low_freq_factor: Option<f64>,
    pub high_freq_factor: Option<f64>,
    pub original_max_position_embeddings: Option<f64>,
}

/// Inverse frequencies of a rotary embedding over `head_dim` channels.
#[derive(Debug, Clone)]
pub struct Rope {
    pub inv_freq: Vec<f32>,
}

impl Rope {
    /// Frequencies `θ^(-2i/d)`, computed in f32 as transformers does, then Llama-3 scaled when
    /// `scaling.rope_type == "llama3"`.
    pub fn new(theta: f64, head_dim: usize, scaling: Option<&RopeParameters>) -> Self {
        let base = theta as f32;
        let mut inv_freq: Vec<f32> = (0..head_dim)
            .step_by(2)
            .map(|i| 1.0 / base.powf(i as f32 / head_dim as f32))
            .collect();
        if let Some(p) = scaling.filter(|p| p.rope_type.as_deref() == Some("llama3")) {
            let factor = p.factor.unwrap_or(8.0);
            let low = p.low_freq_factor.unwrap_or(1.0);
            let high = p.high_freq_factor.unwrap_or(4.0);
            let old_context = p.original_max_position_embeddings.unwrap_or(8192.0);
            let low_wavelen = old_context / low;
            let high_wavelen = old_context / high;
            for f in &mut inv_freq {
                let freq = f64::from(*f);
                let wavelen = 2.0 * std::f64::consts::PI / freq;
                let scaled = if wavelen < high_wavelen {
                    freq
                } else if wavelen > low_wavelen {
                    freq / factor
                } else {
                    let smooth = (old_context / wavelen - low) / (high - low);
                    (1.0 - smooth) * freq / factor + smooth * freq
                };
                *f = scaled as f32;
            }
        }
        Self { inv_freq }
    }

    /// `cos` and `sin` of shape `[batch, 1, seq, head_dim]` for positions `[batch, seq]`.
    pub fn cos_sin<B: Backend>(
        &self,
        positions: Tensor<B, 2, Int>,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let device = positions.device();
        let half = self.inv_freq.len();
        let inv =
            Tensor::<B, 1>::from_data(TensorData::new(self.inv_freq.clone(), [half]), &device);
        let freqs = positions.float().unsqueeze_dim::<3>(2) * inv.unsqueeze::<3>();
        let emb = Tensor::cat(vec![freqs.clone(), freqs], 2).unsqueeze_dim::<4>(1);
        (emb.clone().cos(), emb.sin())
    }

    /// `x·cos + rotate_half(x)·sin` for `x: [batch, heads, seq, head_dim]`: the CPU kernel on
    /// burn-flex (the same bits), [`Self::apply_composite`] elsewhere.
    pub fn apply<B: Backend>(
        x: Tensor<B, 4>,
        cos: &Tensor<B, 4>,
        sin: &Tensor<B, 4>,
    ) -> Tensor<B, 4> {
        match try_rope(x, cos, sin) {
            Ok(rotated) => rotated,
            Err(x) => Self::apply_composite(x, cos, sin),
        }
    }

    /// [`Self::apply`] as tensor ops, on every backend.
    pub fn apply_composite<B: Backend>(
        x: Tensor<B, 4>,
        cos: &Tensor<B, 4>,
        sin: &Tensor<B, 4>,
    ) -> Tensor<B, 4> {
        let [b, h, s, d] = x.dims();
        let first = x.clone().slice([0..b, 0..h, 0..s, 0..d / 2]);
        let second = x.clone().slice([0..b, 0..h, 0..s, d / 2..d]);
        let rotated = Tensor::cat(vec![second.neg(), first], 3);
        x * cos.clone() + rotated * sin.clone()
    }
}
