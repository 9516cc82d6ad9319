//! The fine-tuning loop: a recipe in, an adapter, metrics and a sample out.
//!
//! Each optimizer step averages the task loss over `grad_accumulation` micro-batches, clips the
//! gradient to a global norm, applies the SORSA regularizer in its configured mode and takes one
//! AdamW step ([`PeftStep`]). Checkpoints hold only the trainable tensors, the optimizer state
//! and the step; the data order is a function of (seed, epoch), so a resumed run continues with
//! exactly the batches an uninterrupted run would have seen.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::data::dataloader::batcher::Batcher;
use burn::module::AutodiffModule;
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, Optimizer};
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor};
use serde::{Deserialize, Serialize};

use super::dashboard::Dashboard;
use super::memory::{MemoryMonitor, MemoryReport, MemorySource, ParamBytes, initial_bytes};
use super::metrics::{MetricsLog, StepMetrics};
use super::recipe::Recipe;
use super::schedule::Schedule;
use super::state::{load_trainable, save_trainable};
use super::step::PeftStep;
use crate::adapter::ParamReport;
use crate::data::{
    HeldOut, InstructionTokenizer, LmBatch, LmBatcher, TokenizedExample, TrainingRow,
    TruncationLimits, load_training_rows, permutation, split_held_out,
};
use crate::model::any::load_model_as;
use crate::model::decoder::Decoder;
use crate::model::generate::{GenerationOptions, generate};
use crate::model::loss::causal_lm_loss;
use crate::model::tokenizer::TextTokenizer;
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
}

/// What a finished (or stopped) run reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainSummary {
    pub steps: usize,
    pub total_steps: usize,
    pub trainable_params: usize,
    pub total_params: usize,
    pub first_loss: Option<f64>,
    pub last_loss: Option<f64>,
    pub eval_loss: Option<f64>,
    /// Held-out accuracy of a classification run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_accuracy: Option<f64>,
    pub tokens_per_second: f64,
    pub seconds: f64,
    pub sample: Option<String>,
    pub output_dir: PathBuf,
    /// Peak memory of a step and its parts (see [`super::memory`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryReport>,
    /// The backend, adapter and driver the run used (absent when the library was driven
    /// without [`run_on`](crate::backend::run_on)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<crate::backend::DeviceInfo>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CheckpointState {
    step: usize,
}

const CHECKPOINTS: &str = "checkpoints";

/// Runs the recipe on `device` (instruction tuning, or classification when `data.task` is set).
pub fn train<B: AutodiffBackend>(
    recipe: &Recipe,
    device: &B::Device,
    options: &TrainOptions,
) -> Result<TrainSummary> {
    if recipe.data.task.is_some() {
        return super::classifier::train_classifier::<B>(recipe, device, options);
    }
    train_model::<B>(recipe, device, options).map(|(summary, _)| summary)
}

/// The run's output folder, created; an existing run there is refused unless resuming, so
/// nothing a user has is overwritten.
pub(crate) fn prepare_output_dir(recipe: &Recipe, options: &TrainOptions) -> Result<PathBuf> {
    let out = recipe.run.output_dir.clone();
    if out.join("config.toml").exists() && !options.resume {
        return Err(Error::invalid(
            "run.output_dir",
            out.display(),
            "already holds a run; pass --resume to continue it or choose another output_dir",
        ));
    }
    if options.resume {
        super::identity::check_resume(recipe, &out)?;
    }
    std::fs::create_dir_all(&out).map_err(|source| Error::Io {
        path: out.clone(),
        source,
    })?;
    Ok(out)
}

/// Step counts, schedule and step rule of a run over `examples` training examples.
pub(crate) struct Plan {
    pub batches_per_epoch: usize,
    pub steps_per_epoch: usize,
    pub total_steps: usize,
    pub schedule: Schedule,
    pub step_rule: PeftStep,
    /// The current epoch's permutation, drawn once per epoch (not once per micro-batch).
    order: std::cell::RefCell<Option<(usize, Vec<usize>)>>,
}

