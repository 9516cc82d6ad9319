//! `analyze`: ΔΣ and ΔD of trained adapters (and, optionally, of every checkpoint of their runs)
//! against the original base, written as `spectral.csv` and plotted against step per method.

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::tensor::backend::AutodiffBackend;

use super::layers::{LayerShift, layer_shifts};
use super::plot::{Labels, Mark, Series, write_line_plot};
use super::run::RunDir;
use crate::model::Precision;
use crate::model::any::{AnyModel, load_model_as};
use crate::model::{PeftModel, inject_adapters};
use crate::persist::adapter::load_adapter;
use crate::train::trainable::load_trainable;
use crate::{Error, Result};

/// What to analyse.
#[derive(Debug, Clone)]
pub struct AnalyzeOptions {
    /// The original (pre-trained) model every adapter was trained on.
    pub base: PathBuf,
    /// Adapter folders, each `<run>/adapter` of a training run.
    pub adapters: Vec<PathBuf>,
    /// Also analyse every `<run>/checkpoints/step-*`.
    pub checkpoints: bool,
    pub out: PathBuf,
    /// dtype the base is loaded in (use the runs' `model.precision`: a bf16 residual differs
    /// from an f32 one by bf16 rounding).
    pub precision: Precision,
}

/// Which number of a [`LayerShift`] a plot shows.
type Measure = fn(&LayerShift) -> f64;

/// One row of `spectral.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct ShiftRow {
    pub method: String,
    pub step: usize,
    pub shift: LayerShift,
}

/// Runs the analysis, writes `spectral.csv`, `delta_sigma.{png,svg}` and `delta_d.{png,svg}`
/// under `out`, and returns the rows. Progress goes to stderr.
pub fn analyze<B: AutodiffBackend>(
    options: &AnalyzeOptions,
    device: &B::Device,
) -> Result<Vec<ShiftRow>> {
    if options.adapters.is_empty() {
        return Err(Error::invalid(
            "--adapter",
            "(none)",
            "name at least one adapter folder",
        ));
    }
    let (model, report) = load_model_as::<B>(&options.base, options.precision, device)?;
    report.warn();
    let rows = match model {
        AnyModel::Decoder(base) => shifts_of_runs(options, &base)?,
        AnyModel::Rwkv6(base) => shifts_of_runs(options, &base)?,
        AnyModel::Encoder(_) => {
            return Err(Error::invalid(
                "--base",
                options.base.display(),
                "analyze supports causal LMs (decoders and RWKV6)",
            ));
        }
    };
    std::fs::create_dir_all(&options.out).map_err(|source| Error::Io {
        path: options.out.clone(),
        cause: source,
    })?;
    let csv = options.out.join("spectral.csv");
    crate::io::write_atomic(&csv, to_csv(&rows).as_bytes())?;
    eprintln!("analyze: wrote {}", csv.display());
    let plots: [(&str, &str, &str, Measure); 2] = [
        (
            "delta_sigma",
            "ΔΣ = mean |σ_i(W_t) − σ_i(W_0)|  (mean over layers, band: min–max)",
            "ΔΣ",
            |s| s.delta_sigma,
        ),
        (
            "delta_d",
            "ΔD = 1 − mean (|u_i·u_i'| + |v_i·v_i'|)/2  (mean over layers, band: min–max)",
            "ΔD",
            |s| s.delta_d,
        ),
    ];
    for (stem, title, y, value) in plots {
        let labels = Labels {
            title,
            x: "step",
            y,
        };
        for path in write_line_plot(
            &options.out.join(stem),
            &labels,
            &per_method_series(&rows, value),
        )? {
            eprintln!("analyze: wrote {}", path.display());
        }
    }
    Ok(rows)
}

