//! What a kind of training supplies to the one loop ([`super::training_loop`]): its model type,
//! its examples as micro-batches, the loss and gradients of a micro-batch and its evaluation.
//! Everything else (schedule, accumulation, clipping, the regularizer, divergence stop, metrics,
//! checkpoints, resume, the saved adapter) is the loop's and the same for every task.
//!
//! The tasks: [`CausalLm`](super::causal_lm::CausalLm) (instruction tuning, plain language
//! modelling, `bench train`), [`Classification`](super::classification::Classification) (GLUE)
//! and the demo's low-rank fit (`burn-peft demo`).

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

use super::dashboard::Dashboard;
use super::run_folder::RunFolder;
use super::summary::TrainSummary;
use crate::Result;
use crate::adapter::HasAdapters;

/// The loss of one micro-batch (divided as the caller asked, on the device) and its gradients.
pub struct MicroBatchGradients<B: AutodiffBackend> {
    /// `[1]`, on the inner backend: read back with the step's other numbers, once.
    pub loss: Tensor<B::InnerBackend, 1>,
    pub grads: GradientsParams,
}

/// What one optimizer step needs of a task: the model type, and the loss and gradients of a
/// micro-batch. [`optimizer_step`](super::training_loop::optimizer_step) runs on it alone
/// (`bench train`, `demo`); a whole run needs a [`Task`].
pub trait Objective<B: AutodiffBackend> {
    /// The model trained (adapters injected).
    type Model: AutodiffModule<B> + HasAdapters<B>;
    /// One micro-batch, on the device.
    type Batch;

    /// The tokens of `batch` that count in tokens/s (the trained targets of a causal LM, the
    /// input tokens of a classifier).
    fn tokens(&self, batch: &Self::Batch) -> usize;

    /// The loss of `batch` divided by `divisor` (the micro-batches of the step) and its
    /// gradients. `seed` is the micro-batch's own, for a task that draws random numbers
    /// (dropout under recomputation) and must draw the same ones when resumed.
    fn gradients(
        &self,
        model: &Self::Model,
        batch: Self::Batch,
        divisor: f64,
        seed: u64,
    ) -> Result<MicroBatchGradients<B>>;
}

/// A kind of training: what a whole run needs beyond the [`Objective`], its examples and its
/// evaluation.
pub trait Task<B: AutodiffBackend>: Objective<B> {
    /// The number of training examples: the data order permutes `0..examples()`.
    fn examples(&self) -> usize;

    /// What the loss of the examples `indices` averages over (the trained targets of a causal
    /// LM, the examples of a classifier): how a data-parallel rank weighs its part of a
    /// micro-batch against the whole.
    fn weight(&self, indices: &[usize]) -> usize;

    /// The micro-batch of the training examples `indices`.
    fn batch(&self, indices: &[usize], device: &B::Device) -> Self::Batch;

    /// After the last step of a complete run, with the adapter saved: evaluates the trained
    /// model (inference backend, on `device`) on the held-out examples, writes the task's own
    /// outputs into `run` and fills in `summary`.
    fn evaluate(
        &self,
        model: &<Self::Model as AutodiffModule<B>>::InnerModule,
        device: &B::Device,
        run: &RunFolder,
        summary: &mut TrainSummary,
        dashboard: &mut Dashboard,
    ) -> Result<()>;
}
