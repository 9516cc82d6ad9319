//! `compare`: several training runs side by side — loss (and eval loss) against step in one plot,
//! and a markdown table of their final numbers.

use std::path::{Path, PathBuf};

use super::plot::{Labels, Mark, Series, write_line_plot};
use super::run::RunDir;
use crate::adapter::accounting::group_digits;
use crate::train::metrics::StepMetrics;
use crate::{Error, Result};

/// What `compare` wrote.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// `comparison.md`.
    pub table: PathBuf,
    /// `loss.png` and `loss.svg`.
    pub plots: [PathBuf; 2],
}

/// A run with its step log.
struct Loaded {
    run: RunDir,
    metrics: Vec<StepMetrics>,
}

/// Compares the runs in `runs` (at least one), writing `loss.{png,svg}` and `comparison.md`
/// under `out`. Errors name the offending run: a missing `metrics.jsonl`, or a base model
/// (`model.path`) that differs from the first run's — losses of different models do not compare.
pub fn compare(runs: &[PathBuf], out: &Path) -> Result<Comparison> {
    let first = runs
        .first()
        .ok_or_else(|| Error::invalid("--runs", "(none)", "name at least one run directory"))?;
    let reference = RunDir::open(first)?;
    let mut loaded = Vec::with_capacity(runs.len());
    for dir in runs {
        let run = RunDir::open(dir)?;
        if !same_path(&run.recipe.model.path, &reference.recipe.model.path) {
            return Err(Error::invalid(
                "--runs",
                dir.display(),
                format!(
                    "run trained base model {} but {} trained {}; compare runs of one base model",
                    run.recipe.model.path.display(),
                    first.display(),
                    reference.recipe.model.path.display()
                ),
            ));
        }
        let metrics = run.metrics()?;
        if metrics.is_empty() {
            return Err(Error::BadFile {
                path: dir.join("metrics.jsonl"),
                message: "no step was logged".into(),
            });
        }
        loaded.push(Loaded { run, metrics });
    }
    std::fs::create_dir_all(out).map_err(|source| Error::Io {
        path: out.to_path_buf(),
        cause: source,
    })?;
    let labels = Labels {
        title: "Training loss (dots: held-out loss)",
        x: "step",
        y: "loss",
    };
    let plots = write_line_plot(&out.join("loss"), &labels, &loss_series(&loaded)?)?;
    let table = out.join("comparison.md");
    crate::io::write_atomic(&table, markdown_table(&loaded)?.as_bytes())?;
    Ok(Comparison { table, plots })
}

/// Model paths are compared as files when both exist (so `./models/x` equals `models/x`), else
/// as written.
fn same_path(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn legend(run: &RunDir) -> String {
    format!("{} ({})", run.name(), run.method_label())
}

fn loss_series(runs: &[Loaded]) -> Result<Vec<Series>> {
    let mut series = Vec::new();
    for (color, r) in runs.iter().enumerate() {
        let points = r.metrics.iter().map(|m| (m.step as f64, m.loss)).collect();
        series.push(Series {
            label: legend(&r.run),
            points,
            band: Vec::new(),
            mark: Mark::Line,
            color,
        });
        let mut eval: Vec<(f64, f64)> = r
            .metrics
            .iter()
            .filter_map(|m| m.eval_loss.map(|e| (m.step as f64, e)))
            .collect();
        // Runs that only measure held-out loss at the end have it in summary.json alone.
        if eval.is_empty()
            && let (Some(e), Some(last)) =
                (r.run.summary()?.and_then(|s| s.eval_loss), r.metrics.last())
        {
            eval.push((last.step as f64, e));
        }
        if !eval.is_empty() {
            let label = format!("{} eval", r.run.name());
            series.push(Series {
                label,
                points: eval,
                band: Vec::new(),
                mark: Mark::Dots,
                color,
            });
        }
    }
    Ok(series)
}

fn markdown_table(runs: &[Loaded]) -> Result<String> {
    let mut text = String::from(
        "| run | method | steps | final loss | best loss (step) | eval loss | trainable params | tokens/s |\n\
         |---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in runs {
        let summary = r.run.summary()?.unwrap_or_default();
        let last = r.metrics.last().expect("compare refuses empty logs");
        let best = r
            .metrics
            .iter()
            .min_by(|a, b| a.loss.total_cmp(&b.loss))
            .expect("non-empty");
        // The held-out loss at the end of training (summary.json), else the last one logged.
        let eval = summary
            .eval_loss
            .or_else(|| r.metrics.iter().rev().find_map(|m| m.eval_loss));
        let tokens = summary.tokens_per_second.unwrap_or_else(|| {
            r.metrics.iter().map(|m| m.tokens_per_second).sum::<f64>() / r.metrics.len() as f64
        });
        text.push_str(&format!(
            "| {} | {} | {} | {:.4} | {:.4} ({}) | {} | {} | {:.0} |\n",
            r.run.name(),
            r.run.method_label(),
            last.step,
            last.loss,
            best.loss,
            best.step,
            eval.map_or("–".into(), |e| format!("{e:.4}")),
            summary
                .trainable_params
                .map_or("–".into(), |p| group_digits(p as usize)),
            tokens,
        ));
    }
    Ok(text)
}
