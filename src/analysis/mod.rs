//! Analyses of finished runs: how far each method moves the weights (SORSA's ΔΣ and ΔD, per
//! layer and per checkpoint) and side-by-side loss curves and numbers of several runs.

pub mod analyze;
pub mod compare;
pub mod layers;
pub mod plot;
pub mod run;
pub mod spectral;

pub use analyze::{AnalyzeOptions, ShiftRow, analyze};
pub use compare::{Comparison, compare};
pub use layers::{LayerShift, layer_shifts};
pub use run::RunDir;
pub use spectral::spectral_shift;
