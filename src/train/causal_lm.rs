//! The causal-LM task: instruction tuning (prompt tokens masked out of the loss), chat data and
//! plain language modelling on a decoder. Its loss is the token-weighted next-token
//! cross-entropy, its backward pass plain or with per-layer recomputation
//! (`model.gradient_checkpointing`), its evaluation the held-out loss and a sample completion.

use std::marker::PhantomData;

use burn::data::dataloader::batcher::Batcher;
use burn::module::AutodiffModule;
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
    HeldOut, InstructionTokenizer, LmBatch, LmBatcher, TokenizedExample, TrainingRow,
    TruncationLimits, load_training_rows, seeded_subset, split_held_out,
};
use crate::model::LanguageModel;
use crate::model::any::{AnyModel, load_model_as};
use crate::model::decoder::Decoder;
use crate::model::generate::{GenerationOptions, generate};
use crate::model::loss::causal_lm_loss;
use crate::model::rwkv6::Rwkv6;
use crate::model::tokenizer::TextTokenizer;
use crate::{Error, Result};

/// Causal-LM training examples and how their gradients are taken, for a model of type `M`
/// (a [`Decoder`] or [`Rwkv6`] on the autodiff backend).
pub struct CausalLm<M> {
    train: Vec<TokenizedExample>,
    held_out: Vec<TokenizedExample>,
    batcher: LmBatcher,
    /// Per-layer recomputation of the first this many layers; `None`: a plain backward pass.
    recomputed_layers: Option<usize>,
    eval_batch_size: usize,
    sample: Option<Sample>,
    model: PhantomData<fn() -> M>,
}

/// The completion a finished run writes to `sample.txt`.
struct Sample {
    tokenizer: TextTokenizer,
    prompt: String,
    max_new_tokens: usize,
    /// Whether the prompt is rendered with the chat template (the data was chat).
    chat: bool,
}

impl<M> CausalLm<M> {
    /// A task over `train` (already tokenized), padded with `pad`, with recomputation of the
    /// first `recomputed_layers` layers (`None`: none); no held-out set, no sample. What
    /// `bench train` runs.
    pub fn new(train: Vec<TokenizedExample>, pad: u32, recomputed_layers: Option<usize>) -> Self {
        Self {
            train,
            held_out: Vec::new(),
            batcher: LmBatcher { pad_token_id: pad },
            recomputed_layers,
            eval_batch_size: 1,
            sample: None,
            model: PhantomData,
        }
    }
}

/// A causal LM the task trains: a plain backward pass for every model, per-layer
/// recomputation where the model has it (the decoders).
pub trait TrainableLm<B: AutodiffBackend>:
    LanguageModel<B> + AutodiffModule<B, InnerModule: LanguageModel<B::InnerBackend>> + HasAdapters<B>
{
    /// The loss value and gradients of `batch` with the first `layers` layers recomputed in
    /// the backward pass; `None` when the model cannot recompute.
    fn recomputed_gradients(
        &self,
        _batch: LmBatch<B>,
        _divisor: f64,
        _seed: u64,
        _layers: usize,
    ) -> Option<(Tensor<B::InnerBackend, 1>, GradientsParams)> {
        None
    }
}

impl<B: AutodiffBackend> TrainableLm<B> for Decoder<B> {
    fn recomputed_gradients(
        &self,
        batch: LmBatch<B>,
        divisor: f64,
        seed: u64,
        layers: usize,
    ) -> Option<(Tensor<B::InnerBackend, 1>, GradientsParams)> {
        // Dropout masks are a function of (seed, micro-batch), so a resumed run draws the same
        // ones.
        Some(super::recompute::causal_lm_gradients(
            self,
            batch.input_ids,
            batch.attention_mask,
            batch.labels,
            divisor,
            seed,
            layers,
        ))
    }
}

impl<B: AutodiffBackend> TrainableLm<B> for Rwkv6<B> {}

impl<B: AutodiffBackend, M: TrainableLm<B>> Objective<B> for CausalLm<M> {
    type Model = M;
    type Batch = LmBatch<B>;

