//! Training recipes: one TOML file (`configs/*.toml`) with `[model]`, `[adapter]`, `[data]`,
//! `[optim]` and `[run]` tables, overridable torchtune-style with `--set key=value`. Unknown
//! keys are errors naming the key; values are validated with errors naming the field.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::schedule::ScheduleKind;
use crate::adapter::AdapterConfig;
use crate::data::Columns;
use crate::data::instruction::InstructionFormat;
use crate::distributed::Launch;
use crate::model::Precision;
use crate::{Error, Result};

/// The embedded default recipe (`burn-peft train` with no `--config`).
pub const DEFAULT_RECIPE: &str = include_str!("../../configs/stories260k-sorsa.toml");
/// The name the default recipe is reported under.
pub const DEFAULT_RECIPE_NAME: &str = "configs/stories260k-sorsa.toml (embedded)";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub model: ModelSection,
    pub adapter: AdapterConfig,
    pub data: DataSection,
    pub optim: OptimSection,
    pub run: RunSection,
    /// Data-parallel training across processes (torchrun's `--nnodes`, `--node-rank`,
    /// `--master-addr`, `--master-port`); absent: one process.
    #[serde(default, skip_serializing_if = "is_single_process")]
    pub distributed: Launch,
}

fn is_single_process(launch: &Launch) -> bool {
    *launch == Launch::default()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// HF model folder or llama2.c `.bin`.
    pub path: PathBuf,
    /// tokenizer.json (default: the model folder's, or `hf/` next to a `.bin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<PathBuf>,
    /// Start from this adapter folder (e.g. written by `burn-peft init`, so the SVD runs once)
    /// instead of initialising from `[adapter]`; its config must match `[adapter]`'s method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_adapter: Option<PathBuf>,
    /// dtype of the frozen base (and residual): `auto` (the checkpoint's), `bf16`, `f16`, `f32`.
    /// Adapters, gradients and optimizer state are f32 whatever it is.
    #[serde(default)]
    pub precision: Precision,
    /// Keep only each decoder layer's input during the forward pass and recompute the layer in
    /// the backward pass (transformers' `gradient_checkpointing_enable`): far less activation
    /// memory for about one extra forward pass.
    #[serde(default)]
    pub gradient_checkpointing: bool,
    /// With `gradient_checkpointing`: recompute only the first N decoder layers and keep the
    /// activations of the others (Megatron-LM's `--recompute-num-layers`), for less extra
    /// compute at one layer's activations each. Default: every layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recomputed_layers: Option<usize>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Training data: a JSON / JSON-lines file, a parquet or `datasets` Arrow file, a shard
    /// pattern (`data/train-*.parquet`), a `save_to_disk` folder, or a GLUE TSV when `task` is
    /// set.
    pub train: PathBuf,
    /// A GLUE task (`sst2`, `mrpc`, `cola`, `rte`, `qnli`, `wnli`, `stsb`): sequence
    /// classification with the model's head (a fresh `score` head on decoders) instead of
    /// instruction tuning; `max_prompt_length` bounds the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(default)]
    pub format: InstructionFormat,
    /// Column names overriding the format's (or GLUE task's) preset, e.g.
    /// `{ prompt = "query", response = "response" }` or `{ messages = "conversation" }`.
    #[serde(default, skip_serializing_if = "Columns::is_empty")]
    pub columns: Columns,
    /// Read only the first N rows of the training data, in file order (HF's
    /// `split="train[:N]"`), before the held-out split; 0 = all.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub first_rows: usize,
    /// Held-out file; when absent, `eval_rows` rows are split off the training data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval: Option<PathBuf>,
    #[serde(default = "default_eval_rows")]
    pub eval_rows: usize,
    /// Use only the first N training rows (after shuffling); 0 = all.
    #[serde(default)]
    pub limit: usize,
    #[serde(default = "default_max_length")]
    pub max_prompt_length: usize,
    #[serde(default = "default_max_length")]
    pub max_response_length: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn default_eval_rows() -> usize {
    64
}

fn default_max_length() -> usize {
    512
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimSection {
    pub lr: f64,
    #[serde(default = "default_betas")]
    pub betas: [f64; 2],
    #[serde(default = "default_eps")]
    pub eps: f64,
    #[serde(default)]
    pub weight_decay: f64,
    #[serde(default)]
    pub schedule: ScheduleKind,
    #[serde(default)]
    pub warmup_ratio: f64,
    /// Polynomial schedule power.
    #[serde(default = "default_power")]
    pub power: f64,
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Stop after this many optimizer steps (0: run `epochs`).
    #[serde(default)]
    pub max_steps: usize,
    pub batch_size: usize,
    #[serde(default = "default_accumulation")]
    pub grad_accumulation: usize,
    /// Global-norm clipping of the task gradient (0 disables it).
    #[serde(default = "default_clip")]
    pub max_grad_norm: f64,
}

fn default_betas() -> [f64; 2] {
    [0.9, 0.999]
}
fn default_eps() -> f64 {
    1e-8
}
fn default_power() -> f64 {
    1.0
}
fn default_epochs() -> usize {
    1
}
fn default_accumulation() -> usize {
    1
}
fn default_clip() -> f64 {
    1.0
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    pub output_dir: PathBuf,
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "default_device")]
    pub device: String,
    /// Several devices of one backend, one replica on each, trained data-parallel by this
    /// process (`["cuda:0", "cuda:1"]`; with `distributed.nnodes`, on every node). Replaces
    /// `device` when set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// Run `wgpu`/`cuda` on Burn's fused backend (the default); `false` runs every op as its own
    /// kernel, to tell a fusion bug from ours (as `--no-fusion`).
    #[serde(default = "default_fusion", skip_serializing_if = "is_default_fusion")]
    pub fusion: bool,
    /// Save a checkpoint every N optimizer steps (0: only at the end).
    #[serde(default)]
    pub checkpoint_every: usize,
    /// Log a line every N optimizer steps.
    #[serde(default = "default_log_every")]
    pub log_every: usize,
    /// Prompt whose continuation is printed (and saved) after training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_prompt: Option<String>,
    #[serde(default = "default_sample_tokens")]
    pub sample_max_new_tokens: usize,
}

