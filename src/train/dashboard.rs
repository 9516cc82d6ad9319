//! Progress reporting: Burn's TUI dashboard (burn-train's renderer, driven step by step) when
//! stdout is a terminal, plain readable lines otherwise (CI, logs, pipes).

use std::io::IsTerminal;
use std::sync::Arc;

use burn::data::dataloader::Progress;
use burn::train::Interrupter;
use burn::train::metric::{
    MetricAttributes, MetricDefinition, MetricEntry, MetricId, NumericAttributes, NumericEntry,
    SerializedEntry,
};
use burn::train::renderer::tui::TuiMetricsRendererWrapper;
use burn::train::renderer::{
    MetricState, MetricsRenderer, MetricsRendererTraining, ProgressType, TrainingProgress,
};

use super::metrics::StepMetrics;

/// Where step reports go.
pub enum Dashboard {
    Lines {
        quiet: bool,
        log_every: usize,
    },
    /// The TUI takes the terminal at the first step; until then messages print as lines.
    Tui {
        renderer: Option<TuiMetricsRendererWrapper>,
        interrupter: Interrupter,
        held: Vec<String>,
    },
}

const METRICS: [(&str, &str, bool); 5] = [
    (
        "Loss",
        "task loss (mean over the step's micro-batches)",
        false,
    ),
    ("Regularizer", "SORSA orthonormality L_reg", false),
    ("Learning rate", "scheduled rate", false),
    (
        "Gradient norm",
        "global norm of the task gradient before clipping",
        false,
    ),
    ("Tokens/s", "target tokens per second", true),
];

impl Dashboard {
    /// The TUI when stdout is a terminal (and not quiet), else plain lines.
    pub fn new(quiet: bool, log_every: usize) -> Self {
        if quiet
            || !std::io::stdout().is_terminal()
            || std::env::var_os("BURN_PEFT_NO_TUI").is_some()
        {
            return Dashboard::Lines { quiet, log_every };
        }
        Dashboard::Tui {
            renderer: None,
            interrupter: Interrupter::new(),
            held: Vec::new(),
        }
    }

    /// The TUI renderer with the metrics registered.
    fn start_tui(interrupter: &Interrupter) -> TuiMetricsRendererWrapper {
        let mut renderer = TuiMetricsRendererWrapper::new(interrupter.clone(), None);
        for (name, description, higher_is_better) in METRICS {
            renderer.register_metric(MetricDefinition {
                metric_id: MetricId::new(Arc::new(name.to_string())),
                name: name.to_string(),
                description: Some(description.to_string()),
                attributes: MetricAttributes::Numeric(NumericAttributes {
                    unit: None,
                    higher_is_better,
                }),
            });
        }
        renderer
    }

    /// A message: printed now, or after the dashboard closes when the TUI holds the terminal.
    pub fn say(&mut self, text: impl Into<String>) {
        match self {
            Dashboard::Lines { quiet: true, .. } => {}
            Dashboard::Tui {
                renderer: Some(_),
                held,
                ..
            } => held.push(text.into()),
            _ => println!("{}", text.into()),
        }
    }

    /// Reports one optimizer step.
    pub fn step(&mut self, m: &StepMetrics, total_steps: usize, epochs: usize) {
        match self {
            Dashboard::Lines {
                quiet: false,
                log_every,
            } => {
                if m.step.is_multiple_of(*log_every) || m.step == 1 || m.step == total_steps {
                    println!("{}", m.line(total_steps));
                }
            }
            Dashboard::Lines { quiet: true, .. } => {}
            Dashboard::Tui {
                renderer,
                interrupter,
                ..
            } => {
                let renderer = renderer.get_or_insert_with(|| Self::start_tui(interrupter));
                let values = [
                    m.loss,
                    m.regularizer,
                    m.lr,
                    m.grad_norm,
                    m.tokens_per_second,
                ];
                for ((name, _, _), value) in METRICS.iter().zip(values) {
                    let entry = MetricEntry::new(
                        MetricId::new(Arc::new(name.to_string())),
                        SerializedEntry {
                            formatted: format!("{name}: {value:.4e}"),
                            serialized: value.to_string(),
                        },
                    );
                    renderer.update_train(MetricState::Numeric(entry, NumericEntry::Value(value)));
                }
                let progress = TrainingProgress {
                    progress: Some(Progress::new(m.step, total_steps)),
                    global_progress: Progress::new(m.epoch + 1, epochs.max(1)),
                    iteration: Some(m.step),
                };
                let indicators = vec![
                    ProgressType::Detailed {
                        tag: "Step".into(),
                        progress: Progress::new(m.step, total_steps),
                    },
                    ProgressType::Detailed {
                        tag: "Epoch".into(),
                        progress: Progress::new(m.epoch + 1, epochs.max(1)),
                    },
                ];
                renderer.render_train(progress, indicators);
            }
        }
    }

    /// Whether the user asked the dashboard to stop (its quit key).
    pub fn interrupted(&self) -> bool {
        matches!(self, Dashboard::Tui { interrupter, .. } if interrupter.should_stop())
    }

    /// Closes the TUI (if it started) and prints what it held back; later messages print as
    /// lines.
    pub fn finish(&mut self) {
        if let Dashboard::Tui { renderer, held, .. } = self {
            drop(renderer.take());
            for line in held.drain(..) {
                println!("{line}");
            }
        }
    }
}
