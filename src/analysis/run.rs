//! A finished (or checkpointed) training run directory as the analyses read it: the resolved
//! recipe (`config.toml`), the step log (`metrics.jsonl`), `summary.json`, `adapter/` and
//! `checkpoints/step-NNNNNN/`.

use std::path::{Path, PathBuf};

use crate::adapter::Method;
use crate::train::metrics::{MetricsLog, StepMetrics};
use crate::train::recipe::Recipe;
pub use crate::train::run_folder::CheckpointDir;
use crate::train::run_folder::RunFolder;
use crate::{Error, Result};

/// A run directory with its recipe read.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub dir: PathBuf,
    pub recipe: Recipe,
}

/// The fields of `summary.json` the analyses use (all optional: older or stopped runs may lack
/// some).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct RunSummary {
    #[serde(default)]
    pub steps: Option<usize>,
    #[serde(default)]
    pub trainable_params: Option<u64>,
    #[serde(default)]
    pub eval_loss: Option<f64>,
    #[serde(default)]
    pub tokens_per_second: Option<f64>,
}

impl RunDir {
    /// Reads `<dir>/config.toml`; errors name the run directory.
    pub fn open(dir: &Path) -> Result<Self> {
        let config = RunFolder::at(dir).config();
        if !config.is_file() {
            return Err(Error::BadFile {
                path: dir.to_path_buf(),
                message: "not a burn-peft run directory (no config.toml)".into(),
            });
        }
        let recipe = Recipe::load(Some(&config), &[])?;
        Ok(Self {
            dir: dir.to_path_buf(),
            recipe,
        })
    }

    /// The run that wrote the adapter folder `adapter` (`<run>/adapter`).
    pub fn owning(adapter: &Path) -> Result<Self> {
        let run = adapter.parent().filter(|p| RunFolder::at(*p).config().is_file()).ok_or_else(|| Error::BadFile {
            path: adapter.to_path_buf(),
            message: "adapter folder is not inside a run directory (no ../config.toml): the method and checkpoints are unknown".into(),
        })?;
        Self::open(run)
    }

    /// What distinguishes this run's adapter in a legend: the method plus the options that change
    /// its behaviour (SORSA's γ, the init of LoRA-FA / LoTR), e.g. `sorsa γ=0.0004`.
    pub fn method_label(&self) -> String {
        let a = &self.recipe.adapter;
        match a.method {
            Method::Sorsa => format!("sorsa γ={}", a.gamma),
            Method::LoraFa | Method::Lotr => match a.resolved_init() {
                Some(init) => format!("{} {}", a.method, format!("{init:?}").to_lowercase()),
                None => a.method.to_string(),
            },
            method => method.to_string(),
        }
    }

    /// The last path component, for tables and messages.
    pub fn name(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.dir.display().to_string())
    }

    /// Every record of `metrics.jsonl`; a missing file is an error naming the run.
    pub fn metrics(&self) -> Result<Vec<StepMetrics>> {
        let path = self.folder().metrics();
        if !path.is_file() {
            return Err(Error::BadFile {
                path: self.dir.clone(),
                message: "run has no metrics.jsonl (not trained yet, or not a training run)".into(),
            });
        }
        MetricsLog::read(&path)
    }

    /// `summary.json`, when the run finished and wrote one.
    pub fn summary(&self) -> Result<Option<RunSummary>> {
        let path = self.folder().summary();
        if !path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.clone(),
            cause: source,
        })?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::BadFile {
                path,
                message: e.to_string(),
            })
    }

    /// The run's complete checkpoints, by ascending step.
    pub fn checkpoints(&self) -> Result<Vec<CheckpointDir>> {
        self.folder().checkpoints()
    }

    fn folder(&self) -> RunFolder {
        RunFolder::at(&self.dir)
    }
}
