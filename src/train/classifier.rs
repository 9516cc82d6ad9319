//! Sequence-classification fine-tuning on a GLUE task: the same plan, step rule, checkpoints and
//! dashboard as instruction tuning, with the model's classification head (an encoder's own,
//! or a fresh `score` head on a decoder, trained fully) and cross-entropy (mean-squared error
//! for STS-B).

use std::time::Instant;

use burn::data::dataloader::batcher::Batcher;
use burn::module::AutodiffModule;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor};

use super::dashboard::Dashboard;
use super::metrics::{MetricsLog, StepMetrics};
use super::recipe::Recipe;
use super::trainer::{
    Plan, TrainOptions, TrainSummary, adamw, memory_monitor, prepare_output_dir, record_step,
    resume_from, tokenizer_for,
};
use crate::adapter::{HasAdapters, ParamReport};
use crate::data::{
    ClassificationBatch, ClassificationBatcher, ClassificationTargets, GlueTask, HeldOut,
    PairEncoder, load_glue, split_held_out,
};
use crate::io::adapter::{InitialAdapters, save_adapter};
use crate::model::any::{AnyModel, load_model_as};
use crate::model::decoder::Decoder;
use crate::model::encoder::EncoderClassifier;
use crate::model::{PeftModel, inject_adapters};
use crate::{Error, Result};

/// A model with a sequence-classification head.
pub trait Classifier<B: Backend>: PeftModel<B> + HasAdapters<B> {
    /// Head outputs `[batch, labels]`.
    fn logits(&self, batch: &ClassificationBatch<B>) -> Result<Tensor<B, 2>>;
    /// The head's module name (trained fully, as PEFT's `modules_to_save`).
    fn head(&self) -> &'static str;
}

impl<B: Backend> Classifier<B> for Decoder<B> {
    fn logits(&self, batch: &ClassificationBatch<B>) -> Result<Tensor<B, 2>> {
        self.classify(batch.input_ids.clone(), batch.attention_mask.clone())
    }
    fn head(&self) -> &'static str {
        "score"
    }
}

impl<B: Backend> Classifier<B> for EncoderClassifier<B> {
    fn logits(&self, batch: &ClassificationBatch<B>) -> Result<Tensor<B, 2>> {
        let types = (self.config.type_vocab_size > 1).then(|| batch.token_type_ids.clone());
        Ok(self.forward(batch.input_ids.clone(), batch.attention_mask.clone(), types))
    }
    fn head(&self) -> &'static str {
        "classifier"
    }
}

/// Runs a classification recipe (`data.task` set).
pub fn train_classifier<B: AutodiffBackend>(
    recipe: &Recipe,
    device: &B::Device,
    options: &TrainOptions,
) -> Result<TrainSummary> {
    let task_name = recipe.data.task.as_deref().unwrap_or_default();
    let task: GlueTask = task_name.parse()?;
    let labels = task.num_labels();
    let (model, report) = load_model_as::<B>(&recipe.model.path, recipe.model.precision, device)?;
    report.warn();
    match model {
        AnyModel::Decoder(m) => {
            let m = if m.config.num_labels == Some(labels) {
                m
            } else {
                m.with_score_head(labels, recipe.run.seed)
            };
            run(m, task, recipe, device, options)
        }
        AnyModel::Encoder(m) if m.config.num_labels == labels => {
            run(m, task, recipe, device, options)
        }
        AnyModel::Encoder(m) => Err(Error::invalid(
            "data.task",
            task_name,
            format!(
                "needs {labels} outputs; the model's head has {}",
                m.config.num_labels
            ),
        )),
    }
}

