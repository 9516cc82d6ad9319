//! Learning-rate schedules with linear warmup, as transformers' `get_*_schedule_with_warmup`.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    #[default]
    Cosine,
    Linear,
    Constant,
    Polynomial,
}

/// The learning rate at each optimizer step.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub kind: ScheduleKind,
    pub base_lr: f64,
    pub warmup_steps: usize,
    pub total_steps: usize,
    /// Polynomial decay power (1 = linear); decays to `end_lr`.
    pub power: f64,
    pub end_lr: f64,
}

impl Schedule {
    /// Rate for optimizer step `step` (0-based), as HF computes it: `base·step/warmup` during
    /// warmup (so step 0 runs at rate 0), then the decay over the remaining steps.
    pub fn lr(&self, step: usize) -> f64 {
        let (base, warmup, total) = (self.base_lr, self.warmup_steps, self.total_steps.max(1));
        if step < warmup {
            return base * step as f64 / warmup.max(1) as f64;
        }
        let progress = (step - warmup) as f64 / (total.saturating_sub(warmup)).max(1) as f64;
        let progress = progress.min(1.0);
        match self.kind {
            ScheduleKind::Constant => base,
            ScheduleKind::Linear => base * (1.0 - progress).max(0.0),
            ScheduleKind::Cosine => base * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
            ScheduleKind::Polynomial => {
                (base - self.end_lr) * (1.0 - progress).powf(self.power) + self.end_lr
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(kind: ScheduleKind) -> Schedule {
        Schedule {
            kind,
            base_lr: 1.0,
            warmup_steps: 10,
            total_steps: 110,
            power: 1.0,
            end_lr: 0.0,
        }
    }

    #[test]
    fn warmup_then_decay() {
        let cosine = schedule(ScheduleKind::Cosine);
        assert_eq!(cosine.lr(0), 0.0);
        assert!((cosine.lr(5) - 0.5).abs() < 1e-12);
        assert!((cosine.lr(10) - 1.0).abs() < 1e-12);
        assert!((cosine.lr(60) - 0.5).abs() < 1e-12);
        assert!(cosine.lr(110).abs() < 1e-12);
        assert!((schedule(ScheduleKind::Linear).lr(60) - 0.5).abs() < 1e-12);
        assert_eq!(schedule(ScheduleKind::Constant).lr(100), 1.0);
        let poly = Schedule {
            power: 2.0,
            ..schedule(ScheduleKind::Polynomial)
        };
        assert!((poly.lr(60) - 0.25).abs() < 1e-12);
    }
}
