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
use super::setup::{attach_adapters, check_vocabulary};
use super::trainer::{
    Plan, TrainOptions, TrainSummary, adamw, memory_monitor, prepare_output_dir, record_step,
    resume_from,
};
use crate::adapter::{HasAdapters, ParamReport};
use crate::data::{
    ClassificationBatch, ClassificationBatcher, ClassificationExample, ClassificationTargets,
    GlueTask, HeldOut, PairEncoder, load_glue_with, split_held_out,
};
use crate::model::PeftModel;
use crate::model::any::load_model_as;
use crate::model::decoder::Decoder;
use crate::model::encoder::{EncoderClassifier, HeadInit};
use crate::model::inject::saved_linears;
use crate::model::source::ModelSource;
use crate::model::tokenizer::TextTokenizer;
use crate::persist::adapter::save_adapter;
use crate::{Error, Result};

/// A model with a sequence-classification head.
pub trait Classifier<B: Backend>: PeftModel<B> + HasAdapters<B> {
    /// Head outputs `[batch, labels]`.
    fn logits(&self, batch: &ClassificationBatch<B>) -> Result<Tensor<B, 2>>;
    /// The head's module name (trained fully, as PEFT's `modules_to_save`).
    fn head(&self) -> &'static str;
    /// Token ids the embedding takes.
    fn vocab_size(&self) -> usize;
    /// Segment ids the embedding takes (1 or less: none are passed).
    fn type_vocab_size(&self) -> usize;
    /// The longest input the model takes, if it has a limit (an encoder's position table).
    fn max_length(&self) -> Option<usize>;
}

impl<B: Backend> Classifier<B> for Decoder<B> {
    fn logits(&self, batch: &ClassificationBatch<B>) -> Result<Tensor<B, 2>> {
        self.classify(batch.input_ids.clone(), batch.attention_mask.clone())
    }
    fn head(&self) -> &'static str {
        "score"
    }
    fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }
    fn type_vocab_size(&self) -> usize {
        0
    }
    fn max_length(&self) -> Option<usize> {
        None
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
    fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }
    fn type_vocab_size(&self) -> usize {
        self.config.type_vocab_size
    }
    fn max_length(&self) -> Option<usize> {
        Some(self.config.max_sequence_length())
    }
}

/// Runs a classification recipe (`data.task` set). A head the checkpoint lacks (a pretrained
/// body such as `roberta-base`, or a causal LM) is created as transformers does, seeded by
/// `run.seed`, with a notice naming its tensors.
pub fn train_classifier<B: AutodiffBackend>(
    recipe: &Recipe,
    device: &B::Device,
    options: &TrainOptions,
) -> Result<TrainSummary> {
    let task_name = recipe.data.task.as_deref().unwrap_or_default();
    let task: GlueTask = task_name.parse()?;
    let labels = task.num_labels();
    let path = &recipe.model.path;
    let seed = recipe.run.seed;
    if ModelSource::resolve(path)?.is_encoder() {
        let head = HeadInit::IfMissing {
            num_labels: labels,
            seed,
        };
        let (model, report) =
            EncoderClassifier::<B>::load_as(path, head, recipe.model.precision, device)?;
        report.warn();
        if model.config.num_labels != labels {
            return Err(Error::invalid(
                "data.task",
                task_name,
                format!(
                    "needs {labels} outputs; the model's head has {}",
                    model.config.num_labels
                ),
            ));
        }
        let new_modules = modules_of(&report.initialized);
        return run(model, task, recipe, device, options, new_modules);
    }
    let (model, report) = load_model_as::<B>(path, recipe.model.precision, device)?;
    report.warn();
    let model = model.decoder().ok_or_else(|| {
        Error::invalid(
            "model.path",
            path.display(),
            "expected a decoder or an encoder",
        )
    })?;
    if model.score.is_some() && model.config.num_labels == Some(labels) {
        return run(model, task, recipe, device, options, Vec::new());
    }
    eprintln!(
        "notice: the checkpoint has no {labels}-label `score` head; score.weight was newly \
         initialised"
    );
    let model = model.with_score_head(labels, seed);
    run(model, task, recipe, device, options, vec!["score".into()])
}

/// The modules of tensor names (`classifier.dense.weight` → `classifier.dense`), deduplicated.
fn modules_of(tensors: &[String]) -> Vec<String> {
    let mut modules: Vec<String> = tensors
        .iter()
        .map(|t| {
            t.rsplit_once('.')
                .map_or(t.as_str(), |(m, _)| m)
                .to_string()
        })
        .collect();
    modules.dedup();
    modules
}

