//! The adapted linear layer: a frozen base (weight + bias) and exactly one adapter.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{DType, FloatDType, Tensor, backend::Backend};

use super::config::Method;
use super::lotr::{LotrCore, LotrFactors};
use super::low_rank::LowRank;
use super::sorsa::Sorsa;

/// The adapter held by one [`AdaptedLinear`].
#[derive(Module, Debug)]
pub enum Adapter<B: Backend> {
    Lora(LowRank<B>),
    Pissa(LowRank<B>),
    LoraFa(LowRank<B>),
    Sorsa(Sorsa<B>),
    Lotr(LotrCore<B>),
}

/// Parameters shared between layers (LoTR groups). Models own one and pass it to every adapted
/// layer's forward; it is empty when no LoTR adapter is used.
#[derive(Module, Debug)]
pub struct SharedFactors<B: Backend> {
    pub lotr: Vec<LotrFactors<B>>,
}

impl<B: Backend> Default for SharedFactors<B> {
    fn default() -> Self {
        Self { lotr: Vec::new() }
    }
}

impl<B: Backend> SharedFactors<B> {
    fn lotr_group(&self, group: usize) -> &LotrFactors<B> {
        self.lotr.get(group).unwrap_or_else(|| {
            panic!(
                "LoTR core refers to group {group}, but only {} groups are shared: pass the \
                 SharedFactors the layer was adapted with",
                self.lotr.len()
            )
        })
    }
}

impl<B: Backend> Adapter<B> {
    pub fn method(&self) -> Method {
        match self {
            Adapter::Lora(_) => Method::Lora,
            Adapter::Pissa(_) => Method::Pissa,
            Adapter::LoraFa(_) => Method::LoraFa,
            Adapter::Sorsa(_) => Method::Sorsa,
            Adapter::Lotr(_) => Method::Lotr,
        }
    }

    pub fn rank(&self) -> usize {
        match self {
            Adapter::Lora(m) | Adapter::Pissa(m) | Adapter::LoraFa(m) => m.rank(),
            Adapter::Sorsa(m) => m.rank(),
            Adapter::Lotr(m) => m.rank(),
        }
    }

    /// The dtype of the adapter's factors (f32 as burn-peft creates and loads them).
    pub fn dtype(&self) -> DType {
        match self {
            Adapter::Lora(m) | Adapter::Pissa(m) | Adapter::LoraFa(m) => m.b.val().dtype(),
            Adapter::Sorsa(m) => m.b.val().dtype(),
            Adapter::Lotr(m) => m.core.val().dtype(),
        }
    }

    /// The probability of the dropout on the adapter's input (0 for LoTR, which has none).
    pub fn dropout(&self) -> f64 {
        match self {
            Adapter::Lora(m) | Adapter::Pissa(m) | Adapter::LoraFa(m) => m.dropout.prob,
            Adapter::Sorsa(m) => m.dropout.prob,
            Adapter::Lotr(_) => 0.0,
        }
    }

    /// The adapter's contribution to the layer output.
    pub fn forward<const D: usize>(
        &self,
        x: Tensor<B, D>,
        shared: &SharedFactors<B>,
    ) -> Tensor<B, D> {
        match self {
            Adapter::Lora(m) | Adapter::Pissa(m) | Adapter::LoraFa(m) => m.forward(x),
            Adapter::Sorsa(m) => m.forward(x),
            Adapter::Lotr(m) => m.forward(x, shared.lotr_group(m.group)),
        }
    }

    /// The scaled weight update in Burn layout `[in, out]`, computed in f32.
    pub fn delta_weight(&self, shared: &SharedFactors<B>) -> Tensor<B, 2> {
        let delta = match self {
            Adapter::Lora(m) | Adapter::Pissa(m) | Adapter::LoraFa(m) => m.delta_weight(),
            Adapter::Sorsa(m) => m.delta_weight(),
            Adapter::Lotr(m) => m.delta_weight(shared.lotr_group(m.group)),
        };
        delta.cast(FloatDType::F32)
    }
}

/// A linear layer `y = x W + b` (Burn layout) with a frozen base and one trainable adapter.
///
/// For PiSSA, SORSA, LoRA-FA `svd-split` and LoTR `svd` the base holds the residual
/// `W_res = W − ΔW₀`, so that base + adapter equals the original layer at initialisation.
#[derive(Module, Debug)]
pub struct AdaptedLinear<B: Backend> {
    pub base: Linear<B>,
    pub adapter: Adapter<B>,
}