fn default_fusion() -> bool {
    true
}
fn is_default_fusion(on: &bool) -> bool {
    *on
}
fn default_device() -> String {
    "cpu".into()
}
fn default_log_every() -> usize {
    10
}
fn default_sample_tokens() -> usize {
    64
}

impl Recipe {
    /// Parses a recipe from TOML text with `key=value` overrides applied (values are TOML:
    /// `--set optim.lr=1e-4`, `--set adapter.method="lora"`; bare words are taken as strings).
    pub fn parse(text: &str, origin: &Path, overrides: &[String]) -> Result<Self> {
        let parse_err = |message: String| Error::ConfigParse {
            path: origin.to_path_buf(),
            message,
        };
        let mut table: toml::Table = toml::from_str(text).map_err(|e| parse_err(e.to_string()))?;
        for item in overrides {
            let (key, raw) = item.split_once('=').ok_or_else(|| {
                Error::invalid("--set", item, "expected key=value, e.g. optim.lr=1e-4")
            })?;
            let value = parse_value(raw.trim());
            set_path(&mut table, key.trim(), value)
                .map_err(|reason| Error::invalid("--set", item, reason))?;
        }
        let recipe: Recipe = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| parse_err(e.to_string()))?;
        recipe.validate()?;
        Ok(recipe)
    }

    /// Reads a recipe file (or the embedded default when `path` is `None`).
    pub fn load(path: Option<&Path>, overrides: &[String]) -> Result<Self> {
        match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
                    path: path.to_path_buf(),
                    cause: source,
                })?;
                Self::parse(&text, path, overrides)
            }
            None => Self::parse(DEFAULT_RECIPE, Path::new(DEFAULT_RECIPE_NAME), overrides),
        }
    }

    /// The resolved recipe as TOML (written next to the outputs).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a recipe serialises")
    }

    /// How many decoder layers the backward pass recomputes for a model of `layers` layers:
    /// `model.recomputed_layers`, every layer by default; an error when it exceeds `layers`.
    pub fn recomputed_layers(&self, layers: usize) -> Result<usize> {
        match self.model.recomputed_layers {
            Some(n) if n > layers => Err(Error::invalid(
                "model.recomputed_layers",
                n,
                format!("the model has {layers} decoder layers"),
            )),
            Some(n) => Ok(n),
            None => Ok(layers),
        }
    }

    pub fn validate(&self) -> Result<()> {
        self.adapter.validate()?;
        self.distributed.validate()?;
        let o = &self.optim;
        let check = |ok: bool, field: &str, value: String, reason: &str| {
            if ok {
                Ok(())
            } else {
                Err(Error::invalid(field, value, reason))
            }
        };
        check(
            o.lr.is_finite() && o.lr > 0.0,
            "optim.lr",
            o.lr.to_string(),
            "must be positive",
        )?;
        check(
            o.batch_size > 0,
            "optim.batch_size",
            o.batch_size.to_string(),
            "must be at least 1",
        )?;
        check(
            o.grad_accumulation > 0,
            "optim.grad_accumulation",
            o.grad_accumulation.to_string(),
            "must be at least 1",
        )?;
        check(
            (0.0..1.0).contains(&o.warmup_ratio),
            "optim.warmup_ratio",
            o.warmup_ratio.to_string(),
            "must be in [0, 1)",
        )?;
        check(
            o.epochs > 0 || o.max_steps > 0,
            "optim.epochs",
            o.epochs.to_string(),
            "set epochs or max_steps",
        )?;
        check(
            o.max_grad_norm >= 0.0,
            "optim.max_grad_norm",
            o.max_grad_norm.to_string(),
            "must be >= 0",
        )?;
        check(
            o.weight_decay >= 0.0,
            "optim.weight_decay",
            o.weight_decay.to_string(),
            "must be >= 0",
        )?;
        for (i, b) in o.betas.iter().enumerate() {
            check(
                (0.0..1.0).contains(b),
                &format!("optim.betas[{i}]"),
                b.to_string(),
                "must be in [0, 1)",
            )?;
        }
        check(
            o.eps > 0.0,
            "optim.eps",
            o.eps.to_string(),
            "must be positive",
        )?;
        let d = &self.data;
        check(
            d.max_prompt_length > 0,
            "data.max_prompt_length",
            d.max_prompt_length.to_string(),
            "must be at least 1",
        )?;
        check(
            d.max_response_length > 0,
            "data.max_response_length",
            d.max_response_length.to_string(),
            "must be at least 1",
        )?;
        check(
            self.run.log_every > 0,
            "run.log_every",
            self.run.log_every.to_string(),
            "must be at least 1",
        )?;
        self.run.device.parse::<crate::backend::DeviceKind>()?;
        if let Some(n) = self.model.recomputed_layers {
            check(
                self.model.gradient_checkpointing,
                "model.recomputed_layers",
                n.to_string(),
                "needs model.gradient_checkpointing = true",
            )?;
            check(
                n > 0,
                "model.recomputed_layers",
                n.to_string(),
                "must be at least 1 (set model.gradient_checkpointing = false to recompute none)",
            )?;
        }
        if self.model.gradient_checkpointing && self.data.task.is_some() {
            return Err(Error::invalid(
                "model.gradient_checkpointing",
                "true",
                "recomputation is implemented for causal-LM training; classification runs \
                 (data.task) train without it",
            ));
        }
        match &self.data.task {
            Some(_) => self
                .data
                .columns
                .reject(&["prompt", "input", "response", "messages"], "GLUE")?,
            None => {
                self.data.format.layout(&self.data.columns)?;
            }
        }
        if let Some(task) = &self.data.task {
            task.parse::<crate::data::GlueTask>().map_err(|_| {
                Error::invalid(
                    "data.task",
                    task,
                    "expected a GLUE task: cola, sst2, mrpc, rte, qnli, wnli, stsb",
                )
            })?;
        }
        Ok(())
    }
}

