//! A training run's folder, the one place that knows its layout:
//!
//! ```text
//! <run.output_dir>/
//!   config.toml                 the resolved recipe (what --resume must match)
//!   metrics.jsonl               one record per step
//!   checkpoints/step-NNNNNN/    trainable.safetensors, optimizer.bin, state.json (written last)
//!   adapter/                    the trained adapter in HF PEFT's layout (complete runs)
//!   sample.txt, summary.json    a complete run's sample and figures
//! ```
//!
//! Every file is written atomically (a temporary file renamed over it) and a checkpoint is
//! published whole (a temporary folder renamed), so a run killed at any moment leaves only
//! complete checkpoints under their final names. [`RunFolder::checkpoints`] is the one rule for
//! "is this checkpoint complete"; the trainer, the divergence stop, `--resume` and the analyses
//! all ask it.

use std::path::{Path, PathBuf};

use burn::module::AutodiffModule;
use burn::optim::Optimizer;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use super::recipe::Recipe;
use super::trainable::{load_trainable, save_trainable};
use crate::{Error, Result};

/// A run's output folder.
#[derive(Debug, Clone)]
pub struct RunFolder {
    dir: PathBuf,
}

/// One complete checkpoint of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointDir {
    /// Optimizer steps taken before it was written.
    pub step: usize,
    pub dir: PathBuf,
}

/// The next length-prefixed part of `rest` (`None`: truncated).
fn take_part<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (length, tail) = rest.split_at_checked(8)?;
    let length = u64::from_le_bytes(length.try_into().ok()?) as usize;
    let (part, tail) = tail.split_at_checked(length)?;
    *rest = tail;
    Some(part)
}

/// `state.json` of a checkpoint: written last, so its presence marks the checkpoint complete.
#[derive(Debug, Serialize, Deserialize)]
struct CheckpointState {
    step: usize,
}

const CONFIG: &str = "config.toml";
const METRICS: &str = "metrics.jsonl";
const CHECKPOINTS: &str = "checkpoints";
const ADAPTER: &str = "adapter";
const SAMPLE: &str = "sample.txt";
const SUMMARY: &str = "summary.json";
const TRAINABLE: &str = "trainable.safetensors";
const OPTIMIZER: &str = "optimizer.bin";
const STATE: &str = "state.json";

impl CheckpointDir {
    /// The trainable tensors ([`super::trainable`]'s format).
    pub fn trainable(&self) -> PathBuf {
        self.dir.join(TRAINABLE)
    }

    /// The optimizer's state (Burn's binary record).
    pub fn optimizer(&self) -> PathBuf {
        self.dir.join(OPTIMIZER)
    }

    /// Restores this checkpoint into `model` (built as the run built it) and `optimizer`;
    /// returns them and the checkpoint's step.
    pub fn restore<B, M, O>(
        &self,
        model: M,
        optimizer: O,
        device: &B::Device,
    ) -> Result<(M, O, usize)>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
        O: Optimizer<M, B>,
    {
        let model = load_trainable(model, &self.trainable())?;
        let path = self.optimizer();
        let bytes = std::fs::read(&path).map_err(|source| Error::Io {
            path: path.clone(),
            cause: source,
        })?;
        let record = BinBytesRecorder::<FullPrecisionSettings>::default()
            .load(bytes, device)
            .map_err(|e| Error::BadFile {
                path,
                message: format!("{e}"),
            })?;
        Ok((model, optimizer.load_record(record), self.step))
    }

    /// The checkpoint's files in one buffer ([`RunFolder::import_checkpoint`] writes them back):
    /// how rank 0 of a data-parallel run hands its state to the other ranks.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        for name in [TRAINABLE, OPTIMIZER, STATE] {
            let path = self.dir.join(name);
            let bytes = std::fs::read(&path).map_err(|cause| Error::Io {
                path: path.clone(),
                cause,
            })?;
            out.extend_from_slice(&(name.len() as u64).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            out.extend_from_slice(&bytes);
        }
        Ok(out)
    }
}