    fn tokens(&self, batch: &LmBatch<B>) -> usize {
        batch.num_targets
    }

    fn gradients(
        &self,
        model: &M,
        batch: LmBatch<B>,
        divisor: f64,
        seed: u64,
    ) -> Result<MicroBatchGradients<B>> {
        if let Some(layers) = self.recomputed_layers
            && let Some((loss, grads)) =
                model.recomputed_gradients(batch.clone(), divisor, seed, layers)
        {
            return Ok(MicroBatchGradients { loss, grads });
        }
        let logits = model.logits(batch.input_ids, Some(batch.attention_mask));
        let loss = causal_lm_loss(logits, batch.labels).div_scalar(divisor);
        Ok(MicroBatchGradients {
            loss: loss.clone().inner(),
            grads: GradientsParams::from_grads(loss.backward(), model),
        })
    }
}

impl<B: AutodiffBackend, M: TrainableLm<B>> Task<B> for CausalLm<M> {
    fn examples(&self) -> usize {
        self.train.len()
    }

    fn weight(&self, indices: &[usize]) -> usize {
        indices.iter().map(|&i| self.train[i].target_count()).sum()
    }

    fn batch(&self, indices: &[usize], device: &B::Device) -> LmBatch<B> {
        let items = indices.iter().map(|&i| self.train[i].clone()).collect();
        self.batcher.batch(items, device)
    }

    fn evaluate(
        &self,
        model: &M::InnerModule,
        device: &B::Device,
        run: &RunFolder,
        summary: &mut TrainSummary,
        dashboard: &mut Dashboard,
    ) -> Result<()> {
        summary.eval_loss = held_out_loss(
            model,
            &self.held_out,
            self.batcher.pad_token_id,
            self.eval_batch_size,
            device,
        );
        if let Some(eval) = summary.eval_loss {
            dashboard.say(format!(
                "held-out loss {eval:.4} over {} rows",
                self.held_out.len()
            ));
        }
        let Some(sample) = &self.sample else {
            return Ok(());
        };
        let ids = crate::data::chat::prompt_ids(&sample.tokenizer, &sample.prompt, sample.chat)?;
        let options = GenerationOptions {
            max_new_tokens: sample.max_new_tokens,
            eos_token_ids: model.eos_token_ids().to_vec(),
            pad_token_id: self.batcher.pad_token_id,
            ..GenerationOptions::default()
        };
        let new = generate(model, &[ids], &options)?;
        let text = sample.tokenizer.decode(&new[0])?;
        crate::io::write_atomic(
            &run.sample(),
            format!("{}\n---\n{text}\n", sample.prompt).as_bytes(),
        )?;
        dashboard.say(format!("sample: {text}"));
        summary.sample = Some(text);
        Ok(())
    }
}

/// Runs a causal-LM recipe (`data.task` unset) in its prepared output folder; returns the
/// summary and the trained model (adapters attached, inference backend).
pub fn train_causal_lm<B: AutodiffBackend>(
    recipe: &Recipe,
    run: &RunFolder,
    device: &B::Device,
    options: &TrainOptions,
    parallel: &mut DataParallel,
    dashboard: &mut Dashboard,
) -> Result<(TrainSummary, AnyModel<B::InnerBackend>)> {
    let (model, report) = load_model_as::<B>(&recipe.model.path, recipe.model.precision, device)?;
    report.warn();
    let setup = Setup {
        recipe,
        run,
        device,
        options,
    };
    Ok(match model {
        AnyModel::Decoder(model) => {
            let recomputed = recipe.recomputed_layers(model.layers.len())?;
            let (summary, model) = setup.train(model, recomputed, parallel, dashboard)?;
            (summary, AnyModel::Decoder(model))
        }
        AnyModel::Rwkv6(model) => {
            let recomputed = model.blocks.len();
            let (summary, model) = setup.train(model, recomputed, parallel, dashboard)?;
            (summary, AnyModel::Rwkv6(model))
        }
        AnyModel::Encoder(_) => {
            return Err(Error::invalid(
                "model.path",
                recipe.model.path.display(),
                "training needs a causal LM (a decoder or RWKV6)",
            ));
        }
    })
}