impl Plan {
    pub(crate) fn new(recipe: &Recipe, examples: usize) -> Self {
        let o = &recipe.optim;
        let steps_per_epoch = examples.div_ceil(o.batch_size * o.grad_accumulation);
        let total_steps = if o.max_steps > 0 {
            o.max_steps
        } else {
            o.epochs * steps_per_epoch
        };
        let clip = (o.max_grad_norm > 0.0).then_some(o.max_grad_norm);
        Self {
            batches_per_epoch: examples.div_ceil(o.batch_size),
            steps_per_epoch,
            total_steps,
            schedule: Schedule {
                kind: o.schedule,
                base_lr: o.lr,
                warmup_steps: (total_steps as f64 * o.warmup_ratio).ceil() as usize,
                total_steps,
                power: o.power,
                end_lr: 0.0,
            },
            step_rule: PeftStep::new(&recipe.adapter, o.lr, clip, o.grad_accumulation),
            order: std::cell::RefCell::new(None),
        }
    }

    /// The examples of micro-batch `micro`: epoch `e` visits a seeded permutation.
    pub(crate) fn batch_indices(
        &self,
        recipe: &Recipe,
        examples: usize,
        micro: usize,
    ) -> (usize, Vec<usize>) {
        let epoch = micro / self.batches_per_epoch;
        let pos = micro % self.batches_per_epoch;
        let mut cached = self.order.borrow_mut();
        if cached.as_ref().is_none_or(|(e, _)| *e != epoch) {
            let order = permutation(examples, recipe.run.seed.wrapping_add(epoch as u64));
            *cached = Some((epoch, order));
        }
        let order = &cached.as_ref().expect("just filled").1;
        let size = recipe.optim.batch_size;
        let end = ((pos + 1) * size).min(order.len());
        (epoch, order[pos * size..end].to_vec())
    }
}

/// AdamW with the recipe's betas, epsilon and weight decay.
pub(crate) fn adamw(recipe: &Recipe) -> AdamWConfig {
    let o = &recipe.optim;
    AdamWConfig::new()
        .with_beta_1(o.betas[0] as f32)
        .with_beta_2(o.betas[1] as f32)
        .with_epsilon(o.eps as f32)
        .with_weight_decay(o.weight_decay as f32)
}

