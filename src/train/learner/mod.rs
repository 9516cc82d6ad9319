//! Training a Burn model that carries adapters with burn-train's `Learner`.
//!
//! [`Peft`] wraps the user's model (which implements burn-train's `TrainStep` and
//! `InferenceStep` as usual) and is what the `Learner` trains:
//! - its `TrainStep::optimize` runs the same step rule as the CLI trainer ([`PeftStep`]):
//!   global-norm clipping of the task gradient, then the SORSA regularizer gradient
//!   `(γ/η₀)·∇L_reg` added after clipping (reference mode) or the separate step, and the
//!   optional LoRA-FA correction;
//! - its training output carries `L_reg` for the [`RegularizerMetric`];
//! - its record holds the trainable tensors only ([`TrainableTensor`]), so the Learner's
//!   checkpoints contain no frozen base weight.
//!
//! Training runs on one device (burn-train's multi-device strategies are refused). burn-train
//! 0.21 exposes no other hook for the step rule: its optimizer's `GradientClippingConfig`
//! clips each tensor on its own (not the global norm the published runs used), and its gradient
//! accumulation sums the micro-batch gradients (divide the loss by the number of micro-batches
//! to average them, as the CLI trainer does).

mod lines;
mod metric;

pub use super::trainable::{TrainableRecord, TrainableTensor};
pub use lines::LineRenderer;
pub use metric::{PeftOutput, RegularizerInput, RegularizerMetric};

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use burn::module::{AutodiffModule, Devices, Module, ModuleMapper, ModuleVisitor};
use burn::optim::{GradientsParams, MultiGradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::train::{InferenceStep, TrainOutput, TrainStep};

use super::step::PeftStep;
use super::trainable::{collect_trainable, restore_trainable, trainable_paths};
use crate::adapter::{AdaptedLinear, HasAdapters, SharedFactors, Targets, regularizer};
use crate::model::{PeftLinear, PeftModel};
use crate::{Error, Result};

/// A model with adapters, ready for burn-train's `Learner`.
///
/// `M` is the user's model: a Burn module that implements [`PeftModel`] (it holds
/// [`PeftLinear`] slots) and burn-train's `TrainStep` / `InferenceStep`. The wrapper adds the
/// PEFT step rule, the regularizer metric and a trainable-only record; module paths are those of
/// `M` (the wrapper adds no level).
///
/// The set of trainable tensors is fixed when the wrapper is built: build it on the autodiff
/// backend, after injecting the adapters.
pub struct Peft<B: Backend, M> {
    model: M,
    step: PeftStep,
    trainable: Arc<[String]>,
    _backend: PhantomData<B>,
}

impl<B: Backend, M: Module<B>> Peft<B, M> {
    /// Wraps `model`, whose trainable parameters (those that require gradients) are the ones the
    /// Learner trains and checkpoints; `step` is the step rule (clipping, regularizer, LoRA-FA
    /// correction). Errors when the model has no trainable parameter (adapters not injected, or
    /// a backend without autodiff).
    pub fn new(model: M, step: PeftStep) -> Result<Self> {
        let trainable = trainable_paths(&model);
        if trainable.is_empty() {
            return Err(Error::invalid(
                "model",
                "no trainable parameter",
                "inject adapters first, and build `Peft` on an autodiff backend",
            ));
        }
        Ok(Self {
            model,
            step,
            trainable: trainable.into(),
            _backend: PhantomData,
        })
    }

    /// The wrapped model.
    pub fn inner(&self) -> &M {
        &self.model
    }

    /// Unwraps the model (after training: save its adapters with
    /// [`save_adapter`](crate::persist::adapter::save_adapter), or merge them).
    pub fn into_inner(self) -> M {
        self.model
    }

    /// The step rule the Learner's optimizer steps follow.
    pub fn step_rule(&self) -> &PeftStep {
        &self.step
    }

    /// Module paths (`fc1.Adapted.adapter.Sorsa.a`, …) of the trainable tensors: what the record
    /// and the Learner's checkpoints hold.
    pub fn trainable_paths(&self) -> &[String] {
        &self.trainable
    }

    /// [`Module::load_record`] that reports a record of another model as an error instead of a
    /// panic: every trainable tensor must be in `record` with its shape, and nothing else.
    pub fn try_load_record(self, record: TrainableRecord<B>) -> Result<Self> {
        let origin = std::path::Path::new("the Learner record");
        let model = restore_trainable(self.model, &self.trainable, record, origin)?;
        Ok(Self { model, ..self })
    }
}

impl<B: Backend, M: Clone> Clone for Peft<B, M> {
    fn clone(&self) -> Self {
        Self {
            model: self.model.clone(),
            step: self.step.clone(),
            trainable: self.trainable.clone(),
            _backend: PhantomData,
        }
    }
}

impl<B: Backend, M: fmt::Debug> fmt::Debug for Peft<B, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peft")
            .field("model", &self.model)
            .field("step", &self.step)
            .field("trainable", &self.trainable.len())
            .finish()
    }
}

/// The wrapped model's display (the Learner prints it in its summary).
impl<B: Backend, M: fmt::Display> fmt::Display for Peft<B, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.model, f)
    }
}

impl<B: Backend, M: Module<B>> Module<B> for Peft<B, M> {
    type Record = TrainableRecord<B>;

    fn collect_devices(&self, devices: Devices<B>) -> Devices<B> {
        self.model.collect_devices(devices)
    }

