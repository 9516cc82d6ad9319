//! What an evaluation writes: `results.json` (task, model, adapter, metrics, counts, timing,
//! throughput, sandbox protections) and, next to it, one jsonl record per example (prompt,
//! completion, extracted answer, gold, correct; for HumanEval the protections its program ran
//! under). Both are written atomically; the records first,
//! so an existing `results.json` always has complete records beside it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::sandbox::{Protections, SandboxSummary};
use crate::io::write_atomic;
use crate::{Error, Result};

/// The summary of one evaluation run.
#[derive(Debug, Clone, Serialize, Default)]
pub struct EvalResults {
    pub task: String,
    pub model: Option<String>,
    pub adapter: Option<String>,
    pub data: String,
    /// The completions file scored, when no model generated them.
    pub completions: Option<String>,
    /// Metric name → value (accuracies in [0, 1]).
    pub metrics: BTreeMap<String, f64>,
    /// The metric the task is reported by.
    pub primary_metric: String,
    /// e.g. `examples`, `correct`, `without_answer`, `tokens`.
    pub counts: BTreeMap<String, usize>,
    /// Wall-clock seconds of the whole evaluation (model loading excluded).
    pub seconds: f64,
    pub generated_tokens: usize,
    /// Generated tokens per second of generation time.
    pub tokens_per_second: Option<f64>,
    /// Batch size, max new tokens, timeout, … as used.
    pub settings: BTreeMap<String, serde_json::Value>,
    /// The sandbox HumanEval programs ran in: strict or not, the protections every program
    /// had, and how many ran without each missing one (each program's own are in its record).
    pub sandbox: Option<SandboxSummary>,
    /// The backend, adapter and driver the model ran on (absent when only completions were
    /// scored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<crate::backend::DeviceInfo>,
}

/// One example's record. Fields that do not apply to a task are left out.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ExampleRecord {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion: Option<String>,
    /// The answer (or program, for HumanEval) taken from the completion; null when the
    /// completion has none.
    pub extracted: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gold: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correct: Option<bool>,
    /// A per-example number: STS-B's predicted score, a sequence's mean NLL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// A classifier's raw head outputs (logits; the score for regression).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<f32>>,
    /// e.g. the sandbox outcome of a failing program.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The protections a HumanEval program ran under.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<Protections>,
}

/// An evaluation's output.
pub struct Evaluation {
    pub results: EvalResults,
    pub records: Vec<ExampleRecord>,
}

/// Where the records of `results` go: `results.json` → `results.records.jsonl`.
pub fn records_path(results: &Path) -> PathBuf {
    let stem = results
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "results".into());
    results.with_file_name(format!("{stem}.records.jsonl"))
}

/// Writes the records, then `results` (both atomically); returns the records' path.
pub fn write(path: &Path, evaluation: &Evaluation) -> Result<PathBuf> {
    let encode = |e: serde_json::Error| Error::BadFile {
        path: path.to_path_buf(),
        message: format!("cannot encode results: {e}"),
    };
    let mut lines = Vec::new();
    for record in &evaluation.records {
        serde_json::to_writer(&mut lines, record).map_err(encode)?;
        lines.push(b'\n');
    }
    let records = records_path(path);
    write_atomic(&records, &lines)?;
    let mut json = serde_json::to_vec_pretty(&evaluation.results).map_err(encode)?;
    json.push(b'\n');
    write_atomic(path, &json)?;
    Ok(records)
}