/// Restores the latest checkpoint of `out` into `model` and `optimizer`; returns the step.
pub(crate) fn resume_from<B: AutodiffBackend, M: AutodiffModule<B>, O: Optimizer<M, B>>(
    out: &Path,
    model: M,
    optimizer: O,
    device: &B::Device,
) -> Result<(M, O, usize)> {
    let Some((dir, step)) = latest_checkpoint(out)? else {
        return Ok((model, optimizer, 0));
    };
    let model = load_trainable(model, &dir.join("trainable.safetensors"))?;
    let path = dir.join("optimizer.bin");
    let bytes = std::fs::read(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    let record = BinBytesRecorder::<FullPrecisionSettings>::default()
        .load(bytes, device)
        .map_err(|e| Error::BadFile {
            path,
            message: format!("{e}"),
        })?;
    Ok((model, optimizer.load_record(record), step))
}

/// Runs the recipe and also returns the trained model (adapters attached, inference backend).
pub fn train_model<B: AutodiffBackend>(
    recipe: &Recipe,
    device: &B::Device,
    options: &TrainOptions,
) -> Result<(TrainSummary, Decoder<B::InnerBackend>)> {
    let say = |text: String| {
        if !options.quiet {
            println!("{text}");
        }
    };
    let out = prepare_output_dir(recipe, options)?;
    B::seed(device, recipe.run.seed);

    // Model and tokenizer.
    let (model, report) = load_model_as::<B>(&recipe.model.path, recipe.model.precision, device)?;
    report.warn();
    let model = model.decoder().ok_or_else(|| {
        Error::invalid(
            "model.path",
            recipe.model.path.display(),
            "training needs a causal LM (decoder)",
        )
    })?;
    let recomputed_layers = recipe.recomputed_layers(model.layers.len())?;
    let tokenizer =
        TextTokenizer::for_model(&recipe.model.path, recipe.model.tokenizer.as_deref())?;
    let pad = model
        .config
        .pad_token_id
        .or(tokenizer.pad_token_id)
        .or(tokenizer.eos_token_id)
        .unwrap_or(0);

    // Data.
    let d = &recipe.data;
    let first_rows = (d.first_rows > 0).then_some(d.first_rows);
    let rows = load_training_rows(&d.train, d.format, &d.columns, first_rows)?;
    let chat = rows.iter().any(|r| matches!(r, TrainingRow::Chat(_)));
    let (mut train_rows, eval_rows) = match &d.eval {
        Some(path) => (rows, load_training_rows(path, d.format, &d.columns, None)?),
        None => split_held_out(rows, HeldOut::Count(d.eval_rows), recipe.run.seed)?,
    };
    if d.limit > 0 && d.limit < train_rows.len() {
        let keep: Vec<usize> = permutation(train_rows.len(), recipe.run.seed ^ 0x5EED)
            .into_iter()
            .take(d.limit)
            .collect();
        let mut sorted = keep;
        sorted.sort_unstable();
        train_rows = sorted.into_iter().map(|i| train_rows[i].clone()).collect();
    }
    let limits = TruncationLimits {
        max_prompt_length: d.max_prompt_length,
        max_response_length: d.max_response_length,
    };
    let encoder = InstructionTokenizer::new(&tokenizer, limits)?;
    let train_set = encoder.tokenize_rows(&train_rows)?;
    let eval_set = encoder.tokenize_rows(&eval_rows)?;
    super::setup::check_vocabulary(
        train_set
            .iter()
            .chain(&eval_set)
            .map(|e| e.input_ids.as_slice()),
        model.config.vocab_size,
        tokenizer.path(),
        "data",
    )?;
    say(format!(
        "data: {} training rows, {} held out ({})",
        train_set.len(),
        eval_set.len(),
        d.train.display()
    ));

    // Adapters.
    let started = Instant::now();
    let (model, initial, adapted) = super::setup::attach_adapters(
        model,
        &recipe.adapter,
        recipe.model.init_adapter.as_deref(),
    )?;
    let accounting = ParamReport::of(&model);
    say(format!(
        "adapter: {} rank {} on {adapted} layers (init {:.2} s); {accounting}",
        recipe.adapter.method,
        recipe.adapter.rank,
        started.elapsed().as_secs_f64()
    ));
    let mut memory = memory_monitor(device, &model, &initial);

    // Optimisation.
    let o = &recipe.optim;
    let plan = Plan::new(recipe, train_set.len());
    let (total_steps, steps_per_epoch) = (plan.total_steps, plan.steps_per_epoch);
    let (schedule, step_rule) = (&plan.schedule, &plan.step_rule);
    let mut optimizer = adamw(recipe).init();
    let mut model = model;
    let mut start_step = 0;
    if options.resume {
        let restored = resume_from(&out, model, optimizer, device)?;
        (model, optimizer, start_step) = restored;
        if start_step > 0 {
            say(format!("resumed at step {start_step}"));
        }
    }
    crate::io::write_atomic(&out.join("config.toml"), recipe.to_toml().as_bytes())?;
    let log = MetricsLog::open(
        &out.join("metrics.jsonl"),
        options.resume.then_some(start_step),
    )?;

    let batcher = LmBatcher { pad_token_id: pad };
    let batch_at = |micro: usize| -> (usize, LmBatch<B>) {
        let (epoch, indices) = plan.batch_indices(recipe, train_set.len(), micro);
        let items: Vec<TokenizedExample> = indices.iter().map(|&i| train_set[i].clone()).collect();
        (epoch, batcher.batch(items, device))
    };

    let run_started = Instant::now();
    let (mut first_loss, mut last_loss) = (None, None);
    let mut tokens_total = 0usize;
    let mut stop = options
        .stop_after
        .map_or(total_steps, |s| s.min(total_steps));
    let epochs = total_steps.div_ceil(steps_per_epoch.max(1));
    let mut dashboard = Dashboard::new(options.quiet, recipe.run.log_every);
    for step in start_step..stop {
        let step_started = Instant::now();
        memory.start_step();
        let mut accumulator = GradientsAccumulator::new();
        // The loss stays on the device; the step reads it back with its other numbers, once.
        let mut step_loss: Option<Tensor<B::InnerBackend, 1>> = None;
        let mut tokens = 0;
        let mut epoch = 0;
        for micro in 0..o.grad_accumulation {
            let index = step * o.grad_accumulation + micro;
            let (e, batch) = batch_at(index);
            epoch = e;
            tokens += batch.num_targets;
            let divisor = o.grad_accumulation as f64;
            let (value, grads) = if recipe.model.gradient_checkpointing {
                // Dropout masks are a function of (seed, micro-batch), so a resumed run draws
                // the same ones.
                let seed = recipe.run.seed ^ (index as u64).rotate_left(32);
                let (value, grads) = super::recompute::causal_lm_gradients(
                    &model,
                    batch.input_ids,
                    batch.attention_mask,
                    batch.labels,
                    divisor,
                    seed,
                    recomputed_layers,
                );
                let value = Tensor::<B::InnerBackend, 1>::from_floats([value as f32], device);
                (value, grads)
            } else {
                let logits = model.forward(batch.input_ids, Some(batch.attention_mask));
                let loss = causal_lm_loss(logits, batch.labels).div_scalar(divisor);
                let value = loss.clone().inner();
                (value, GradientsParams::from_grads(loss.backward(), &model))
            };
            step_loss = Some(match step_loss {
                Some(sum) => sum + value,
                None => value,
            });
            accumulator.accumulate(&model, grads);
        }
        let lr = schedule.lr(step);
        let (next, report) = step_rule.step(model, &mut optimizer, accumulator.grads(), lr)?;
        model = next;
        memory.end_step(step + 1);
        let (loss_sum, report) = report.read_with(step_loss);
        let loss_sum = loss_sum.unwrap_or(0.0);
        tokens_total += tokens;
        first_loss.get_or_insert(loss_sum);
        last_loss = Some(loss_sum);
        let done = step + 1;
        let metrics = StepMetrics {
            step: done,
            epoch,
            loss: loss_sum,
            regularizer: report.regularizer,
            lr,
            grad_norm: report.grad_norm,
            tokens_per_second: tokens as f64 / step_started.elapsed().as_secs_f64(),
            elapsed_seconds: run_started.elapsed().as_secs_f64(),
            eval_loss: None,
        };
        let interrupted = record_step(
            recipe,
            &metrics,
            total_steps,
            epochs,
            &log,
            &mut dashboard,
            &model,
            &optimizer,
        )?;
        if interrupted {
            stop = done;
            break;
        }
    }
    dashboard.finish();
    say(memory.report().line());
    let steps_done = stop;
    let seconds = run_started.elapsed().as_secs_f64();
    let mut summary = TrainSummary {
        steps: steps_done,
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
        output_dir: out.clone(),
        memory: Some(memory.report().clone()),
        device: crate::backend::active_device(),
    };
    if steps_done < total_steps {
        say(format!(
            "stopped after step {steps_done} of {total_steps}; continue with --resume"
        ));
        return Ok((summary, model.valid()));
    }

    // Outputs: adapter, held-out loss, sample.
    let adapter_dir = out.join("adapter");
    save_adapter(
        &model,
        &recipe.adapter,
        &initial,
        &recipe.model.path.display().to_string(),
        &adapter_dir,
    )?;
    let inference = model.valid();
    summary.eval_loss = held_out_loss(&inference, &eval_set, pad, o.batch_size, device);
    if let Some(eval) = summary.eval_loss {
        say(format!(
            "held-out loss {eval:.4} over {} rows",
            eval_set.len()
        ));
    }
    if let Some(prompt) = &recipe.run.sample_prompt {
        let ids = crate::data::chat::prompt_ids(&tokenizer, prompt, chat)?;
        let options = GenerationOptions {
            max_new_tokens: recipe.run.sample_max_new_tokens,
            eos_token_ids: inference.config.eos_token_ids.clone(),
            pad_token_id: pad,
            ..GenerationOptions::default()
        };
        let new = generate(&inference, &[ids], &options)?;
        let text = tokenizer.decode(&new[0])?;
        crate::io::write_atomic(
            &out.join("sample.txt"),
            format!("{prompt}\n---\n{text}\n").as_bytes(),
        )?;
        say(format!("sample: {text}"));
        summary.sample = Some(text);
    }
    let json = serde_json::to_string_pretty(&summary).expect("summary serialises");
    crate::io::write_atomic(&out.join("summary.json"), json.as_bytes())?;
    say(format!(
        "wrote {} (adapter/, metrics.jsonl, config.toml, sample.txt, summary.json)",
        out.display()
    ));
    Ok((summary, inference))
}

/// A memory monitor for a run on `device` of `model` (adapters injected) that also keeps the
/// `initial` factors.
pub(crate) fn memory_monitor<B: AutodiffBackend, M: AutodiffModule<B>>(
    device: &B::Device,
    model: &M,
    initial: &InitialAdapters<B>,
) -> MemoryMonitor {
    MemoryMonitor::new(
        ParamBytes::of(model),
        initial_bytes(initial),
        MemorySource::of(device),
    )
}

/// Token-weighted mean loss over `examples` (no gradients).
pub fn held_out_loss<B: Backend>(
    model: &Decoder<B>,
    examples: &[TokenizedExample],
    pad: u32,
    batch_size: usize,
    device: &B::Device,
) -> Option<f64> {
    let batcher = LmBatcher { pad_token_id: pad };
    let (mut sum, mut count) = (0.0, 0usize);
    for chunk in examples.chunks(batch_size.max(1)) {
        let batch: LmBatch<B> = batcher.batch(chunk.to_vec(), device);
        if batch.num_targets == 0 {
            continue;
        }
        let logits = model.forward(batch.input_ids, Some(batch.attention_mask));
        let loss: f64 = causal_lm_loss(logits, batch.labels).into_scalar().elem();
        sum += loss * batch.num_targets as f64;
        count += batch.num_targets;
    }
    (count > 0).then(|| sum / count as f64)
}

fn write_checkpoint<B: AutodiffBackend, M: AutodiffModule<B>, O: Optimizer<M, B>>(
    out: &Path,
    step: usize,
    model: &M,
    optimizer: &O,
) -> Result<()> {
    let root = out.join(CHECKPOINTS);
    let final_dir = root.join(format!("step-{step:06}"));
    let tmp = root.join(format!(".step-{step:06}.tmp"));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    save_trainable(model, &tmp.join("trainable.safetensors"))?;
    let bytes = BinBytesRecorder::<FullPrecisionSettings>::default()
        .record(optimizer.to_record(), ())
        .map_err(|e| Error::BadFile {
            path: tmp.join("optimizer.bin"),
            message: format!("{e}"),
        })?;
    crate::io::write_atomic(&tmp.join("optimizer.bin"), &bytes)?;
    let state = serde_json::to_string(&CheckpointState { step }).expect("state serialises");
    crate::io::write_atomic(&tmp.join("state.json"), state.as_bytes())?;
    // The rename publishes the checkpoint whole; a crash before it leaves only the temp dir.
    let _ = std::fs::remove_dir_all(&final_dir);
    std::fs::rename(&tmp, &final_dir).map_err(io(&final_dir))
}

/// Records a finished step: stops a diverged run, appends it to `metrics.jsonl`, shows it, and
/// writes a checkpoint when one is due (every `checkpoint_every` steps, at the last step, or when the user stopped
/// the dashboard). Returns whether the user asked to stop.
#[allow(clippy::too_many_arguments)]
pub(crate) fn record_step<B: AutodiffBackend, M: AutodiffModule<B>, O: Optimizer<M, B>>(
    recipe: &Recipe,
    metrics: &StepMetrics,
    total_steps: usize,
    epochs: usize,
    log: &MetricsLog,
    dashboard: &mut Dashboard,
    model: &M,
    optimizer: &O,
) -> Result<bool> {
    super::divergence::check_step(metrics, &recipe.run.output_dir)?;
    log.append(metrics)?;
    dashboard.step(metrics, total_steps, epochs);
    let (done, every) = (metrics.step, recipe.run.checkpoint_every);
    let interrupted = dashboard.interrupted();
    if (every > 0 && done.is_multiple_of(every)) || done == total_steps || interrupted {
        write_checkpoint(&recipe.run.output_dir, done, model, optimizer)?;
    }
    Ok(interrupted)
}

/// The newest complete checkpoint of a run.
pub fn latest_checkpoint(out: &Path) -> Result<Option<(PathBuf, usize)>> {
    let root = out.join(CHECKPOINTS);
    if !root.is_dir() {
        return Ok(None);
    }
    let mut best: Option<(PathBuf, usize)> = None;
    for entry in std::fs::read_dir(&root).map_err(|source| Error::Io {
        path: root.clone(),
        source,
    })? {
        let path = entry
            .map_err(|source| Error::Io {
                path: root.clone(),
                source,
            })?
            .path();
        let state = path.join("state.json");
        if !state.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&state).map_err(|source| Error::Io {
            path: state.clone(),
            source,
        })?;
        let parsed: CheckpointState = serde_json::from_str(&text).map_err(|e| Error::BadFile {
            path: state.clone(),
            message: e.to_string(),
        })?;
        if best.as_ref().is_none_or(|(_, s)| parsed.step > *s) {
            best = Some((path, parsed.step));
        }
    }
    Ok(best)
}
