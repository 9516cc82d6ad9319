//! The training loop, one for every task ([`run_task`]), and the optimizer step it is made of
//! ([`optimizer_step`], which `bench train` and `demo` run on their own).
//!
//! Each optimizer step averages the task's loss over `grad_accumulation` micro-batches, clips
//! the gradient to a global norm, applies the SORSA regularizer in its configured mode and takes
//! one AdamW step ([`PeftStep`]). The steps' scalars stay on the device until a logged step
//! (the first, every `run.log_every`-th, the last) or a checkpoint reads the whole window back
//! at once, so that a GPU never waits for the host between; a step whose loss or gradient norm
//! is not finite then stops the run before anything of it is logged or saved
//! ([`super::divergence`]). Checkpoints hold only the trainable
//! tensors, the optimizer state and the step ([`RunFolder`]); the data order is a function of
//! (seed, micro-batch) ([`DataOrder`]), so a resumed run continues with exactly the batches an
//! uninterrupted run would have seen.

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::{AdamWConfig, GradientsAccumulator, Optimizer};
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

use super::dashboard::Dashboard;
use super::data_order::{DataOrder, RunLength};
use super::data_parallel::{DataParallel, Deal, MicroBatch, deal};
use super::memory::{MemoryMonitor, MemorySource, ParamBytes, initial_bytes};
use super::metrics::{MetricsLog, StepMetrics};
use super::recipe::Recipe;
use super::run_folder::RunFolder;
use super::schedule::Schedule;
use super::step::{PeftStep, PendingReport, StepReport};
use super::summary::{DistributedSummary, TrainSummary};
use super::task::{Objective, Task};
use crate::adapter::{AdapterConfig, ParamReport};
use crate::model::PeftModel;
use crate::persist::adapter::{InitialAdapters, save_adapter};
use crate::{Error, Result};

/// How a run is driven (beyond its recipe).
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Continue from the latest checkpoint in the output directory.
    pub resume: bool,
    /// Stop after this many optimizer steps, as if interrupted (tests and time-boxed runs).
    pub stop_after: Option<usize>,
    /// Print nothing but errors.
    pub quiet: bool,
    /// Which of this node's devices this replica runs on (`run.devices`).
    pub local_device: LocalDevice,
}

/// One of a node's `count` devices, each training a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalDevice {
    pub index: usize,
    pub count: usize,
}

impl Default for LocalDevice {
    fn default() -> Self {
        Self { index: 0, count: 1 }
    }
}

/// What a task hands the loop: the model with its adapters attached, the adapters' initial
/// state (saved with split initialisations) and the adapter configuration the saved adapter
/// records (a classifier's adds its head to `modules_to_save`).
pub struct Trainee<B: AutodiffBackend, M> {
    pub model: M,
    pub initial: InitialAdapters<B>,
    pub adapter: AdapterConfig,
}

/// What one optimizer step did, still on the device until [`read`](Self::read).
pub struct StepOutcome<B: AutodiffBackend> {
    loss: Tensor<B::InnerBackend, 1>,
    report: PendingReport<B::InnerBackend>,
    /// The tokens the step trained on (as [`Objective::tokens`] counts them), over all ranks.
    pub tokens: usize,
    /// Whether any rank asked to stop after this step.
    pub stop: bool,
}

impl<B: AutodiffBackend> StepOutcome<B> {
    /// The step's loss (the mean over its micro-batches) and its report, in one host read.
    pub fn read(self) -> (f64, StepReport) {
        let (loss, report) = self.report.read_with(Some(self.loss));
        (loss.unwrap_or(0.0), report)
    }
}

/// A step whose scalars are still on the device: read with the others of its window at the
/// next logged step (the divergence check and the log wait for it; the checkpoint waits for
/// the check).
struct UnreadStep<B: AutodiffBackend> {
    step: usize,
    epoch: usize,
    lr: f64,
    tokens: usize,
    loss: Tensor<B::InnerBackend, 1>,
    report: PendingReport<B::InnerBackend>,
}

