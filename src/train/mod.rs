//! Training building blocks. This part: global-norm gradient clipping and the optimizer
//! step that applies the SORSA regularizer in its configured mode.

pub mod clip;
pub mod step;

pub use clip::clip_global_norm;
pub use step::{PeftStep, StepReport};
