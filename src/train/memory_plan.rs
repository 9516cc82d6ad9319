//! `burn-peft plan`: a training run's peak memory, estimated from the recipe and `config.json`
//! alone (no weights are read), in the parts the trainer measures and reports
//! ([`super::memory`]), so that a user knows before renting a GPU whether a run fits.
//!
//! The parameter parts are exact: they count what [`check_recipe`] finds the recipe trains,
//! in the dtypes the trainer stores (the frozen base in the run's precision; adapters, fully
//! trained modules, their gradients and AdamW's two moments in f32; the initial adapter
//! factors, which the trainer keeps for saving, in f32).
//!
//! The activation part is a model of what the autodiff graph of one micro-batch holds at its
//! peak, per decoder layer and token: terms in the hidden size and the MLP width, the
//! attention scores (`heads × seq` per token: the training path materialises them), the low-rank
//! intermediates, and the vocabulary-sized logits and their gradient. Its coefficients are
//! counted from the tensors the graph keeps and checked against `burn-peft bench train` peaks
//! ([`COEFFICIENTS_SOURCE`]);
//! with `gradient_checkpointing` only each layer's input is kept, plus the larger of the head's
//! graph and one layer's graph with its scores' gradients (they are back-propagated one after
//! the other); with `recomputed_layers`, the graphs of the layers above them are kept too.
//!
//! The estimate is for the longest batch the recipe allows (`max_prompt_length +
//! max_response_length` tokens per row, or `max_prompt_length` for classification); batches are
//! padded to their longest row, so shorter data peaks lower.

use std::fmt;
use std::path::Path;

use burn::tensor::{DType, FloatDType};

use super::check::{CheckReport, check_recipe, data_present};
use super::recipe::Recipe;
use crate::Result;
use crate::backend::DeviceKind;
use crate::data::{GlueTask, load_glue_with, load_training_rows};
use crate::model::decoder::HEAD_CHUNK_ELEMENTS;
use crate::model::precision::dtype_name;
use crate::model::{ModelType, Precision};

/// Where the activation coefficients come from.
pub const COEFFICIENTS_SOURCE: &str = "counted from the tensors the training graph keeps, \
     checked against `burn-peft bench train` peaks (README, \"Precision and memory\"); decoders \
     measured, encoders use the decoder model";

/// Bytes the autodiff graph holds at its peak, per token, for each term of the model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActivationCoefficients {
    /// Per layer, per unit of hidden size.
    pub hidden: f64,
    /// Per layer, per unit of MLP width.
    pub intermediate: f64,
    /// Per layer, per attention score (`heads × seq` of them per token).
    pub score: f64,
    /// Per adapted linear layer, per unit of rank.
    pub rank: f64,
    /// Per vocabulary entry (the logits, their f32 log-softmax and gradient), once.
    pub vocab: f64,
}

impl ActivationCoefficients {
    /// The coefficients for a base stored in `dtype`, counted from the tensors the training
    /// graph keeps per token and layer (with SORSA-style adapters on every linear layer):
    /// - f32: the two norms' inputs and outputs, q, k, v and the attention output (8 × 4 B per
    ///   unit of hidden size); the gated activation's two coefficients and the down
    ///   projection's input (3 × 4 B per unit of MLP width); the probabilities, kept once for
    ///   the softmax and the product with V (4 B per score);
    /// - bf16: the norms' f32 inputs, one shared f32 input copy per group of adapters (q/k/v,
    ///   o, gate/up), q, k and v in bf16 (26 B per unit of hidden size); the activation's two
    ///   bf16 coefficients and the down adapter's f32 input (8 B per unit of MLP width); the
    ///   probabilities rounded to bf16 (2 B per score);
    /// - the rank-wide intermediates (2 × 4 B per unit of rank per adapted layer);
    /// - per logit, the loss gradient the graph keeps and the loss's transient buffers,
    ///   measured: 9.7 B (f32) and 8.4 B (bf16) from `bench train` at vocabulary 8000 and
    ///   32000.
    ///
    /// Checked against `bench train` activation peaks (README, "Precision and memory") at the
    /// 1B shape (hidden 2048, 16 layers, bf16, seq 1024): -0.7 % without checkpointing, -0.7 %
    /// with 12 of 16 layers recomputed, +1.0 % with 13.
    pub fn for_dtype(dtype: FloatDType) -> Self {
        match dtype {
            FloatDType::BF16 | FloatDType::F16 => Self {
                hidden: 26.0,
                intermediate: 8.0,
                score: 2.0,
                rank: 8.0,
                vocab: 8.4,
            },
            _ => Self {
                hidden: 32.0,
                intermediate: 12.0,
                score: 4.0,
                rank: 8.0,
                vocab: 9.7,
            },
        }
    }
}

