//! burn-peft on a Burn model of your own: what to implement and the calls to make, in one place.
//!
//! Burn's module machinery fixes a model's structure in its type (`Module::map` returns `Self`,
//! and a `ModuleMapper` only sees parameter tensors), so a plain `nn::Linear` field cannot be
//! turned into an adapted layer after the fact. A model that wants adapters therefore holds
//! [`PeftLinear`] slots where layers may be adapted (a frozen `nn::Linear` until [`adapt`]
//! puts an adapter there) and implements [`PeftModel`] by listing them under their names; the
//! [crate-level example](crate#a-burn-model-of-your-own) shows it.
//!
//! Then:
//! 1. [`adapt`] freezes the model and injects the adapters into the target slots, selected by
//!    name as in HF PEFT (`AdapterConfig::targets`: names, a regular expression, or
//!    `all-linear`, the default for models of your own).
//! 2. Train: wrap the model in [`Peft`] for burn-train's `Learner` (global-norm clipping, the
//!    SORSA regularizer after clipping and as a [`RegularizerMetric`], trainable-only
//!    checkpoints; `examples/learner.rs`), or run your own loop with [`PeftStep::apply`] (which
//!    also needs [`HasAdapters`](crate::adapter::HasAdapters): one line,
//!    `burn_peft::model::inject::adapted_layers(self.linears())`).
//! 3. [`save_adapter`] writes the adapters in HF PEFT's folder layout; [`load_adapter`] applies
//!    them to the original base model; [`merge_adapters`] folds them into the base weights.

pub use crate::adapter::{AdapterConfig, Method, RegularizerMode, SharedFactors, Targets};
pub use crate::model::{PeftLinear, PeftModel, merge_adapters};
pub use crate::persist::adapter::{InitialAdapters, load_adapter, save_adapter};
pub use crate::train::PeftStep;
pub use crate::train::learner::{LineRenderer, Peft, PeftOutput, RegularizerMetric};

use burn::tensor::backend::Backend;

use crate::Result;
use crate::model::inject_adapters;

/// A model after [`adapt`].
#[derive(Debug)]
pub struct Adapted<B: Backend, M> {
    /// The model: adapters on the target slots, every other parameter frozen except the
    /// configuration's `modules_to_save`.
    pub model: M,
    /// The adapters as initialised, which [`save_adapter`] needs for methods whose frozen base
    /// is a residual (PiSSA, SORSA, LoRA-FA `svd-split`, LoTR `svd`).
    pub initial: InitialAdapters<B>,
    /// Names of the adapted slots, in model order.
    pub layers: Vec<String>,
}

/// HF PEFT's `get_peft_model` for a Burn model: freezes every parameter of `model`, adds the
/// configured adapter to each target slot and makes `modules_to_save` trainable. Errors when
/// the configuration is invalid for a layer or the targets match no slot (the error lists the
/// model's slot names).
pub fn adapt<B: Backend, M: PeftModel<B>>(
    model: M,
    config: &AdapterConfig,
) -> Result<Adapted<B, M>> {
    let (model, injection) = inject_adapters(model.no_grad(), config)?;
    let initial = InitialAdapters::of(&model);
    Ok(Adapted {
        model,
        initial,
        layers: injection.adapted,
    })
}