/// What a causal-LM run is set up from.
struct Setup<'a, B: AutodiffBackend> {
    recipe: &'a Recipe,
    run: &'a RunFolder,
    device: &'a B::Device,
    options: &'a TrainOptions,
}

impl<B: AutodiffBackend> Setup<'_, B> {
    /// Tokenizes the data, attaches the adapters to `model` and runs the loop.
    fn train<M: TrainableLm<B>>(
        &self,
        model: M,
        recomputed_layers: usize,
        parallel: &mut DataParallel,
        dashboard: &mut Dashboard,
    ) -> Result<(TrainSummary, M::InnerModule)> {
        let Self {
            recipe,
            run,
            device,
            options,
        } = *self;
        let tokenizer =
            TextTokenizer::for_model(&recipe.model.path, recipe.model.tokenizer.as_deref())?;
        let pad = pad_token_id(model.pad_token_id(), &tokenizer);

        // Data.
        let d = &recipe.data;
        let first_rows = (d.first_rows > 0).then_some(d.first_rows);
        let rows = load_training_rows(&d.train, d.format, &d.columns, first_rows)?;
        let chat = rows.iter().any(|r| matches!(r, TrainingRow::Chat(_)));
        let (train_rows, eval_rows) = match &d.eval {
            Some(path) => (rows, load_training_rows(path, d.format, &d.columns, None)?),
            None => split_held_out(rows, HeldOut::Count(d.eval_rows), recipe.run.seed)?,
        };
        let train_rows = seeded_subset(train_rows, d.limit, recipe.run.seed);
        let limits = TruncationLimits {
            max_prompt_length: d.max_prompt_length,
            max_response_length: d.max_response_length,
        };
        let encoder = InstructionTokenizer::new(&tokenizer, limits)?;
        let train_set = encoder.tokenize_rows(&train_rows)?;
        let eval_set = encoder.tokenize_rows(&eval_rows)?;
        check_vocabulary(
            train_set
                .iter()
                .chain(&eval_set)
                .map(|e| e.input_ids.as_slice()),
            model.vocab_size(),
            tokenizer.path(),
            "data",
        )?;
        dashboard.say(format!(
            "data: {} training rows, {} held out ({})",
            train_set.len(),
            eval_set.len(),
            d.train.display()
        ));

        // Adapters.
        let started = std::time::Instant::now();
        let (model, initial, adapted) =
            attach_adapters(model, &recipe.adapter, recipe.model.init_adapter.as_deref())?;
        dashboard.say(format!(
            "adapter: {} rank {} on {adapted} layers (init {:.2} s); {}",
            recipe.adapter.method,
            recipe.adapter.rank,
            started.elapsed().as_secs_f64(),
            ParamReport::of(&model)
        ));

        let task = CausalLm {
            train: train_set,
            held_out: eval_set,
            batcher: LmBatcher { pad_token_id: pad },
            recomputed_layers: recipe
                .model
                .gradient_checkpointing
                .then_some(recomputed_layers),
            eval_batch_size: recipe.optim.batch_size,
            sample: recipe.run.sample_prompt.clone().map(|prompt| Sample {
                tokenizer,
                prompt,
                max_new_tokens: recipe.run.sample_max_new_tokens,
                chat,
            }),
            model: PhantomData,
        };
        let trainee = Trainee {
            model,
            initial,
            adapter: recipe.adapter.clone(),
        };
        run_task(
            &task, trainee, recipe, run, device, options, parallel, dashboard,
        )
    }
}

/// Token-weighted mean loss over `examples` (no gradients).
pub fn held_out_loss<B: Backend, M: LanguageModel<B>>(
    model: &M,
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
        let logits = model.logits(batch.input_ids, Some(batch.attention_mask));
        let loss: f64 = causal_lm_loss(logits, batch.labels).into_scalar().elem();
        sum += loss * batch.num_targets as f64;
        count += batch.num_targets;
    }
    (count > 0).then(|| sum / count as f64)
}
