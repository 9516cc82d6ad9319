//! The sequence-classification task (GLUE): the model's classification head (an encoder's own,
//! or a fresh `score` head on a decoder, trained fully as PEFT's `modules_to_save`),
//! cross-entropy over the classes (mean-squared error for STS-B), held-out loss and accuracy.

use std::marker::PhantomData;

use burn::data::dataloader::batcher::Batcher;
use burn::module::AutodiffModule;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor};

use super::dashboard::Dashboard;
use super::data_parallel::DataParallel;
use super::recipe::Recipe;
use super::run_folder::RunFolder;
use super::setup::{attach_adapters, check_vocabulary, pad_token_id};
use super::summary::TrainSummary;
use super::task::{MicroBatchGradients, Objective, Task};
use super::training_loop::{TrainOptions, Trainee, run_task};
use crate::adapter::{HasAdapters, ParamReport};
use crate::data::{
    ClassificationBatch, ClassificationBatcher, ClassificationExample, ClassificationTargets,
    GlueTask, HeldOut, PairEncoder, load_glue_with, seeded_subset, split_held_out,
};
use crate::model::PeftModel;
use crate::model::any::load_model_as;
use crate::model::decoder::Decoder;
use crate::model::encoder::{EncoderClassifier, HeadInit};
use crate::model::inject::saved_linears;
use crate::model::source::ModelSource;
use crate::model::tokenizer::TextTokenizer;
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
    /// The model's own pad token id, if its config names one.
    fn pad_token_id(&self) -> Option<u32>;
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
    fn pad_token_id(&self) -> Option<u32> {
        self.config.pad_token_id
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
    fn pad_token_id(&self) -> Option<u32> {
        Some(self.config.pad_token_id as u32)
    }
}

/// Runs a classification recipe (`data.task` set) in its prepared output folder. A head the
/// checkpoint lacks (a pretrained body such as `roberta-base`, or a causal LM) is created as
/// transformers does, seeded by `run.seed`, with a notice naming its tensors.
pub fn train_classifier<B: AutodiffBackend>(
    recipe: &Recipe,
    run: &RunFolder,
    device: &B::Device,
    options: &TrainOptions,
    parallel: &mut DataParallel,
    dashboard: &mut Dashboard,
) -> Result<TrainSummary> {
    let task_name = recipe.data.task.as_deref().unwrap_or_default();
    let task: GlueTask = task_name.parse()?;
    let labels = task.num_labels();
    let path = &recipe.model.path;
    let seed = recipe.run.seed;
    let setting = Setting {
        task,
        recipe,
        run,
        device,
        options,
    };
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
        return train_with_head(model, new_modules, &setting, parallel, dashboard);
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
        return train_with_head(model, Vec::new(), &setting, parallel, dashboard);
    }
    eprintln!(
        "notice: the checkpoint has no {labels}-label `score` head; score.weight was newly \
         initialised"
    );
    let model = model.with_score_head(labels, seed);
    train_with_head(model, vec!["score".into()], &setting, parallel, dashboard)
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

/// GLUE examples and the model type whose head classifies them.
pub struct Classification<M> {
    train: Vec<ClassificationExample>,
    held_out: Vec<ClassificationExample>,
    batcher: ClassificationBatcher,
    eval_batch_size: usize,
    _model: PhantomData<fn() -> M>,
}

/// A classification micro-batch and its input tokens (counted on the host).
pub struct CountedBatch<B: Backend> {
    batch: ClassificationBatch<B>,
    tokens: usize,
}

impl<B, M> Objective<B> for Classification<M>
where
    B: AutodiffBackend,
    M: Classifier<B> + AutodiffModule<B>,
{
    type Model = M;
    type Batch = CountedBatch<B>;

    fn tokens(&self, batch: &CountedBatch<B>) -> usize {
        batch.tokens
    }

    fn gradients(
        &self,
        model: &M,
        batch: CountedBatch<B>,
        divisor: f64,
        _seed: u64,
    ) -> Result<MicroBatchGradients<B>> {
        let loss = loss(model, &batch.batch)?.div_scalar(divisor);
        Ok(MicroBatchGradients {
            loss: loss.clone().inner(),
            grads: GradientsParams::from_grads(loss.backward(), model),
        })
    }
}

