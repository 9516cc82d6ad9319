//! A burn-train renderer that prints plain lines (logs, CI, pipes), for when stdout is not a
//! terminal and burn-train's TUI cannot run. burn-train's own fallback prints a debug dump of the
//! progress for every batch and no metric values.

use std::collections::HashMap;

use burn::train::LearnerSummary;
use burn::train::metric::{MetricDefinition, MetricId, format_float};
use burn::train::renderer::{
    EvaluationName, EvaluationProgress, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining, ProgressType, TrainingProgress,
};

/// Prints one line per epoch and split with the epoch's mean of every metric, e.g.
/// `train epoch 2/5  Loss 0.412  Accuracy 87.500  Regularizer 1.234e-6`; optionally also every
/// `n` iterations ([`every`](Self::every)). Pass it to `SupervisedTraining::renderer` when
/// stdout is not a terminal.
#[derive(Debug, Default)]
pub struct LineRenderer {
    every: Option<usize>,
    names: Vec<(MetricId, String)>,
    train: Means,
    valid: Means,
    test: Means,
}

impl LineRenderer {
    /// Lines at the end of each epoch only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also a line every `iterations` training iterations (0: never).
    pub fn every(mut self, iterations: usize) -> Self {
        self.every = (iterations > 0).then_some(iterations);
        self
    }

    fn line(&self, split: &str, progress: &str, means: &Means) -> String {
        let mut line = format!("{split} {progress}");
        for (id, name) in &self.names {
            if let Some(value) = means.get(id) {
                line.push_str(&format!("  {name} {value}"));
            }
        }
        line
    }
}

/// Running means of the numeric metrics (and the last text of the others) over one epoch.
#[derive(Debug, Default)]
struct Means {
    numeric: HashMap<MetricId, (f64, usize)>,
    text: HashMap<MetricId, String>,
}

impl Means {
    fn update(&mut self, state: MetricState) {
        match state {
            MetricState::Numeric(entry, value) => {
                let count = match value {
                    burn::train::metric::NumericEntry::Aggregated { count, .. } => count.max(1),
                    burn::train::metric::NumericEntry::Value(_) => 1,
                };
                let sum = self.numeric.entry(entry.metric_id).or_default();
                sum.0 += value.current() * count as f64;
                sum.1 += count;
            }
            MetricState::Generic(entry) => {
                self.text
                    .insert(entry.metric_id, entry.serialized_entry.formatted);
            }
        }
    }

    fn get(&self, id: &MetricId) -> Option<String> {
        match self.numeric.get(id) {
            Some((sum, count)) => Some(format_float(sum / (*count).max(1) as f64, 3)),
            None => self.text.get(id).cloned(),
        }
    }

    fn clear(&mut self) {
        self.numeric.clear();
        self.text.clear();
    }
}

/// `epoch 2/5` (and `iteration 40` mid-epoch).
fn describe(item: &TrainingProgress, mid_epoch: bool) -> String {
    let epoch = &item.global_progress;
    let mut text = format!("epoch {}/{}", epoch.items_processed, epoch.items_total);
    if mid_epoch && let Some(iteration) = item.iteration {
        text.push_str(&format!(" iteration {iteration}"));
    }
    text
}

fn epoch_done(item: &TrainingProgress) -> bool {
    item.progress
        .as_ref()
        .is_some_and(|p| p.items_total > 0 && p.items_processed >= p.items_total)
}

impl MetricsRendererTraining for LineRenderer {
    fn update_train(&mut self, state: MetricState) {
        self.train.update(state);
    }

    fn update_valid(&mut self, state: MetricState) {
        self.valid.update(state);
    }

    fn render_train(&mut self, item: TrainingProgress, _: Vec<ProgressType>) {
        if epoch_done(&item) {
            println!(
                "{}",
                self.line("train", &describe(&item, false), &self.train)
            );
            self.train.clear();
        } else if let (Some(every), Some(iteration)) = (self.every, item.iteration)
            && iteration.is_multiple_of(every)
        {
            println!(
                "{}",
                self.line("train", &describe(&item, true), &self.train)
            );
        }
    }

    fn render_valid(&mut self, item: TrainingProgress, _: Vec<ProgressType>) {
        if epoch_done(&item) {
            println!(
                "{}",
                self.line("valid", &describe(&item, false), &self.valid)
            );
            self.valid.clear();
        }
    }

    fn on_train_end(
        &mut self,
        summary: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        if let Some(summary) = summary {
            println!("{summary}");
        }
        Ok(())
    }
}

impl MetricsRendererEvaluation for LineRenderer {
    fn update_test(&mut self, _: EvaluationName, state: MetricState) {
        self.test.update(state);
    }

    fn render_test(&mut self, item: EvaluationProgress, _: Vec<ProgressType>) {
        let p = &item.progress;
        if p.items_total > 0 && p.items_processed >= p.items_total {
            let progress = format!("{}/{} items", p.items_processed, p.items_total);
            println!("{}", self.line("test", &progress, &self.test));
            self.test.clear();
        }
    }
}

impl MetricsRenderer for LineRenderer {
    fn manual_close(&mut self) {}

    fn register_metric(&mut self, definition: MetricDefinition) {
        if !self.names.iter().any(|(id, _)| *id == definition.metric_id) {
            self.names.push((definition.metric_id, definition.name));
            // By name: burn-train registers metrics in no fixed order.
            self.names.sort_by(|a, b| a.1.cmp(&b.1));
        }
    }
}
