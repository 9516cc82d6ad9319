//! A model's linear layer slot: a plain frozen linear, or one carrying an adapter after
//! injection. Models are built with plain slots and adapters are injected afterwards
//! ([`super::inject`]), as PEFT's `get_peft_model` does.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{Tensor, backend::Backend};

use crate::Result;
use crate::adapter::{AdaptedLinear, SharedFactors};
use crate::io::checkpoint::Checkpoint;
use crate::linalg::layout;

/// Slots are built once per model and not moved in hot loops, so the size difference between
/// the variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum PeftLinear<B: Backend> {
    Plain(Linear<B>),
    Adapted(AdaptedLinear<B>),
}

impl<B: Backend> PeftLinear<B> {
    pub fn forward<const D: usize>(
        &self,
        x: Tensor<B, D>,
        shared: &SharedFactors<B>,
    ) -> Tensor<B, D> {
        match self {
            PeftLinear::Plain(linear) => crate::adapter::linear::linear_forward(linear, x),
            PeftLinear::Adapted(adapted) => adapted.forward(x, shared),
        }
    }

    /// The frozen base (for an adapted layer: the residual base of splitting methods).
    pub fn base(&self) -> &Linear<B> {
        match self {
            PeftLinear::Plain(linear) => linear,
            PeftLinear::Adapted(adapted) => &adapted.base,
        }
    }

    /// `[in, out]` of the layer.
    pub fn dims(&self) -> [usize; 2] {
        self.base().weight.dims()
    }

    /// Loads `{name}.weight` (`[out, in]`, HF layout) and, when `bias`, `{name}.bias`, frozen.
    pub fn load(
        ckpt: &Checkpoint,
        name: &str,
        in_features: usize,
        out_features: usize,
        bias: bool,
        device: &B::Device,
    ) -> Result<Self> {
        let weight = ckpt.tensor::<B, 2>(
            &format!("{name}.weight"),
            [out_features, in_features],
            device,
        )?;
        let bias = if bias {
            Some(ckpt.tensor::<B, 1>(&format!("{name}.bias"), [out_features], device)?)
        } else {
            None
        };
        Ok(PeftLinear::Plain(frozen_linear(weight, bias)))
    }
}

/// A frozen Burn `Linear` from an HF-layout weight.
pub fn frozen_linear<B: Backend>(weight: Tensor<B, 2>, bias: Option<Tensor<B, 1>>) -> Linear<B> {
    layout::linear_from_hf(weight, bias).no_grad()
}

/// A frozen rank-1 parameter (norm weights, biases).
pub fn frozen<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Param<Tensor<B, D>> {
    crate::adapter::linear::param(tensor, false)
}
