//! `summary.json`: what a finished (or stopped) run reports.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::memory::MemoryReport;

/// What a finished (or stopped) run reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainSummary {
    pub steps: usize,
    pub total_steps: usize,
    pub trainable_params: usize,
    pub total_params: usize,
    pub first_loss: Option<f64>,
    pub last_loss: Option<f64>,
    pub eval_loss: Option<f64>,
    /// Held-out accuracy of a classification run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_accuracy: Option<f64>,
    pub tokens_per_second: f64,
    pub seconds: f64,
    pub sample: Option<String>,
    pub output_dir: PathBuf,
    /// Peak memory of a step and its parts (see [`super::memory`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryReport>,
    /// The backend, adapter and driver the run used (absent when the library was driven
    /// without [`run_on`](crate::backend::run_on)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<crate::backend::DeviceInfo>,
    /// The world of a data-parallel run (absent for one process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distributed: Option<DistributedSummary>,
}

/// What a data-parallel run's communication cost (rank 0's view).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DistributedSummary {
    /// Processes in the run.
    pub world_size: usize,
    /// Bytes rank 0 sent per optimizer step: the ring all-reduce's `2 (N-1)/N` of the trainable
    /// gradient (f32).
    pub all_reduced_bytes_per_step: u64,
    /// Seconds rank 0 spent in the steps' all-reduces, waiting for slower ranks included.
    pub communication_seconds: f64,
}
