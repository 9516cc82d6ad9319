//! Training: one loop for every task, and what it is built from.
//!
//! - [`run`]: `train(recipe)`, the entry point: prepares the run folder and picks the task.
//! - [`training_loop`]: the loop ([`run_task`](training_loop::run_task)) and its optimizer step
//!   ([`optimizer_step`](training_loop::optimizer_step)): accumulation, clipping, the
//!   regularizer, divergence stop, metrics, checkpoints and resume.
//! - [`task`]: what a task supplies ([`Task`](task::Task)): the tasks are [`causal_lm`] and
//!   [`classification`].
//! - [`run_folder`]: the run's folder: layout, checkpoints, which one is complete.
//! - [`step`], [`clip`]: the PEFT step rule (global-norm clipping, the SORSA regularizer,
//!   LoRA-FA's correction); [`schedule`], [`data_order`]: learning rate and batch order.
//! - [`trainable`]: the trainable tensors' one format (checkpoints and the Learner's record).
//! - [`recompute`]: activation checkpointing by per-layer recomputation.
//! - [`recipe`], [`identity`], [`check`], [`memory_plan`]: the TOML recipe, what may change on
//!   resume, `burn-peft check` and `burn-peft plan` (peak memory before a run).
//! - [`memory`], [`metrics`], [`dashboard`], [`summary`]: what a run measures and shows;
//!   [`mfu`]: model FLOPs a token and GPU peaks (`bench train`'s MFU).
//! - [`learner`]: the same step rule inside burn-train's `Learner`, for a Burn model of your own.

pub mod causal_lm;
pub mod check;
pub mod classification;
pub mod clip;
pub mod dashboard;
pub mod data_order;
pub mod data_parallel;
pub mod divergence;
pub mod identity;
pub mod learner;
pub mod memory;
pub mod memory_plan;
pub mod metrics;
pub mod mfu;
pub mod recipe;
pub mod recompute;
pub mod run;
pub mod run_folder;
pub mod schedule;
mod setup;
pub mod step;
pub mod summary;
pub mod task;
pub mod trainable;
pub mod training_loop;

pub use clip::clip_global_norm;
pub use run::{train, train_decoder, train_language_model, train_on_devices};
pub use step::{PeftStep, PendingReport, StepReport};
pub use summary::TrainSummary;
pub use training_loop::TrainOptions;