/// One optimizer step of `model` over `micro_batches` (each with its seed) in a single
/// process: their gradients accumulated with each loss divided by their number, then the step
/// rule at rate `lr`.
pub fn optimizer_step<B, T, O>(
    objective: &T,
    model: T::Model,
    optimizer: &mut O,
    rule: &PeftStep,
    micro_batches: impl ExactSizeIterator<Item = (T::Batch, u64)>,
    lr: f64,
) -> Result<(T::Model, StepOutcome<B>)>
where
    B: AutodiffBackend,
    T: Objective<B>,
    O: Optimizer<T::Model, B>,
{
    let micro_batches = micro_batches.map(|(batch, seed)| MicroBatch::whole(batch, seed));
    let mut single = DataParallel::single();
    parallel_optimizer_step(
        objective,
        model,
        optimizer,
        rule,
        micro_batches,
        lr,
        &mut single,
        false,
    )
}

/// [`optimizer_step`] on one replica of a data-parallel run: this rank's share of each
/// micro-batch, the sums over all ranks ([`DataParallel::reduce_step`]; `stop` is this rank's
/// wish to stop after the step), then the same step rule on every rank.
#[allow(clippy::too_many_arguments)]
pub fn parallel_optimizer_step<B, T, O>(
    objective: &T,
    model: T::Model,
    optimizer: &mut O,
    rule: &PeftStep,
    micro_batches: impl ExactSizeIterator<Item = MicroBatch<T::Batch>>,
    lr: f64,
    parallel: &mut DataParallel,
    stop: bool,
) -> Result<(T::Model, StepOutcome<B>)>
where
    B: AutodiffBackend,
    T: Objective<B>,
    O: Optimizer<T::Model, B>,
{
    if micro_batches.len() == 0 {
        return Err(Error::invalid(
            "micro_batches",
            0,
            "an optimizer step needs at least one micro-batch",
        ));
    }
    let count = micro_batches.len() as f64;
    let mut accumulator = GradientsAccumulator::new();
    let mut loss: Option<Tensor<B::InnerBackend, 1>> = None;
    let mut tokens = 0;
    for micro in micro_batches {
        let Some(batch) = micro.batch else { continue };
        tokens += objective.tokens(&batch);
        // With share 1 (one process) the divisor is the count itself, bit for bit.
        let divisor = count / micro.share;
        let micro = objective.gradients(&model, batch, divisor, micro.seed)?;
        loss = Some(match loss {
            Some(sum) => sum + micro.loss,
            None => micro.loss,
        });
        accumulator.accumulate(&model, micro.grads);
    }
    let mut grads = accumulator.grads();
    let mut stop = stop;
    if parallel.world() > 1 {
        let reduced = parallel.reduce_step::<B, _>(&model, grads, loss, tokens, stop)?;
        (grads, loss, tokens, stop) = (
            reduced.grads,
            Some(reduced.loss),
            reduced.tokens,
            reduced.stop,
        );
    }
    let (model, report) = rule.step(model, optimizer, grads, lr)?;
    let loss = loss.ok_or_else(|| {
        Error::invalid(
            "micro_batches",
            0,
            "none of the step's micro-batches holds an example of this process",
        )
    })?;
    Ok((
        model,
        StepOutcome {
            loss,
            report,
            tokens,
            stop,
        },
    ))
}

/// AdamW with the recipe's betas, epsilon and weight decay.
pub fn adamw(recipe: &Recipe) -> AdamWConfig {
    let o = &recipe.optim;
    AdamWConfig::new()
        .with_beta_1(o.betas[0] as f32)
        .with_beta_2(o.betas[1] as f32)
        .with_epsilon(o.eps as f32)
        .with_weight_decay(o.weight_decay as f32)
}

/// The recipe's learning-rate schedule over `total_steps`.
fn schedule(recipe: &Recipe, total_steps: usize) -> Schedule {
    let o = &recipe.optim;
    Schedule {
        kind: o.schedule,
        base_lr: o.lr,
        warmup_steps: (total_steps as f64 * o.warmup_ratio).ceil() as usize,
        total_steps,
        power: o.power,
        end_lr: 0.0,
    }
}

/// The dropout seed of micro-batch `index` of a run seeded `seed`.
fn micro_batch_seed(seed: u64, index: usize) -> u64 {
    seed ^ (index as u64).rotate_left(32)
}