/// The recipe's limits against the model's: inputs longer than the position table, token ids
/// past the vocabulary and segment ids past the segment table are errors naming the field or
/// the tokenizer and the row.
fn check_inputs<B: Backend, M: Classifier<B>>(
    model: &M,
    recipe: &Recipe,
    examples: &[ClassificationExample],
    tokenizer: &std::path::Path,
) -> Result<()> {
    let requested = recipe.data.max_prompt_length;
    if let Some(max) = model.max_length().filter(|&max| requested > max) {
        return Err(Error::invalid(
            "data.max_prompt_length",
            requested,
            format!(
                "exceeds the {max} positions of {}; set it to at most {max}",
                recipe.model.path.display()
            ),
        ));
    }
    check_vocabulary(
        examples.iter().map(|e| e.input_ids.as_slice()),
        model.vocab_size(),
        tokenizer,
        "data",
    )?;
    let types = model.type_vocab_size();
    if types > 1
        && let Some((i, t)) = examples.iter().enumerate().find_map(|(i, e)| {
            e.token_type_ids
                .iter()
                .find(|&&t| t as usize >= types)
                .map(|t| (i, t))
        })
    {
        return Err(Error::BadFile {
            path: tokenizer.to_path_buf(),
            message: format!(
                "data row {i} has segment id {t}, outside the model's {types} segment types: is \
                 this the model's tokenizer (model.tokenizer)?"
            ),
        });
    }
    Ok(())
}

fn run<B: AutodiffBackend, M>(
    model: M,
    task: GlueTask,
    recipe: &Recipe,
    device: &B::Device,
    options: &TrainOptions,
    new_modules: Vec<String>,
) -> Result<TrainSummary>
where
    M: Classifier<B> + AutodiffModule<B>,
    M::InnerModule: Classifier<B::InnerBackend>,
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
    let tokenizer =
        TextTokenizer::for_model(&recipe.model.path, recipe.model.tokenizer.as_deref())?;
    let mut rows = load_glue_with(task, &d.train, &d.columns)?;
    if d.first_rows > 0 {
        rows.truncate(d.first_rows);
    }
    let (mut train_rows, eval_rows) = match &d.eval {
        Some(path) => (rows, load_glue_with(task, path, &d.columns)?),
        None => split_held_out(rows, HeldOut::Count(d.eval_rows), recipe.run.seed)?,
    };
    if d.limit > 0 {
        train_rows.truncate(d.limit);
    }
    let encoder = PairEncoder::new(tokenizer.hf(), d.max_prompt_length)?;
    let train_set = encoder.tokenize_all(&train_rows)?;
    let eval_set = encoder.tokenize_all(&eval_rows)?;
    let all: Vec<ClassificationExample> = train_set.iter().chain(&eval_set).cloned().collect();
    check_inputs(&model, recipe, &all, tokenizer.path())?;
    say(format!(
        "data: {} {} training rows, {} held out",
        train_set.len(),
        task.dir_name(),
        eval_set.len()
    ));

    // Adapters, with the head trained fully unless modules_to_save names a part of it.
    let mut adapter = recipe.adapter.clone();
    let head = model.head();
    let head_linears: Vec<String> = model
        .linears()
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| name == head || name.starts_with(&format!("{head}.")))
        .collect();
    let trained = saved_linears(&model, &adapter.modules_to_save)?;
    if !head_linears.iter().any(|n| trained.contains(n)) {
        adapter.modules_to_save.push(head.to_string());
    }
    let trained = saved_linears(&model, &adapter.modules_to_save)?;
    for module in new_modules.iter().filter(|m| !trained.contains(m)) {
        eprintln!(
            "notice: {module} is new and not in adapter.modules_to_save: it keeps its random \
             initialisation (saved with the adapter)"
        );
    }
    let (model, mut initial, adapted) =
        attach_adapters(model, &adapter, recipe.model.init_adapter.as_deref())?;
    initial.new_modules = new_modules;
    let accounting = ParamReport::of(&model);
    say(format!(
        "adapter: {} rank {} on {adapted} layers, trained fully: {}; {accounting}",
        adapter.method,
        adapter.rank,
        adapter.modules_to_save.join(", ")
    ));
    let mut memory = memory_monitor(device, &model, &initial);

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
        let (mut epoch, mut rows) = (0, 0); // rows: input tokens
        // The loss stays on the device; the step reads it back with its other numbers, once.
        let mut step_loss: Option<Tensor<B::InnerBackend, 1>> = None;
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
            let value = loss.clone().inner();
            step_loss = Some(match step_loss {
                Some(sum) => sum + value,
                None => value,
            });
            accumulator.accumulate(&model, GradientsParams::from_grads(loss.backward(), &model));
        }
        let lr = plan.schedule.lr(step);
        let (next, report) = plan
            .step_rule
            .step(model, &mut optimizer, accumulator.grads(), lr)?;
        let (loss_sum, report) = report.read_with(step_loss);
        let loss_sum = loss_sum.unwrap_or(0.0);
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
        device: crate::backend::active_device(),
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
    // The inference model: no dropout, no graph.
    let (eval_loss, accuracy) = evaluate(
        &model.valid(),
        &eval_set,
        &batcher,
        recipe.optim.batch_size,
        device,
    )?;
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
        "wrote {} (adapter/ with the trained head, checkpoints/, metrics.jsonl, summary.json)",
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

/// Held-out mean loss and (for classes) accuracy, with the inference model.
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