/// The layer shifts of every adapter (and, with `options.checkpoints`, of every checkpoint of
/// its run) against `base`.
fn shifts_of_runs<B: AutodiffBackend, M: PeftModel<B> + Clone>(
    options: &AnalyzeOptions,
    base: &M,
) -> Result<Vec<ShiftRow>> {
    let mut rows = Vec::new();
    let mut labels: Vec<String> = Vec::new();
    for adapter in &options.adapters {
        let run = RunDir::owning(adapter)?;
        // Two runs of the same method (e.g. different ranks) must stay separate lines.
        let mut method = run.method_label();
        if labels.contains(&method) {
            method = format!("{method} ({})", run.name());
        }
        labels.push(method.clone());
        let final_step = final_step(&run)?;
        if options.checkpoints {
            for checkpoint in run
                .checkpoints()?
                .into_iter()
                .filter(|c| c.step < final_step)
            {
                eprintln!(
                    "analyze: {method} step {} ({})",
                    checkpoint.step,
                    checkpoint.trainable().display()
                );
                let (model, _) = inject_adapters(base.clone(), &run.recipe.adapter)?;
                let model = load_trainable(model, &checkpoint.trainable())?;
                push_rows(
                    &mut rows,
                    &method,
                    checkpoint.step,
                    layer_shifts(base, &model)?,
                );
            }
        }
        eprintln!(
            "analyze: {method} step {final_step} ({})",
            adapter.display()
        );
        let (model, _, _) = load_adapter(base.clone(), adapter, false)?;
        push_rows(&mut rows, &method, final_step, layer_shifts(base, &model)?);
    }
    Ok(rows)
}

/// The step the run's final adapter was saved at: `summary.json`'s `steps`, else the last
/// logged step, else the last checkpoint.
fn final_step(run: &RunDir) -> Result<usize> {
    if let Some(steps) = run.summary()?.and_then(|s| s.steps) {
        return Ok(steps);
    }
    if let Ok(metrics) = run.metrics()
        && let Some(last) = metrics.last()
    {
        return Ok(last.step);
    }
    Ok(run.checkpoints()?.last().map_or(0, |c| c.step))
}

fn push_rows(rows: &mut Vec<ShiftRow>, method: &str, step: usize, shifts: Vec<LayerShift>) {
    rows.extend(shifts.into_iter().map(|shift| ShiftRow {
        method: method.to_string(),
        step,
        shift,
    }));
}

/// `method,step,layer,module,delta_sigma,delta_d`; full precision, since early shifts are tiny.
pub fn to_csv(rows: &[ShiftRow]) -> String {
    let mut text = String::from("method,step,layer,module,delta_sigma,delta_d\n");
    for r in rows {
        let layer = r.shift.layer.map(|l| l.to_string()).unwrap_or_default();
        text.push_str(&format!(
            "{},{},{layer},{},{:e},{:e}\n",
            csv_field(&r.method),
            r.step,
            csv_field(&r.shift.module),
            r.shift.delta_sigma,
            r.shift.delta_d
        ));
    }
    text
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// One series per method: the mean over layers at each step, with a min–max band.
fn per_method_series(rows: &[ShiftRow], value: Measure) -> Vec<Series> {
    // Methods in first-seen order (the order of --adapter), steps ascending.
    let mut order: Vec<&str> = Vec::new();
    let mut grouped: BTreeMap<(usize, usize), Vec<f64>> = BTreeMap::new();
    for r in rows {
        let index = order
            .iter()
            .position(|m| *m == r.method)
            .unwrap_or_else(|| {
                order.push(&r.method);
                order.len() - 1
            });
        grouped
            .entry((index, r.step))
            .or_default()
            .push(value(&r.shift));
    }
    order
        .iter()
        .enumerate()
        .map(|(index, method)| {
            let steps = grouped.range((index, 0)..=(index, usize::MAX));
            let band: Vec<(f64, f64, f64)> = steps
                .map(|(&(_, step), values)| {
                    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
                    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    (step as f64, lo, hi)
                })
                .collect();
            let points = grouped
                .range((index, 0)..=(index, usize::MAX))
                .map(|(&(_, step), values)| {
                    (
                        step as f64,
                        values.iter().sum::<f64>() / values.len() as f64,
                    )
                })
                .collect();
            Series {
                label: method.to_string(),
                points,
                band,
                mark: Mark::Line,
                color: index,
            }
        })
        .collect()
}
