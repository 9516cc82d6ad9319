//! Training building blocks. This part: global-norm gradient clipping and the optimizer
//! step that applies the SORSA regularizer in its configured mode.

pub mod check;
pub mod classifier;
pub mod clip;
pub mod dashboard;
pub mod divergence;
pub mod identity;
pub mod learner;
pub mod memory;
pub mod metrics;
pub mod plan;
pub mod recipe;
pub mod recompute;
pub mod schedule;
mod setup;
pub mod state;
pub mod step;
pub mod trainer;

pub use clip::clip_global_norm;
pub use step::{PeftStep, PendingReport, StepReport};
