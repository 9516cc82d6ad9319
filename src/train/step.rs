//! One optimizer step of a PEFT model: global-norm clipping of the task gradient, the SORSA
//! regularizer in its configured mode (METHODS.md), the optional LoRA-FA gradient correction and
//! the optimizer update. Nothing is read back to the host during a step: the gradient norm and
//! the regularizer stay on the device ([`PendingReport`]) until the caller reads them, together
//! with its loss, in one transfer.

use std::cell::Cell;

use burn::module::{AutodiffModule, Module};
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};

use crate::Result;
use crate::adapter::regularizer::Regularization;
use crate::adapter::{AdapterConfig, HasAdapters, Method, RegularizerMode, lora_fa, regularizer};

/// What a step did, still on the device.
#[derive(Debug, Clone)]
pub struct PendingReport<B: Backend> {
    grad_norm: Option<Tensor<B, 1>>,
    regularizer: Option<Tensor<B, 1>>,
}

impl<B: Backend> PendingReport<B> {
    /// Reads the report back (one host transfer).
    pub fn read(self) -> StepReport {
        self.read_with(None).1
    }

    /// Reads the report and the step's `loss` (`[1]`) back in one host transfer.
    pub fn read_with(self, loss: Option<Tensor<B, 1>>) -> (Option<f64>, StepReport) {
        Self::read_all([(loss, self)])
            .pop()
            .expect("one result per step")
    }

    /// Reads the reports (and losses, `[1]` each) of several steps back in one host transfer.
    pub fn read_all(
        steps: impl IntoIterator<Item = (Option<Tensor<B, 1>>, Self)>,
    ) -> Vec<(Option<f64>, StepReport)> {
        let steps: Vec<[Option<Tensor<B, 1>>; 3]> = steps
            .into_iter()
            .map(|(loss, report)| [loss, report.grad_norm, report.regularizer])
            .collect();
        let present: Vec<Tensor<B, 1>> = steps.iter().flatten().flatten().cloned().collect();
        let mut values = if present.is_empty() {
            Vec::new()
        } else {
            HOST_READS.with(|reads| reads.set(reads.get() + 1));
            Tensor::cat(present, 0)
                .into_data()
                .iter::<f64>()
                .collect::<Vec<f64>>()
        }
        .into_iter();
        steps
            .into_iter()
            .map(|parts| {
                let [loss, grad_norm, regularizer] =
                    parts.map(|part| part.and_then(|_| values.next()));
                let report = StepReport {
                    grad_norm: grad_norm.unwrap_or(0.0),
                    regularizer: regularizer.unwrap_or(0.0),
                };
                (loss, report)
            })
            .collect()
    }
}

thread_local! {
    static HOST_READS: Cell<usize> = const { Cell::new(0) };
}

/// How many times this thread has read step scalars (loss, gradient norm, regularizer) back
/// to the host, each read a wait for the device: the training loop reads once per logged step.
pub fn step_reads() -> usize {
    HOST_READS.with(Cell::get)
}

/// What [`PeftStep::before_update`] leaves for the rest of the step: the report (on the
/// device) and the regularizer that [`PeftStep::after_update`] needs.
pub type BeforeUpdate<B> = (PendingReport<B>, Regularization<B>);

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

    /// Applies one update with the (averaged) task gradients `grads` at scheduled rate `lr`,
    /// and reads its report back.
    pub fn apply<B, M, O>(
        &self,
        model: M,
        optimizer: &mut O,
        grads: GradientsParams,
        lr: f64,
    ) -> Result<(M, StepReport)>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B> + HasAdapters<B>,
        O: Optimizer<M, B>,
    {
        let (model, report) = self.step(model, optimizer, grads, lr)?;
        Ok((model, report.read()))
    }

    /// [`apply`](Self::apply) without reading anything back: the report stays on the device.
    /// [`before_update`](Self::before_update), the optimizer step, then
    /// [`after_update`](Self::after_update).
    pub fn step<B, M, O>(
        &self,
        model: M,
        optimizer: &mut O,
        mut grads: GradientsParams,
        lr: f64,
    ) -> Result<(M, PendingReport<B::InnerBackend>)>
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
    /// correction. Returns the step's report (on the device) and the regularizer for
    /// [`after_update`](Self::after_update). Split from [`step`](Self::step) so that loops
    /// which own the optimizer call (burn-train's `TrainStep::optimize`) run the same rule.
    pub fn before_update<B, M>(
        &self,
        model: &M,
        grads: &mut GradientsParams,
    ) -> Result<BeforeUpdate<B::InnerBackend>>
    where
        B: AutodiffBackend,
        M: Module<B> + HasAdapters<B>,
    {
        let max_norm = self.max_grad_norm.unwrap_or(f64::INFINITY);
        let grad_norm = super::clip::clip_global_norm_on_device(model, grads, max_norm);
        // With γ = 0 the regularizer is only logged: its value, no gradient.
        let reg = if self.gamma > 0.0 {
            regularizer::regularizer_gradients::<B, M>(model)
        } else {
            regularizer::regularizer_value_on_device::<B, M>(model)
        };
        let report = PendingReport {
            grad_norm,
            regularizer: reg.value.clone(),
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