/// A run's estimated peak memory and its parts (bytes).
#[derive(Clone, Debug)]
pub struct MemoryPlan {
    pub check: CheckReport,
    /// The dtype the frozen base is stored and multiplied in.
    pub base_dtype: FloatDType,
    /// Rows per micro-batch and tokens per row of the largest batch.
    pub batch: usize,
    pub seq: usize,
    pub gradient_checkpointing: bool,
    /// With checkpointing: the layers recomputed (the first ones).
    pub recomputed_layers: usize,
    pub base: u64,
    pub adapters: u64,
    pub gradients: u64,
    /// The running sum of the micro-batches' gradients (`grad_accumulation > 1`), which the
    /// trainer's report counts among the activations.
    pub accumulated: u64,
    pub optimizer: u64,
    pub activations: u64,
    /// The process itself (code, tokenizer, allocator): measured on the CPU backend.
    pub runtime: u64,
    /// Tokenized training data, held in host memory (upper bound: every row at full length);
    /// `None` when the data file is not here and the recipe does not bound its rows.
    pub data: Option<u64>,
    /// Why parts of the estimate are approximate.
    pub notes: Vec<String>,
}

/// Resident memory of the trainer besides tensors (binary, tokenizer, Burn's runtime,
/// allocator slack): the `other` part of `bench train` and `train` reports on this code path.
const RUNTIME_BYTES: u64 = 32 << 20;

/// Bytes per token of a tokenized example (`u32` id and `i64` label).
const DATA_BYTES_PER_TOKEN: u64 = 12;

