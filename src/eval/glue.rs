//! Evaluating GLUE dev sets: which metrics each task reports, the prediction a head's outputs
//! make, and label names for the records. Reading the TSVs (layouts and the label convention)
//! is [`crate::data::glue`]'s job; the labels follow the Hugging Face `glue` dataset, which
//! fine-tuned checkpoints' heads follow:
//!
//! | task | labels | metrics (primary first) |
//! |---|---|---|
//! | CoLA | 0 unacceptable, 1 acceptable | Matthews correlation, accuracy |
//! | SST-2 | 0 negative, 1 positive | accuracy |
//! | MRPC | 0 not equivalent, 1 equivalent | F1 (of class 1), accuracy |
//! | RTE, QNLI | 0 entailment, 1 not_entailment | accuracy |
//! | WNLI | 0 not_entailment, 1 entailment (as in the file) | accuracy |
//! | STS-B | a similarity in [0, 5] (one-output regression head) | Pearson, Spearman |

use std::collections::BTreeMap;

use super::metrics;
pub use crate::data::glue::{GlueExample, GlueLabel, GlueTask, load_glue};

/// The name in `--task glue-NAME`: `cola`, `sst2`, `mrpc`, `rte`, `stsb`, `qnli`, `wnli`.
pub fn task_name(task: GlueTask) -> String {
    task.dir_name().to_ascii_lowercase().replace('-', "")
}

/// The task whose [`task_name`] is `name`.
pub fn from_task_name(name: &str) -> Option<GlueTask> {
    GlueTask::ALL.into_iter().find(|&t| task_name(t) == name)
}

/// The metric GLUE reports the task by.
pub fn primary_metric(task: GlueTask) -> &'static str {
    match task {
        GlueTask::Cola => "matthews_correlation",
        GlueTask::Mrpc => "f1",
        GlueTask::Stsb => "pearson",
        _ => "accuracy",
    }
}

/// The label's name (for records).
pub fn label_name(task: GlueTask, label: GlueLabel) -> String {
    let names: &[&str] = match task {
        GlueTask::Cola => &["unacceptable", "acceptable"],
        GlueTask::Sst2 => &["negative", "positive"],
        GlueTask::Mrpc => &["not_equivalent", "equivalent"],
        GlueTask::Rte | GlueTask::Qnli => &["entailment", "not_entailment"],
        GlueTask::Wnli => &["not_entailment", "entailment"],
        GlueTask::Stsb => &[],
    };
    match label {
        GlueLabel::Class(c) => names.get(c).map_or(c.to_string(), |n| n.to_string()),
        GlueLabel::Score(s) => s.to_string(),
    }
}

/// The prediction of a head's outputs: the arg-max class (first maximum), or the regression
/// output.
pub fn predict(task: GlueTask, outputs: &[f32]) -> GlueLabel {
    if task.is_regression() {
        return GlueLabel::Score(outputs.first().copied().unwrap_or(f32::NAN));
    }
    let mut best = 0;
    for (i, v) in outputs.iter().enumerate() {
        if *v > outputs[best] {
            best = i;
        }
    }
    GlueLabel::Class(best)
}

/// The task's metrics of `predictions` against `gold` (same length).
pub fn task_metrics(
    task: GlueTask,
    predictions: &[GlueLabel],
    gold: &[GlueLabel],
) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    if task.is_regression() {
        let (p, g) = (scores(predictions), scores(gold));
        out.insert("pearson".into(), metrics::pearson(&p, &g));
        out.insert("spearman".into(), metrics::spearman(&p, &g));
        return out;
    }
    let (p, g) = (classes(predictions), classes(gold));
    out.insert("accuracy".into(), metrics::accuracy(&p, &g));
    match task {
        GlueTask::Cola => {
            out.insert("matthews_correlation".into(), metrics::matthews(&p, &g));
        }
        GlueTask::Mrpc => {
            out.insert("f1".into(), metrics::f1_positive(&p, &g));
        }
        _ => {}
    }
    out
}

fn scores(labels: &[GlueLabel]) -> Vec<f64> {
    labels
        .iter()
        .map(|l| match l {
            GlueLabel::Score(s) => f64::from(*s),
            GlueLabel::Class(c) => *c as f64,
        })
        .collect()
}

/// Class indices; a score (never mixed in by the readers) rounds to the nearest class.
fn classes(labels: &[GlueLabel]) -> Vec<usize> {
    labels
        .iter()
        .map(|l| match l {
            GlueLabel::Class(c) => *c,
            GlueLabel::Score(s) => s.round().max(0.0) as usize,
        })
        .collect()
}