/// A `--set` value: TOML if it parses as one, else a plain string.
fn parse_value(raw: &str) -> toml::Value {
    let wrapped = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&wrapped) {
        Ok(mut t) => t.remove("v").unwrap_or(toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

fn set_path(
    table: &mut toml::Table,
    key: &str,
    value: toml::Value,
) -> std::result::Result<(), String> {
    let mut parts = key.split('.').peekable();
    let mut current = table;
    while let Some(part) = parts.next() {
        if part.is_empty() {
            return Err(format!("empty component in key `{key}`"));
        }
        if parts.peek().is_none() {
            current.insert(part.to_string(), value);
            return Ok(());
        }
        current = current
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| format!("`{part}` in `{key}` is a value, not a table"))?;
    }
    Err(format!("empty key `{key}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_recipe_parses_and_overrides_apply() {
        let r = Recipe::load(
            None,
            &[
                "optim.lr=0.5".into(),
                "adapter.method=lora".into(),
                "adapter.gamma=0".into(),
            ],
        )
        .unwrap();
        assert_eq!(r.optim.lr, 0.5);
        assert_eq!(r.adapter.method, crate::adapter::Method::Lora);
        let err = Recipe::load(None, &["optim.lrr=1".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("lrr") && err.contains("unknown field"),
            "{err}"
        );
        let err = Recipe::load(None, &["optim.batch_size=0".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("optim.batch_size"), "{err}");
    }
}
