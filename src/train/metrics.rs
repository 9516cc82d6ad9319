//! One record per logged step: appended to `metrics.jsonl` and printed as a readable line.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    pub step: usize,
    pub epoch: usize,
    /// Task loss averaged over the step's micro-batches.
    pub loss: f64,
    /// SORSA regularizer `L_reg` before the step (0 without SORSA layers).
    pub regularizer: f64,
    pub lr: f64,
    /// Global norm of the task gradient before clipping.
    pub grad_norm: f64,
    pub tokens_per_second: f64,
    pub elapsed_seconds: f64,
    /// Held-out loss, on steps where it is measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_loss: Option<f64>,
}

impl StepMetrics {
    /// The plain log line (when stdout is not a terminal dashboard).
    pub fn line(&self, total_steps: usize) -> String {
        let mut line = format!(
            "step {:>5}/{total_steps}  loss {:.4}  lr {:.3e}  reg {:.3e}  grad_norm {:.3}  {:.0} tok/s",
            self.step, self.loss, self.lr, self.regularizer, self.grad_norm, self.tokens_per_second
        );
        if let Some(eval) = self.eval_loss {
            line.push_str(&format!("  eval_loss {eval:.4}"));
        }
        line
    }
}

/// The run's `metrics.jsonl`.
pub struct MetricsLog {
    path: PathBuf,
}

impl MetricsLog {
    /// Opens the log; on resume, drops records after `keep_until_step` (they are redone).
    pub fn open(path: &Path, keep_until_step: Option<usize>) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            cause: source,
        };
        match keep_until_step {
            Some(step) if path.is_file() => {
                let text = std::fs::read_to_string(path).map_err(io)?;
                let kept: Vec<&str> = text
                    .lines()
                    .filter(|l| {
                        serde_json::from_str::<StepMetrics>(l)
                            .map(|m| m.step <= step)
                            .unwrap_or(false)
                    })
                    .collect();
                let mut body = kept.join("\n");
                if !body.is_empty() {
                    body.push('\n');
                }
                crate::io::write_atomic(path, body.as_bytes())?;
            }
            _ => crate::io::write_atomic(path, b"")?,
        }
        Ok(Self {
            path: path.to_path_buf(),
        })
    }

    pub fn append(&self, metrics: &StepMetrics) -> Result<()> {
        let io = |source| Error::Io {
            path: self.path.clone(),
            cause: source,
        };
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        let line = serde_json::to_string(metrics).expect("metrics serialise");
        writeln!(file, "{line}").map_err(io)
    }

    /// Reads every record of a metrics file.
    pub fn read(path: &Path) -> Result<Vec<StepMetrics>> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            cause: source,
        })?;
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l).map_err(|e| Error::BadFile {
                    path: path.to_path_buf(),
                    message: format!("line {}: {e}", i + 1),
                })
            })
            .collect()
    }
}