impl<B: Backend> AdaptedLinear<B> {
    /// `base(x) + adapter(x)`. With a bf16/f16 base the adapter runs on `x` cast to its own
    /// (f32) dtype and the two outputs are added in f32 before the cast back, as PEFT does.
    pub fn forward<const D: usize>(
        &self,
        x: Tensor<B, D>,
        shared: &SharedFactors<B>,
    ) -> Tensor<B, D> {
        let adapter_x = x.clone().cast(FloatDType::from(self.adapter.dtype()));
        self.forward_with(x, adapter_x, shared)
    }

    /// [`forward`](Self::forward) with `adapter_x`, `x` already in the adapter's dtype (one
    /// cast shared by the layers that read the same input).
    pub fn forward_with<const D: usize>(
        &self,
        x: Tensor<B, D>,
        adapter_x: Tensor<B, D>,
        shared: &SharedFactors<B>,
    ) -> Tensor<B, D> {
        let dtype = x.dtype();
        let base = linear_forward(&self.base, x);
        let update = self.adapter.forward(adapter_x, shared);
        if update.dtype() == dtype {
            return base + update;
        }
        (base.cast(FloatDType::F32) + update.cast(FloatDType::F32)).cast(FloatDType::from(dtype))
    }

    pub fn in_features(&self) -> usize {
        self.base.weight.dims()[0]
    }

    pub fn out_features(&self) -> usize {
        self.base.weight.dims()[1]
    }

    /// The weight a merged layer would hold, `[in, out]`, accumulated in f32 and returned in the
    /// base weight's dtype.
    pub fn merged_weight(&self, shared: &SharedFactors<B>) -> Tensor<B, 2> {
        let base = self.base.weight.val();
        let dtype = base.dtype();
        add_in_f32(base, self.adapter.delta_weight(shared), dtype)
    }

    /// Folds the adapter into the base: a plain `Linear` with no extra inference cost.
    pub fn merge(self, shared: &SharedFactors<B>) -> Linear<B> {
        let weight = self.merged_weight(shared);
        Linear {
            weight: param(weight, false),
            bias: self.base.bias,
        }
    }

    /// Inverse of [`merge`](Self::merge): subtracts the adapter's update from a merged layer.
    pub fn unmerge(merged: Linear<B>, adapter: Adapter<B>, shared: &SharedFactors<B>) -> Self {
        let weight = merged.weight.val();
        let dtype = weight.dtype();
        let base = add_in_f32(weight, adapter.delta_weight(shared).neg(), dtype);
        let base = Linear {
            weight: param(base, false),
            bias: merged.bias,
        }
        .no_grad();
        Self { base, adapter }
    }
}

/// `linear(x)` computed in the linear's weight dtype, returned in `x`'s dtype: the one place a
/// hidden state crosses into a frozen base of another dtype (and back).
pub fn linear_forward<B: Backend, const D: usize>(
    linear: &Linear<B>,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    let dtype = x.dtype();
    let weight_dtype = linear.weight.val().dtype();
    let forward = |x| {
        let bias = linear.bias.as_ref().map(|bias| bias.val());
        crate::kernel::matmul::linear(x, linear.weight.val(), bias)
    };
    if weight_dtype == dtype {
        return forward(x);
    }
    forward(x.cast(FloatDType::from(weight_dtype))).cast(FloatDType::from(dtype))
}

/// A parameter from a computed tensor: detached first, since Burn's autodiff can only make a
/// leaf tensor require gradients.
pub fn param<B: Backend, const D: usize>(
    tensor: Tensor<B, D>,
    trainable: bool,
) -> Param<Tensor<B, D>> {
    Param::from_tensor(tensor.detach()).set_require_grad(trainable)
}

/// `a + b` accumulated in f32, returned as `dtype` (merging a bf16 base with f32 adapters).
pub(crate) fn add_in_f32<B: Backend>(
    a: Tensor<B, 2>,
    b: Tensor<B, 2>,
    dtype: DType,
) -> Tensor<B, 2> {
    let sum = a.cast(FloatDType::F32) + b.cast(FloatDType::F32);
    sum.cast(FloatDType::from(dtype))
}