fn run<B: AutodiffBackend, M>(
    model: M,
    task: GlueTask,
    recipe: &Recipe,
    device: &B::Device,
    options: &TrainOptions,
) -> Result<TrainSummary>
where
    M: Classifier<B> + AutodiffModule<B>,
{
    let say = |text: String| {
        if !options.quiet {
            println!("{text}");
        }
    };
    let out = prepare_output_dir(recipe, options)?;
    B::seed(device, recipe.run.seed);

    // Data.
    let d = &recipe.data;
    let tokenizer = tokenizer_for(&recipe.model.path, recipe.model.tokenizer.as_deref())?;
    let rows = load_glue(task, &d.train)?;
    let (mut train_rows, eval_rows) = match &d.eval {
        Some(path) => (rows, load_glue(task, path)?),
        None => split_held_out(rows, HeldOut::Count(d.eval_rows), recipe.run.seed)?,
    };
    if d.limit > 0 {
        train_rows.truncate(d.limit);
    }
    let encoder = PairEncoder::new(tokenizer.hf(), d.max_prompt_length)?;
    let train_set = encoder.tokenize_all(&train_rows)?;
    let eval_set = encoder.tokenize_all(&eval_rows)?;
    say(format!(
        "data: {} {} training rows, {} held out",
        train_set.len(),
        task.dir_name(),
        eval_set.len()
    ));

    // Adapters, with the head trained fully.
    let mut adapter = recipe.adapter.clone();
    if !adapter.modules_to_save.iter().any(|m| m == model.head()) {
        adapter.modules_to_save.push(model.head().to_string());
    }
    let (model, injection) = inject_adapters(model, &adapter)?;
    let initial = InitialAdapters::of(&model);
    let accounting = ParamReport::of(&model);
    say(format!(
        "adapter: {} rank {} on {} layers + {} head; {accounting}",
        adapter.method,
        adapter.rank,
        injection.adapted.len(),
        model.head()
    ));
    let mut memory = memory_monitor(recipe, &model, &initial);

    let plan = Plan::new(recipe, train_set.len());
    let mut optimizer = adamw(recipe).init();
    let mut model = model;
    let mut start_step = 0;
    if options.resume {
        (model, optimizer, start_step) = resume_from(&out, model, optimizer, device)?;
    }
    crate::io::write_atomic(&out.join("config.toml"), recipe.to_toml().as_bytes())?;
    let log = MetricsLog::open(
        &out.join("metrics.jsonl"),
        options.resume.then_some(start_step),
    )?;
    let pad = tokenizer
        .pad_token_id
        .or(tokenizer.eos_token_id)
        .unwrap_or(0);
    let batcher = ClassificationBatcher { pad_token_id: pad };
    let accumulation = recipe.optim.grad_accumulation;

    let started = Instant::now();
    let (mut first_loss, mut last_loss, mut tokens_seen) = (None, None, 0usize);
    let stop = options
        .stop_after
        .map_or(plan.total_steps, |s| s.min(plan.total_steps));
    let epochs = plan.total_steps.div_ceil(plan.steps_per_epoch.max(1));
    let mut dashboard = Dashboard::new(options.quiet, recipe.run.log_every);
    let mut done_steps = start_step;
    for step in start_step..stop {
        let step_started = Instant::now();
        memory.start_step();
        let mut accumulator = GradientsAccumulator::new();
        let (mut loss_sum, mut epoch, mut rows) = (0.0, 0, 0); // rows: input tokens
        for micro in 0..accumulation {
            let (e, indices) =
                plan.batch_indices(recipe, train_set.len(), step * accumulation + micro);
            epoch = e;
            rows += indices
                .iter()
                .map(|&i| train_set[i].input_ids.len())
                .sum::<usize>();
            let batch: ClassificationBatch<B> = batcher.batch(
                indices.iter().map(|&i| train_set[i].clone()).collect(),
                device,
            );
            let loss = loss(&model, &batch)?.div_scalar(accumulation as f64);
            loss_sum += loss.clone().into_scalar().elem::<f64>();
            accumulator.accumulate(&model, GradientsParams::from_grads(loss.backward(), &model));
        }
        let lr = plan.schedule.lr(step);
        let (next, report) =
            plan.step_rule
                .apply(model, &mut optimizer, accumulator.grads(), lr)?;
        model = next;
        memory.end_step(step + 1);
        first_loss.get_or_insert(loss_sum);
        last_loss = Some(loss_sum);
        tokens_seen += rows;
        done_steps = step + 1;
        let metrics = StepMetrics {
            step: done_steps,
            epoch,
            loss: loss_sum,
            regularizer: report.regularizer,
            lr,
            grad_norm: report.grad_norm,
            tokens_per_second: rows as f64 / step_started.elapsed().as_secs_f64(),
            elapsed_seconds: started.elapsed().as_secs_f64(),
            eval_loss: None,
        };
        let interrupted = record_step(
            recipe,
            &metrics,
            plan.total_steps,
            epochs,
            &log,
            &mut dashboard,
            &model,
            &optimizer,
        )?;
        if interrupted {
            break;
        }
    }
    dashboard.finish();
    say(memory.report().line());
    let mut summary = TrainSummary {
        steps: done_steps,
        total_steps: plan.total_steps,
        trainable_params: accounting.trainable(),
        total_params: accounting.total(),
        first_loss,
        last_loss,
        eval_loss: None,
        eval_accuracy: None,
        tokens_per_second: tokens_seen as f64 / started.elapsed().as_secs_f64().max(1e-9),
        seconds: started.elapsed().as_secs_f64(),
        sample: None,
        output_dir: out.clone(),
        memory: Some(memory.report().clone()),
    };
    if done_steps < plan.total_steps {
        return Ok(summary);
    }
    save_adapter(
        &model,
        &adapter,
        &initial,
        &recipe.model.path.display().to_string(),
        &out.join("adapter"),
    )?;
    let (eval_loss, accuracy) =
        evaluate(&model, &eval_set, &batcher, recipe.optim.batch_size, device)?;
    summary.eval_loss = eval_loss;
    summary.eval_accuracy = accuracy;
    if let Some(acc) = accuracy {
        say(format!(
            "held-out accuracy {:.2} % over {} rows",
            100.0 * acc,
            eval_set.len()
        ));
    }
    let json = serde_json::to_string_pretty(&summary).expect("summary serialises");
    crate::io::write_atomic(&out.join("summary.json"), json.as_bytes())?;
    say(format!(
        "wrote {} (adapter/, checkpoints/ with the trained head, metrics.jsonl, summary.json)",
        out.display()
    ));
    Ok(summary)
}