impl<B, M> Task<B> for Classification<M>
where
    B: AutodiffBackend,
    M: Classifier<B> + AutodiffModule<B>,
    M::InnerModule: Classifier<B::InnerBackend>,
{
    fn examples(&self) -> usize {
        self.train.len()
    }

    fn weight(&self, indices: &[usize]) -> usize {
        // The loss is a mean over examples.
        indices.len()
    }

    fn batch(&self, indices: &[usize], device: &B::Device) -> CountedBatch<B> {
        let items: Vec<ClassificationExample> =
            indices.iter().map(|&i| self.train[i].clone()).collect();
        let tokens = items.iter().map(|e| e.input_ids.len()).sum();
        CountedBatch {
            batch: self.batcher.batch(items, device),
            tokens,
        }
    }

    fn evaluate(
        &self,
        model: &M::InnerModule,
        device: &B::Device,
        _run: &RunFolder,
        summary: &mut TrainSummary,
        dashboard: &mut Dashboard,
    ) -> Result<()> {
        let (eval_loss, accuracy) = evaluate(
            model,
            &self.held_out,
            &self.batcher,
            self.eval_batch_size,
            device,
        )?;
        summary.eval_loss = eval_loss;
        summary.eval_accuracy = accuracy;
        if let Some(acc) = accuracy {
            dashboard.say(format!(
                "held-out accuracy {:.2} % over {} rows",
                100.0 * acc,
                self.held_out.len()
            ));
        }
        Ok(())
    }
}

/// What a classification run is given, whatever its model type.
struct Setting<'a, B: AutodiffBackend> {
    task: GlueTask,
    recipe: &'a Recipe,
    run: &'a RunFolder,
    device: &'a B::Device,
    options: &'a TrainOptions,
}

/// Tokenizes the task's data, attaches the adapters (the head trained fully unless
/// `modules_to_save` names a part of it; `new_modules` are those the checkpoint lacked) and runs
/// the loop.
fn train_with_head<B: AutodiffBackend, M>(
    model: M,
    new_modules: Vec<String>,
    setting: &Setting<'_, B>,
    parallel: &mut DataParallel,
    dashboard: &mut Dashboard,
) -> Result<TrainSummary>
where
    M: Classifier<B> + AutodiffModule<B>,
    M::InnerModule: Classifier<B::InnerBackend>,
{
    let Setting {
        task,
        recipe,
        run,
        device,
        options,
    } = *setting;
    // Data.
    let d = &recipe.data;
    let tokenizer =
        TextTokenizer::for_model(&recipe.model.path, recipe.model.tokenizer.as_deref())?;
    let mut rows = load_glue_with(task, &d.train, &d.columns)?;
    if d.first_rows > 0 {
        rows.truncate(d.first_rows);
    }
    let (train_rows, eval_rows) = match &d.eval {
        Some(path) => (rows, load_glue_with(task, path, &d.columns)?),
        None => split_held_out(rows, HeldOut::Count(d.eval_rows), recipe.run.seed)?,
    };
    let train_rows = seeded_subset(train_rows, d.limit, recipe.run.seed);
    let encoder = PairEncoder::new(tokenizer.hf()?, d.max_prompt_length)?;
    let train_set = encoder.tokenize_all(&train_rows)?;
    let eval_set = encoder.tokenize_all(&eval_rows)?;
    let all: Vec<ClassificationExample> = train_set.iter().chain(&eval_set).cloned().collect();
    check_inputs(&model, recipe, &all, tokenizer.path())?;
    dashboard.say(format!(
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
    let pad = pad_token_id(model.pad_token_id(), &tokenizer);
    let (model, mut initial, adapted) =
        attach_adapters(model, &adapter, recipe.model.init_adapter.as_deref())?;
    initial.new_modules = new_modules;
    dashboard.say(format!(
        "adapter: {} rank {} on {adapted} layers, trained fully: {}; {}",
        adapter.method,
        adapter.rank,
        adapter.modules_to_save.join(", "),
        ParamReport::of(&model)
    ));

    let task = Classification::<M> {
        train: train_set,
        held_out: eval_set,
        batcher: ClassificationBatcher { pad_token_id: pad },
        eval_batch_size: recipe.optim.batch_size,
        _model: PhantomData,
    };
    let trainee = Trainee {
        model,
        initial,
        adapter,
    };
    run_task(
        &task, trainee, recipe, run, device, options, parallel, dashboard,
    )
    .map(|(summary, _)| summary)
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
