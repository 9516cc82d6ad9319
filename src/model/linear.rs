//! A model's linear layer slot: a plain frozen linear, or one carrying an adapter after
//! injection. Models are built with plain slots and adapters are injected afterwards
//! ([`super::inject`]), as PEFT's `get_peft_model` does.

use std::cell::OnceCell;

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{DType, FloatDType, Tensor, backend::Backend};

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

/// A hidden state that several projections read (q/k/v, gate/up). Adapters of a bf16/f16 model
/// read it in their own dtype (f32): the cast is made once, by the first adapter that needs it,
/// so the backward pass keeps one f32 copy for the group instead of one per adapter.
pub struct SharedInput<B: Backend, const D: usize> {
    x: Tensor<B, D>,
    cast: OnceCell<Tensor<B, D>>,
}

impl<B: Backend, const D: usize> SharedInput<B, D> {
    pub fn new(x: Tensor<B, D>) -> Self {
        Self {
            x,
            cast: OnceCell::new(),
        }
    }

    /// The input in `dtype`: the shared copy when it is the first one asked for or has that
    /// dtype, a fresh cast otherwise.
    fn in_dtype(&self, dtype: DType) -> Tensor<B, D> {
        if self.x.dtype() == dtype {
            return self.x.clone();
        }
        let cast = self
            .cast
            .get_or_init(|| self.x.clone().cast(FloatDType::from(dtype)));
        if cast.dtype() == dtype {
            cast.clone()
        } else {
            self.x.clone().cast(FloatDType::from(dtype))
        }
    }
}

impl<B: Backend> PeftLinear<B> {
    pub fn forward<const D: usize>(
        &self,
        x: Tensor<B, D>,
        shared: &SharedFactors<B>,
    ) -> Tensor<B, D> {
        self.forward_shared(&SharedInput::new(x), shared)
    }

    /// [`forward`](Self::forward) on an input other projections read too.
    pub fn forward_shared<const D: usize>(
        &self,
        input: &SharedInput<B, D>,
        shared: &SharedFactors<B>,
    ) -> Tensor<B, D> {
        // Rows in, rows out: burn-flex runs a [batch, seq, in] × [in, out] product as `batch`
        // matmuls that each repack the weight; one [batch·seq, in] matmul packs it once.
        let mut dims = input.x.dims();
        let rows = dims[..D - 1].iter().product::<usize>();
        let as_rows = |t: Tensor<B, D>| t.reshape([rows, dims[D - 1]]);
        let y = match self {
            PeftLinear::Plain(linear) => {
                crate::adapter::linear::linear_forward(linear, as_rows(input.x.clone()))
            }
            PeftLinear::Adapted(adapted) => {
                let adapter_x = input.in_dtype(adapted.adapter.dtype());
                adapted.forward_with(as_rows(input.x.clone()), as_rows(adapter_x), shared)
            }
        };
        dims[D - 1] = y.dims()[1];
        y.reshape(dims)
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
