//! Training building blocks. This part: global-norm gradient clipping and the optimizer
//! step that applies the SORSA regularizer in its configured mode.

pub mod classifier;
pub mod clip;
pub mod dashboard;
pub mod memory;
pub mod metrics;
pub mod recipe;
pub mod recompute;
pub mod schedule;
pub mod state;
pub mod step;
pub mod trainer;

pub use clip::clip_global_norm;
pub use step::{PeftStep, StepReport};
