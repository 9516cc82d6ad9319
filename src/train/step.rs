//! One optimizer step of a PEFT model: global-norm clipping of the task gradient, the SORSA
//! regularizer in its configured mode (METHODS.md), the optional LoRA-FA gradient correction and
//! the optimizer update.

use burn::module::{AutodiffModule, Module};
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;

use crate::Result;
use crate::adapter::regularizer::Regularization;
use crate::adapter::{AdapterConfig, HasAdapters, Method, RegularizerMode, lora_fa, regularizer};

/// What a step did, for logging.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepReport {
    /// Global gradient norm of the task loss before clipping.
    pub grad_norm: f64,
    /// `L_reg` at the parameters before the step (0 when there are no SORSA layers).
    pub regularizer: f64,
}

/// The step settings that come from the adapter and optimisation config.
#[derive(Debug, Clone)]
pub struct PeftStep {
    /// Clip the task gradient to this global norm (`None`: no clipping).
    pub max_grad_norm: Option<f64>,
    /// SORSA γ (0: no regularizer).
    pub gamma: f64,
    pub regularizer_mode: RegularizerMode,
    /// η₀, the base (unscheduled) learning rate: the reference mode weighs the regularizer by γ/η₀.
    pub base_lr: f64,
    /// Divide the reference-mode regularizer gradient by this (gradient accumulation steps when
    /// `regularizer_divide_by_accumulation` is on, else 1).
    pub regularizer_divisor: f64,
    /// LoRA-FA gradient correction.
    pub lora_fa_correction: bool,
}

impl PeftStep {
    /// Settings for `adapter` trained at base rate `base_lr` with `accumulation` micro-batches.
    pub fn new(
        adapter: &AdapterConfig,
        base_lr: f64,
        max_grad_norm: Option<f64>,
        accumulation: usize,
    ) -> Self {
        Self {
            max_grad_norm,
            gamma: if adapter.method == Method::Sorsa {
                adapter.gamma
            } else {
                0.0
            },
            regularizer_mode: adapter.regularizer_mode,
            base_lr,
            regularizer_divisor: if adapter.regularizer_divide_by_accumulation {
                accumulation.max(1) as f64
            } else {
                1.0
            },
            lora_fa_correction: adapter.method == Method::LoraFa && adapter.grad_correction,
        }
    }

    /// Applies one update with the (averaged) task gradients `grads` at scheduled rate `lr`:
    /// [`before_update`](Self::before_update), the optimizer step, then
    /// [`after_update`](Self::after_update).
    pub fn apply<B, M, O>(
        &self,
        model: M,
        optimizer: &mut O,
        mut grads: GradientsParams,
        lr: f64,
    ) -> Result<(M, StepReport)>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B> + HasAdapters<B>,
        O: Optimizer<M, B>,
    {
        let (report, reg) = self.before_update::<B, M>(&model, &mut grads)?;
        let model = optimizer.step(lr, model, grads);
        Ok((self.after_update::<B, M>(model, &reg), report))
    }

    /// The part of a step before the optimizer update: clips the task gradients in `grads` to
    /// the global norm, adds the reference-mode regularizer gradient and applies the LoRA-FA
    /// correction. Returns the step's report and the regularizer for
    /// [`after_update`](Self::after_update). Split from [`apply`](Self::apply) so that loops
    /// which own the optimizer call (burn-train's `TrainStep::optimize`) run the same rule.
    pub fn before_update<B, M>(
        &self,
        model: &M,
        grads: &mut GradientsParams,
    ) -> Result<(StepReport, Regularization<B::InnerBackend>)>
    where
        B: AutodiffBackend,
        M: Module<B> + HasAdapters<B>,
    {
        let grad_norm = match self.max_grad_norm {
            Some(max) => super::clip_global_norm(model, grads, max),
            None => super::clip::clip_global_norm(model, grads, f64::INFINITY),
        };
        let reg = regularizer::regularizer_gradients::<B, M>(model);
        let report = StepReport {
            grad_norm,
            regularizer: reg.value,
        };
        if self.gamma > 0.0 && self.regularizer_mode == RegularizerMode::Reference {
            let weight = self.gamma / self.base_lr / self.regularizer_divisor;
            regularizer::add_to_gradients::<B>(grads, &reg, weight);
        }
        if self.lora_fa_correction {
            lora_fa::correct_gradients::<B, M>(model, grads)?;
        }
        Ok((report, reg))
    }

    /// The part of a step after the optimizer update: the separate-mode regularizer step
    /// `p ← p − γ ∇L_reg` with the gradient `reg` taken before the update.
    pub fn after_update<B, M>(&self, model: M, reg: &Regularization<B::InnerBackend>) -> M
    where
        B: AutodiffBackend,
        M: Module<B>,
    {
        if self.gamma > 0.0 && self.regularizer_mode == RegularizerMode::Separate {
            regularizer::separate_step::<B, M>(model, reg, self.gamma)
        } else {
            model
        }
    }
}