/// Cross-entropy for classes, mean-squared error for scores, in f32 whatever the base dtype.
fn loss<B: Backend, M: Classifier<B>>(
    model: &M,
    batch: &ClassificationBatch<B>,
) -> Result<Tensor<B, 1>> {
    let logits = model.logits(batch)?.cast(burn::tensor::FloatDType::F32);
    Ok(match &batch.targets {
        ClassificationTargets::Classes(classes) => CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits, classes.clone()),
        ClassificationTargets::Scores(scores) => {
            let [b, _] = logits.dims();
            (logits.reshape([b]) - scores.clone()).square().mean()
        }
    })
}

/// Held-out mean loss and (for classes) accuracy.
fn evaluate<B: Backend, M: Classifier<B>>(
    model: &M,
    examples: &[crate::data::ClassificationExample],
    batcher: &ClassificationBatcher,
    batch_size: usize,
    device: &B::Device,
) -> Result<(Option<f64>, Option<f64>)> {
    let (mut loss_sum, mut correct, mut classes, mut count) = (0.0, 0usize, 0usize, 0usize);
    for chunk in examples.chunks(batch_size.max(1)) {
        let batch: ClassificationBatch<B> = batcher.batch(chunk.to_vec(), device);
        loss_sum += loss(model, &batch)?.into_scalar().elem::<f64>() * chunk.len() as f64;
        count += chunk.len();
        if let ClassificationTargets::Classes(targets) = &batch.targets {
            let predicted = model.logits(&batch)?.argmax(1).reshape([chunk.len()]);
            let hits: i64 = predicted
                .equal(targets.clone())
                .int()
                .sum()
                .into_scalar()
                .elem();
            correct += hits as usize;
            classes += chunk.len();
        }
    }
    let mean = (count > 0).then(|| loss_sum / count as f64);
    let accuracy = (classes > 0).then(|| correct as f64 / classes as f64);
    Ok((mean, accuracy))
}