impl RunFolder {
    /// The folder at `dir` (nothing is read or created).
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The recipe's output folder, created, for a new run or (`resume`) the continuation of the
    /// run it holds: a run already there is refused unless resuming, so nothing a user has is
    /// overwritten, and a resumed run's recipe must match the one it continues
    /// ([`super::identity::check_resume`]).
    pub fn prepare(recipe: &Recipe, resume: bool) -> Result<Self> {
        let folder = Self::at(&recipe.run.output_dir);
        if folder.config().exists() && !resume {
            return Err(Error::invalid(
                "run.output_dir",
                folder.dir.display(),
                "already holds a run; pass --resume to continue it or choose another output_dir",
            ));
        }
        if resume {
            super::identity::check_resume(recipe, &folder.dir)?;
        }
        std::fs::create_dir_all(&folder.dir).map_err(|source| Error::Io {
            path: folder.dir.clone(),
            cause: source,
        })?;
        Ok(folder)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `config.toml`: the resolved recipe.
    pub fn config(&self) -> PathBuf {
        self.dir.join(CONFIG)
    }

    /// `metrics.jsonl`: one record per step.
    pub fn metrics(&self) -> PathBuf {
        self.dir.join(METRICS)
    }

    /// `adapter/`: the trained adapter of a complete run.
    pub fn adapter(&self) -> PathBuf {
        self.dir.join(ADAPTER)
    }

    /// `summary.json`: a complete run's figures.
    pub fn summary(&self) -> PathBuf {
        self.dir.join(SUMMARY)
    }

    /// `sample.txt`: a complete run's sample completion.
    pub fn sample(&self) -> PathBuf {
        self.dir.join(SAMPLE)
    }

    /// Writes the resolved recipe.
    pub fn write_config(&self, recipe: &Recipe) -> Result<()> {
        crate::io::write_atomic(&self.config(), recipe.to_toml().as_bytes())
    }

    /// Writes `summary.json`.
    pub fn write_summary<T: Serialize>(&self, summary: &T) -> Result<()> {
        let json = serde_json::to_string_pretty(summary).expect("summaries serialise");
        crate::io::write_atomic(&self.summary(), json.as_bytes())
    }

    /// The complete checkpoints, by ascending step. A folder without a readable `state.json` (a
    /// checkpoint whose writer was killed before publishing it) is not one.
    pub fn checkpoints(&self) -> Result<Vec<CheckpointDir>> {
        let root = self.dir.join(CHECKPOINTS);
        if !root.is_dir() {
            return Ok(Vec::new());
        }
        let io = |source| Error::Io {
            path: root.clone(),
            cause: source,
        };
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&root).map_err(io)? {
            let dir = entry.map_err(io)?.path();
            let state = dir.join(STATE);
            if !state.is_file() {
                continue;
            }
            let text = std::fs::read_to_string(&state).map_err(|source| Error::Io {
                path: state.clone(),
                cause: source,
            })?;
            let parsed: CheckpointState =
                serde_json::from_str(&text).map_err(|e| Error::BadFile {
                    path: state.clone(),
                    message: e.to_string(),
                })?;
            found.push(CheckpointDir {
                step: parsed.step,
                dir,
            });
        }
        found.sort_by_key(|c| c.step);
        Ok(found)
    }

    /// The newest complete checkpoint.
    pub fn latest_checkpoint(&self) -> Result<Option<CheckpointDir>> {
        Ok(self.checkpoints()?.pop())
    }

    /// Writes the checkpoint of `step`: the trainable tensors of `model`, the optimizer's state
    /// and, last, `state.json`, in a temporary folder published by one rename; returns it.
    pub fn write_checkpoint<B, M, O>(
        &self,
        step: usize,
        model: &M,
        optimizer: &O,
    ) -> Result<CheckpointDir>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
        O: Optimizer<M, B>,
    {
        let root = self.dir.join(CHECKPOINTS);
        let final_dir = root.join(format!("step-{step:06}"));
        let tmp = root.join(format!(".step-{step:06}.tmp"));
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io {
                path,
                cause: source,
            }
        };
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        save_trainable(model, &tmp.join(TRAINABLE))?;
        let bytes = BinBytesRecorder::<FullPrecisionSettings>::default()
            .record(optimizer.to_record(), ())
            .map_err(|e| Error::BadFile {
                path: tmp.join(OPTIMIZER),
                message: format!("{e}"),
            })?;
        crate::io::write_atomic(&tmp.join(OPTIMIZER), &bytes)?;
        let state = serde_json::to_string(&CheckpointState { step }).expect("state serialises");
        crate::io::write_atomic(&tmp.join(STATE), state.as_bytes())?;
        // The rename publishes the checkpoint whole; a crash before it leaves only the temp dir.
        let _ = std::fs::remove_dir_all(&final_dir);
        std::fs::rename(&tmp, &final_dir).map_err(io(&final_dir))?;
        Ok(CheckpointDir {
            step,
            dir: final_dir,
        })
    }

    /// Writes a checkpoint packed by [`CheckpointDir::to_bytes`] into this folder (`origin`
    /// names where it came from in errors) and returns it.
    pub fn import_checkpoint(&self, bytes: &[u8], origin: &str) -> Result<CheckpointDir> {
        let bad = |message: &str| Error::BadFile {
            path: PathBuf::from(origin),
            message: format!("not a packed checkpoint: {message}"),
        };
        let dir = self.dir.join(CHECKPOINTS).join("imported");
        std::fs::create_dir_all(&dir).map_err(|cause| Error::Io {
            path: dir.clone(),
            cause,
        })?;
        let mut rest = bytes;
        for expected in [TRAINABLE, OPTIMIZER, STATE] {
            let name = take_part(&mut rest).ok_or_else(|| bad("truncated"))?;
            if name != expected.as_bytes() {
                return Err(bad(&format!("expected {expected}")));
            }
            let contents = take_part(&mut rest).ok_or_else(|| bad("truncated"))?;
            crate::io::write_atomic(&dir.join(expected), contents)?;
        }
        let checkpoint = self
            .latest_checkpoint()?
            .ok_or_else(|| bad("no state.json"))?;
        Ok(checkpoint)
    }

    /// Restores the latest checkpoint into `model` (built as the run built it) and `optimizer`;
    /// returns them and the checkpoint's step (0, unchanged, when there is none).
    pub fn restore_latest<B, M, O>(
        &self,
        model: M,
        optimizer: O,
        device: &B::Device,
    ) -> Result<(M, O, usize)>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
        O: Optimizer<M, B>,
    {
        match self.latest_checkpoint()? {
            Some(checkpoint) => checkpoint.restore(model, optimizer, device),
            None => Ok((model, optimizer, 0)),
        }
    }
}