    fn fork(self, device: &B::Device) -> Self {
        Self {
            model: self.model.fork(device),
            ..self
        }
    }

    fn to_device(self, device: &B::Device) -> Self {
        Self {
            model: self.model.to_device(device),
            ..self
        }
    }

    fn visit<V: ModuleVisitor<B>>(&self, visitor: &mut V) {
        self.model.visit(visitor)
    }

    fn map<Mapper: ModuleMapper<B>>(self, mapper: &mut Mapper) -> Self {
        Self {
            model: self.model.map(mapper),
            ..self
        }
    }

    /// # Panics
    /// When `record` is not a record of this model (use [`Peft::try_load_record`] to get an
    /// error instead); Burn's `load_record` has no error channel.
    fn load_record(self, record: Self::Record) -> Self {
        self.try_load_record(record)
            .unwrap_or_else(|e| panic!("cannot load the PEFT record: {e}"))
    }

    fn into_record(self) -> Self::Record {
        collect_trainable(&self.model, &self.trainable)
    }
}

impl<B: AutodiffBackend, M: AutodiffModule<B>> AutodiffModule<B> for Peft<B, M> {
    type InnerModule = Peft<B::InnerBackend, M::InnerModule>;

    fn valid(&self) -> Self::InnerModule {
        Peft {
            model: self.model.valid(),
            step: self.step.clone(),
            trainable: self.trainable.clone(),
            _backend: PhantomData,
        }
    }

    fn from_inner(module: Self::InnerModule) -> Self {
        Peft {
            model: M::from_inner(module.model),
            step: module.step,
            trainable: module.trainable,
            _backend: PhantomData,
        }
    }
}

/// Delegates to the wrapped model, so that adapters can be saved, merged and analysed from the
/// wrapper (e.g. the model a `Learner` returns).
impl<B: Backend, M: PeftModel<B>> PeftModel<B> for Peft<B, M> {
    fn linears(&self) -> Vec<(String, &PeftLinear<B>)> {
        self.model.linears()
    }
    fn linears_mut(&mut self) -> Vec<(String, &mut PeftLinear<B>)> {
        self.model.linears_mut()
    }
    fn shared(&self) -> &SharedFactors<B> {
        self.model.shared()
    }
    fn shared_mut(&mut self) -> &mut SharedFactors<B> {
        self.model.shared_mut()
    }
    fn is_head(&self, name: &str) -> bool {
        self.model.is_head(name)
    }
    fn default_targets(&self) -> Targets {
        self.model.default_targets()
    }
}

impl<B: Backend, M: PeftModel<B>> HasAdapters<B> for Peft<B, M> {
    fn adapted_layers(&self) -> Vec<&AdaptedLinear<B>> {
        crate::model::inject::adapted_layers(self.model.linears())
    }
}

impl<B, M> TrainStep for Peft<B, M>
where
    B: AutodiffBackend,
    M: TrainStep + AutodiffModule<B> + PeftModel<B>,
{
    type Input = M::Input;
    type Output = PeftOutput<M::Output>;

    /// The wrapped model's step, with `L_reg` at the current parameters added to its output.
    fn step(&self, item: Self::Input) -> TrainOutput<Self::Output> {
        let regularizer = regularizer::regularizer_value::<B, Self>(self);
        let TrainOutput { grads, item } = self.model.step(item);
        TrainOutput {
            grads,
            item: PeftOutput {
                output: item,
                regularizer,
            },
        }
    }

    /// [`PeftStep::before_update`], the optimizer step, [`PeftStep::after_update`]: the CLI
    /// trainer's step rule.
    ///
    /// # Panics
    /// When the LoRA-FA gradient correction meets a singular `A Aᵀ + 1e-8 I` (burn-train's
    /// `optimize` has no error channel).
    fn optimize<BO, O>(self, optim: &mut O, lr: f64, mut grads: GradientsParams) -> Self
    where
        BO: AutodiffBackend,
        O: Optimizer<Self, BO>,
        Self: AutodiffModule<BO>,
    {
        // `BO` is the Learner's backend, which is `B`; the step rule is written against `B`
        // (gradients are stored type-erased, so both read the same tensors).
        let rule = self.step.clone();
        let (_, reg) = rule
            .before_update::<B, Self>(&self, &mut grads)
            .unwrap_or_else(|e| panic!("PEFT step: {e}"));
        let model = optim.step(lr, self, grads);
        rule.after_update::<B, Self>(model, &reg)
    }

    /// Refused: the step rule clips the global norm over one device's gradients, and
    /// burn-train's default here would skip the rule silently.
    ///
    /// # Panics
    /// Always: train a [`Peft`] model on a single device.
    fn optimize_multi<BO, O>(self, _: &mut O, _: f64, _: MultiGradientsParams) -> Self
    where
        BO: AutodiffBackend,
        O: Optimizer<Self, BO>,
        Self: AutodiffModule<BO>,
    {
        panic!(
            "burn-peft's `Peft` trains on a single device: its step rule (global-norm clipping, \
             SORSA regularizer) is not implemented for burn-train's multi-device strategies"
        )
    }
}

impl<B: Backend, M: InferenceStep> InferenceStep for Peft<B, M> {
    type Input = M::Input;
    type Output = M::Output;

    fn step(&self, item: Self::Input) -> Self::Output {
        self.model.step(item)
    }
}
