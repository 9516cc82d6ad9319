//! One optimizer step of a PEFT model: global-norm clipping of the task gradient, the SORSA
//! regularizer in its configured mode (METHODS.md), the optional LoRA-FA gradient correction and
//! the optimizer update.

use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;

use crate::Result;
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

    /// Applies one update with the (averaged) task gradients `grads` at scheduled rate `lr`.
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
        let grad_norm = match self.max_grad_norm {
            Some(max) => super::clip_global_norm(&model, &mut grads, max),
            None => super::clip::clip_global_norm(&model, &mut grads, f64::INFINITY),
        };
        let reg = regularizer::regularizer_gradients::<B, M>(&model);
        let report = StepReport {
            grad_norm,
            regularizer: reg.value,
        };
        if self.gamma > 0.0 && self.regularizer_mode == RegularizerMode::Reference {
            let weight = self.gamma / self.base_lr / self.regularizer_divisor;
            regularizer::add_to_gradients::<B>(&mut grads, &reg, weight);
        }
        if self.lora_fa_correction {
            lora_fa::correct_gradients::<B, M>(&model, &mut grads)?;
        }
        let mut model = optimizer.step(lr, model, grads);
        if self.gamma > 0.0 && self.regularizer_mode == RegularizerMode::Separate {
            model = regularizer::separate_step::<B, M>(model, &reg, self.gamma);
        }
        Ok((model, report))
    }
}