impl MemoryPlan {
    /// Plans `recipe` against the architecture in `model_config` (a `config.json` or a folder
    /// holding one; default: the recipe's `model.path`).
    pub fn of(recipe: &Recipe, model_config: Option<&Path>) -> Result<Self> {
        let check = check_recipe(recipe, model_config)?;
        let mut notes = Vec::new();
        let base_dtype = base_dtype(recipe, &check, &mut notes);
        let e = DType::from(base_dtype).size() as u64;
        let s = &check.skeleton;
        let d = &recipe.data;
        let classification = d.task.is_some();
        let seq = if classification {
            d.max_prompt_length
        } else {
            d.max_prompt_length + d.max_response_length
        };
        let batch = recipe.optim.batch_size;
        let tokens = (batch * seq) as f64;

        let saved_params = check.trainable_params - check.adapter_params;
        let frozen_base = (s.total_params() - saved_params) as u64;
        let trainable = 4 * check.trainable_params as u64;
        let base = frozen_base * e + 4 * check.frozen_adapter_params as u64;
        // The initial factors are kept for saving (a clone that diverges at the first update).
        let adapters = trainable + 4 * check.adapter_params as u64;

        let c = ActivationCoefficients::for_dtype(base_dtype);
        let adapted_per_layer = check.adapted.len() as f64 / s.num_layers.max(1) as f64;
        let rwkv = s.model_type == ModelType::Rwkv6;
        // The attention scores of one layer (`heads × seq` per token). RWKV6 has none. On the
        // CPU its WKV kernel keeps its four f32 inputs; elsewhere the chunked composite keeps
        // the pairwise decays of each chunk: the exponent, its exp and the r ⊗ k product, f32
        // `[chunk, attention]` per token.
        let scores = if rwkv && device(recipe) == Some(DeviceKind::Cpu) {
            tokens * 16.0 * s.hidden_size as f64
        } else if rwkv {
            tokens * 12.0 * (crate::model::wkv::CHUNK * s.hidden_size) as f64
        } else {
            tokens * c.score * (s.num_heads * seq) as f64
        };
        let layer = scores
            + tokens
                * (c.hidden * s.hidden_size as f64
                    + c.intermediate * s.intermediate_size as f64
                    + c.rank * recipe.adapter.rank as f64 * adapted_per_layer);
        let mut head = if classification {
            0.0
        } else {
            tokens * c.vocab * s.vocab_size as f64
        };
        if e != 4 && device(recipe) == Some(DeviceKind::Cpu) {
            // burn-flex multiplies a bf16/f16 weight through an f32 copy of it (and in the
            // backward pass a contiguous copy of its transpose): 6 bytes per element of the
            // largest weight multiplied at once, one at a time. The LM head goes in chunks.
            let largest = s
                .linears
                .iter()
                .map(|l| {
                    let size = l.out_features * l.in_features;
                    if l.is_head {
                        size.min(HEAD_CHUNK_ELEMENTS)
                    } else {
                        size
                    }
                })
                .max()
                .unwrap_or(0);
            head += 6.0 * largest as f64;
        }
        let recomputed_layers = if recipe.model.gradient_checkpointing {
            recipe.recomputed_layers(s.num_layers)?
        } else {
            0
        };
        let activations = if recipe.model.gradient_checkpointing {
            // Each recomputed layer's input throughout, and the graphs of the layers kept
            // above them until their backward. The head's graph is back-propagated and freed
            // before the first layer is recomputed, so the phases peak separately.
            let inputs = tokens * (recomputed_layers * s.hidden_size) as f64 * e as f64;
            let kept = (s.num_layers - recomputed_layers) as f64 * layer;
            // A layer's backward also holds the gradients of its attention scores (about as
            // many bytes per score as the graph keeps for them).
            inputs + (kept + head.max(scores)).max(layer + scores)
        } else {
            // The backward pass of the layer being differentiated also holds the gradients of
            // its scores.
            s.num_layers as f64 * layer + scores + head
        };
        if rwkv {
            notes.push(
                "RWKV6 activations: the decoder model with the WKV's own (the CPU kernel's inputs; \
                 elsewhere the chunked composite's pairwise decays) in place of attention scores \
                 (not measured)"
                    .into(),
            );
        } else if !s.model_type.is_decoder() {
            notes.push(
                "encoder activations use the decoder model (not measured on encoders)".into(),
            );
        }

        let rows = data_rows(recipe)?;
        let data = rows.map(|rows| (rows * seq) as u64 * DATA_BYTES_PER_TOKEN);
        if data.is_none() {
            notes.push(
                "tokenized data (host memory) not included: the data file is not here and the \
                 recipe sets no data.first_rows or data.limit"
                    .into(),
            );
        }
        Ok(Self {
            base_dtype,
            batch,
            seq,
            gradient_checkpointing: recipe.model.gradient_checkpointing,
            recomputed_layers,
            base,
            adapters,
            gradients: trainable,
            accumulated: if recipe.optim.grad_accumulation > 1 {
                trainable
            } else {
                0
            },
            optimizer: 2 * trainable,
            activations: activations.round() as u64,
            runtime: RUNTIME_BYTES,
            data,
            notes,
            check,
        })
    }

    /// What the device holds at the step's peak: parameters, optimizer state, activations.
    pub fn device_peak(&self) -> u64 {
        self.base
            + self.adapters
            + self.gradients
            + self.accumulated
            + self.optimizer
            + self.activations
    }

    /// The peak a CPU run's resident memory reaches: the device part, the runtime and the data.
    pub fn host_peak(&self) -> u64 {
        self.device_peak() + self.runtime + self.data.unwrap_or(0)
    }
}

/// The recipe's device (validated by `check_recipe`).
fn device(recipe: &Recipe) -> Option<DeviceKind> {
    recipe.run.device.parse().ok()
}

