//! Stopping a diverging run: a step whose loss or gradient norm is not finite ends the run when
//! its scalars are read (at the next logged step or checkpoint, whichever comes first), before
//! anything of it or after it is logged or saved, so the last checkpoint stays the last good
//! state and no NaN reaches `adapter/` or `checkpoints/`.

use super::metrics::StepMetrics;
use super::run_folder::RunFolder;
use crate::{Error, Result};

/// Errors (naming the step, the values and the checkpoint kept) when the step's loss or
/// gradient norm is NaN or infinite.
pub fn check_step(metrics: &StepMetrics, run: &RunFolder) -> Result<()> {
    if metrics.loss.is_finite() && metrics.grad_norm.is_finite() {
        return Ok(());
    }
    let kept = match run.latest_checkpoint()? {
        Some(checkpoint) => format!("the last good checkpoint is {}", checkpoint.dir.display()),
        None => "no checkpoint had been written yet".to_string(),
    };
    Err(Error::Diverged {
        step: metrics.step,
        message: format!(
            "loss {}, gradient norm {}; stopped without saving this step ({kept}); lower optim.lr \
             or check the data",
            metrics.loss, metrics.grad_norm
        ),
    })
}