/// Trains `trainee` on `task` as `recipe` says, in `run` (prepared by
/// [`RunFolder::prepare`]): resumes from its latest checkpoint when asked, runs the steps, and
/// after the last one saves the adapter, lets the task evaluate and writes `summary.json`.
/// Returns the summary and the trained model on the inference backend (also when stopped early).
/// `parallel` is this replica's place among the data-parallel ranks (a group of one alone).
#[allow(clippy::too_many_arguments)] // what a run is made of; each caller passes its own
pub fn run_task<B, T>(
    task: &T,
    trainee: Trainee<B, T::Model>,
    recipe: &Recipe,
    run: &RunFolder,
    device: &B::Device,
    options: &TrainOptions,
    parallel: &mut DataParallel,
    dashboard: &mut Dashboard,
) -> Result<(TrainSummary, <T::Model as AutodiffModule<B>>::InnerModule)>
where
    B: AutodiffBackend,
    T: Task<B>,
    T::Model: PeftModel<B>,
{
    let Trainee {
        model,
        initial,
        adapter,
    } = trainee;
    let accounting = ParamReport::of(&model);
    let mut memory = MemoryMonitor::new(
        ParamBytes::of(&model),
        initial_bytes(&initial),
        MemorySource::of(device),
    );

    let o = &recipe.optim;
    let length = RunLength::of(recipe, task.examples());
    let total_steps = length.total_steps;
    let order = DataOrder::new(task.examples(), o.batch_size, recipe.run.seed);
    let schedule = schedule(recipe, total_steps);
    let clip = (o.max_grad_norm > 0.0).then_some(o.max_grad_norm);
    let rule = PeftStep::new(&recipe.adapter, o.lr, clip, o.grad_accumulation);
    let mut optimizer = adamw(recipe).init();
    let mut model = model;
    let mut start_step = 0;
    if options.resume {
        (model, optimizer, start_step) = run.restore_latest(model, optimizer, device)?;
    }
    // Every rank starts from rank 0's state (the only one with the run folder).
    (model, optimizer, start_step) = parallel.share_state(model, optimizer, start_step, device)?;
    let comm_at_start = parallel.stats();
    if start_step > 0 {
        dashboard.say(format!("resumed at step {start_step}"));
    }
    // Only rank 0 writes the run folder.
    let log = if parallel.is_root() {
        run.write_config(recipe)?;
        Some(MetricsLog::open(
            &run.metrics(),
            options.resume.then_some(start_step),
        )?)
    } else {
        None
    };

    let started = Instant::now();
    let mut window_started = started;
    let mut unread: Vec<UnreadStep<B>> = Vec::new();
    let (mut first_loss, mut last_loss) = (None, None);
    let mut tokens_total = 0usize;
    let mut done = start_step;
    let stop = options
        .stop_after
        .map_or(total_steps, |s| s.min(total_steps));
    for step in start_step..stop {
        memory.start_step();
        let mut epoch = 0;
        let (rank, world) = (parallel.rank(), parallel.world());
        let micro_batches = (0..o.grad_accumulation).map(|micro| {
            let index = step * o.grad_accumulation + micro;
            let (e, indices) = order.micro_batch(index);
            epoch = e;
            let seed = micro_batch_seed(recipe.run.seed, index);
            match deal(micro, o.grad_accumulation, &indices, rank, world) {
                Deal::Whole => MicroBatch::whole(task.batch(&indices, device), seed),
                Deal::Nothing => MicroBatch {
                    batch: None,
                    seed,
                    share: 0.0,
                },
                // This rank's part, weighed against the whole micro-batch's loss weight.
                Deal::Share(mine) => {
                    let (whole, own) = (task.weight(&indices), task.weight(mine));
                    MicroBatch {
                        batch: (own > 0).then(|| task.batch(mine, device)),
                        seed,
                        share: own as f64 / whole.max(1) as f64,
                    }
                }
            }
        });
        let lr = schedule.lr(step);
        // A rank asked to stop (the dashboard's `q`) stops every rank after this step.
        let stop_wish = parallel.world() > 1 && dashboard.interrupted();
        let (next, outcome) = parallel_optimizer_step(
            task,
            model,
            &mut optimizer,
            &rule,
            micro_batches,
            lr,
            parallel,
            stop_wish,
        )?;
        model = next;
        memory.end_step(step + 1);
        let stopping = outcome.stop;
        done = step + 1;
        unread.push(UnreadStep {
            step: done,
            epoch,
            lr,
            tokens: outcome.tokens,
            loss: outcome.loss,
            report: outcome.report,
        });
        let every = recipe.run.checkpoint_every;
        // Ranks stop together, on the step whose sums carried the wish.
        let interrupted = if parallel.world() > 1 {
            stopping
        } else {
            dashboard.interrupted()
        };
        let due = (every > 0 && done.is_multiple_of(every)) || done == total_steps || interrupted;
        // The step's scalars come to the host only on a logged step (the first, every
        // `log_every`-th, the last) or before a checkpoint: one read for the whole window, so
        // that a GPU runs the steps between without waiting for the host.
        let logged = done == start_step + 1
            || done.is_multiple_of(recipe.run.log_every.max(1))
            || done == stop;
        if logged || due {
            let window: Vec<UnreadStep<B>> = std::mem::take(&mut unread);
            let seconds = window_started.elapsed().as_secs_f64();
            window_started = Instant::now();
            let tokens: usize = window.iter().map(|u| u.tokens).sum();
            let pending = window
                .iter()
                .map(|u| (Some(u.loss.clone()), u.report.clone()));
            let values = PendingReport::read_all(pending);
            for (u, (loss, report)) in window.iter().zip(values) {
                let loss = loss.unwrap_or(0.0);
                let metrics = StepMetrics {
                    step: u.step,
                    epoch: u.epoch,
                    loss,
                    regularizer: report.regularizer,
                    lr: u.lr,
                    grad_norm: report.grad_norm,
                    tokens_per_second: tokens as f64 / seconds.max(1e-9),
                    elapsed_seconds: started.elapsed().as_secs_f64(),
                    eval_loss: None,
                };
                // A non-finite step ends the run here: nothing of it or after it is logged,
                // and no checkpoint is written past the last good one.
                super::divergence::check_step(&metrics, run)?;
                tokens_total += u.tokens;
                first_loss.get_or_insert(loss);
                last_loss = Some(loss);
                if let Some(log) = &log {
                    log.append(&metrics)?;
                }
                dashboard.step(&metrics, total_steps, length.epochs);
            }
        }
        if due && parallel.is_root() {
            run.write_checkpoint(done, &model, &optimizer)?;
        }
        if interrupted {
            break;
        }
    }
    dashboard.finish();
    dashboard.say(memory.report().line());
    let seconds = started.elapsed().as_secs_f64();
    let mut summary = TrainSummary {
        steps: done,
        total_steps,
        trainable_params: accounting.trainable(),
        total_params: accounting.total(),
        first_loss,
        last_loss,
        eval_loss: None,
        eval_accuracy: None,
        tokens_per_second: tokens_total as f64 / seconds.max(1e-9),
        seconds,
        sample: None,
        output_dir: run.dir().to_path_buf(),
        memory: Some(memory.report().clone()),
        device: crate::backend::active_device(),
        distributed: (parallel.world() > 1).then(|| {
            let comm = parallel.stats();
            let steps = (done - start_step).max(1) as u64;
            DistributedSummary {
                world_size: parallel.world(),
                all_reduced_bytes_per_step: (comm.bytes_sent - comm_at_start.bytes_sent) / steps,
                communication_seconds: comm.seconds - comm_at_start.seconds,
            }
        }),
    };
    if !parallel.is_root() {
        // The adapter, the evaluation and summary.json are rank 0's.
        return Ok((summary, model.valid()));
    }
    if done < total_steps {
        dashboard.say(format!(
            "stopped after step {done} of {total_steps}; continue with --resume"
        ));
        return Ok((summary, model.valid()));
    }

    save_adapter(
        &model,
        &adapter,
        &initial,
        &recipe.model.path.display().to_string(),
        &run.adapter(),
    )?;
    // The inference model: no dropout, no graph.
    let inference = model.valid();
    task.evaluate(&inference, device, run, &mut summary, dashboard)?;
    run.write_summary(&summary)?;
    dashboard.say(format!(
        "wrote {} (adapter/, checkpoints/, metrics.jsonl, config.toml, summary.json{})",
        run.dir().display(),
        if summary.sample.is_some() {
            ", sample.txt"
        } else {
            ""
        }
    ));
    Ok((summary, inference))
}