/// Rows the trainer would tokenize: the data file's (up to `first_rows`/`limit`), or those
/// limits alone when the file is not here.
fn data_rows(recipe: &Recipe) -> Result<Option<usize>> {
    let d = &recipe.data;
    let cap = [d.first_rows, d.limit].into_iter().filter(|&n| n > 0).min();
    if !data_present(&d.train) {
        return Ok(cap);
    }
    let rows = match &d.task {
        Some(task) => load_glue_with(task.parse::<GlueTask>()?, &d.train, &d.columns)?.len(),
        None => load_training_rows(&d.train, d.format, &d.columns, cap)?.len(),
    };
    Ok(Some(cap.map_or(rows, |cap| cap.min(rows))))
}

/// The base dtype the run would use: `model.precision`, or for `auto` the dtype `config.json`
/// names (the trainer also falls back to the weights' own dtype, which a plan cannot read).
fn base_dtype(recipe: &Recipe, check: &CheckReport, notes: &mut Vec<String>) -> FloatDType {
    let stored = if recipe.model.precision == Precision::Auto {
        check.skeleton.dtype.unwrap_or_else(|| {
            notes.push(
                "config.json names no dtype: planned in f32 (set model.precision to plan another)"
                    .into(),
            );
            FloatDType::F32
        })
    } else {
        FloatDType::F32
    };
    let dtype = recipe.model.precision.resolve(stored);
    if device(recipe) == Some(DeviceKind::Ndarray) && dtype != FloatDType::F32 {
        notes.push(format!(
            "the ndarray device has no {}: the run uses f32, and so does the plan",
            dtype_name(dtype)
        ));
        return FloatDType::F32;
    }
    dtype
}

fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

impl fmt::Display for MemoryPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.check)?;
        writeln!(
            f,
            "plan: base in {}, adapters and optimizer state in f32; micro-batch {} x {} tokens \
             (the longest the recipe allows); activation checkpointing {}",
            dtype_name(self.base_dtype),
            self.batch,
            self.seq,
            if !self.gradient_checkpointing {
                "off".to_string()
            } else if self.recomputed_layers < self.check.skeleton.num_layers {
                format!(
                    "on ({} of {} layers recomputed)",
                    self.recomputed_layers, self.check.skeleton.num_layers
                )
            } else {
                "on".to_string()
            }
        )?;
        let rows = [
            ("base (frozen)", self.base),
            ("adapters (+ initial copy)", self.adapters),
            ("gradients", self.gradients),
            ("gradient accumulator", self.accumulated),
            ("optimizer (AdamW)", self.optimizer),
            ("activations", self.activations),
        ];
        for (name, bytes) in rows {
            writeln!(f, "  {name:<28}{:>12}", gib(bytes))?;
        }
        writeln!(
            f,
            "  {:<28}{:>12}   <- GPU memory the step needs (plus the driver's context)",
            "device peak",
            gib(self.device_peak())
        )?;
        writeln!(
            f,
            "  {:<28}{:>12}",
            "runtime (CPU process)",
            gib(self.runtime)
        )?;
        match self.data {
            Some(bytes) => writeln!(f, "  {:<28}{:>12}", "tokenized data (host)", gib(bytes))?,
            None => writeln!(f, "  {:<28}{:>12}", "tokenized data (host)", "?")?,
        }
        writeln!(
            f,
            "  {:<28}{:>12}   <- resident memory of a CPU run",
            "host peak",
            gib(self.host_peak())
        )?;
        // The ring all-reduce (`crate::distributed::ring`): each rank sends 2 (N-1)/N of the
        // f32 gradient per optimizer step, through a host copy of it.
        let sent = |ranks: u64| self.gradients * 2 * (ranks - 1) / ranks;
        writeln!(
            f,
            "data-parallel: each step all-reduces the {} gradient; a rank sends {} with 2 ranks, \
             {} with 8 (and holds a host copy of the gradient)",
            gib(self.gradients).trim(),
            gib(sent(2)).trim(),
            gib(sent(8)).trim()
        )?;
        let recomputable = self.check.skeleton.model_type != ModelType::Rwkv6;
        if recomputable && !self.gradient_checkpointing && self.activations > self.device_peak() / 2
        {
            writeln!(
                f,
                "hint: activations dominate; model.gradient_checkpointing = true keeps one \
                 hidden state per layer instead"
            )?;
        }
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        writeln!(f, "note: activation coefficients {COEFFICIENTS_SOURCE}")
    }
}
