//! The SORSA regularizer as a burn-train metric, and the training output that carries it.

use std::sync::Arc;

use burn::tensor::backend::Backend;
use burn::train::ItemLazy;
use burn::train::metric::state::{FormatOptions, NumericMetricState};
use burn::train::metric::{
    AccuracyInput, Adaptor, AurocInput, CerInput, ConfusionStatsInput, HammingScoreInput,
    LossInput, Metric, MetricAttributes, MetricMetadata, MetricName, Numeric, NumericAttributes,
    NumericEntry, PerplexityInput, SerializedEntry, TopKAccuracyInput, WerInput,
};

/// The training output of a [`Peft`](super::Peft) model: the wrapped model's output and `L_reg`
/// at the parameters the step ran with.
///
/// It adapts to every input of burn-train's built-in metrics that the wrapped output adapts to
/// (loss, accuracy, top-k accuracy, perplexity, AUROC, confusion statistics, Hamming score,
/// CER, WER), so a metric registered for the wrapped model works unchanged; for a metric of
/// your own, implement `Adaptor<YourInput> for PeftOutput<YourOutput>`.
pub struct PeftOutput<O> {
    /// The wrapped model's training output.
    pub output: O,
    /// The SORSA regularizer `L_reg` (0 without SORSA layers).
    pub regularizer: f64,
}

impl<O: ItemLazy> ItemLazy for PeftOutput<O> {
    type ItemSync = PeftOutput<O::ItemSync>;

    fn sync(self) -> Self::ItemSync {
        PeftOutput {
            output: self.output.sync(),
            regularizer: self.regularizer,
        }
    }
}

/// Input of the [`RegularizerMetric`].
#[derive(Debug, Clone, Copy)]
pub struct RegularizerInput {
    /// `L_reg` of one training step.
    pub value: f64,
}

impl<O> Adaptor<RegularizerInput> for PeftOutput<O> {
    fn adapt(&self) -> RegularizerInput {
        RegularizerInput {
            value: self.regularizer,
        }
    }
}

macro_rules! forward_adaptor {
    ($($input:ident),*) => {$(
        impl<B: Backend, O: Adaptor<$input<B>>> Adaptor<$input<B>> for PeftOutput<O> {
            fn adapt(&self) -> $input<B> {
                self.output.adapt()
            }
        }
    )*};
}

forward_adaptor!(
    LossInput,
    AccuracyInput,
    TopKAccuracyInput,
    PerplexityInput,
    AurocInput,
    ConfusionStatsInput,
    HammingScoreInput,
    CerInput,
    WerInput
);

/// SORSA's orthonormality regularizer `L_reg` per training step, as a numeric burn-train metric
/// (dashboard plot, logs, summary). Register it with `metric_train_numeric` on a Learner that
/// trains a [`Peft`](super::Peft) model.
#[derive(Clone)]
pub struct RegularizerMetric {
    name: MetricName,
    state: NumericMetricState,
}

impl RegularizerMetric {
    /// The metric, named `Regularizer`.
    pub fn new() -> Self {
        Self {
            name: Arc::new("Regularizer".to_string()),
            state: NumericMetricState::default(),
        }
    }
}

impl Default for RegularizerMetric {
    fn default() -> Self {
        Self::new()
    }
}

impl Metric for RegularizerMetric {
    type Input = RegularizerInput;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn description(&self) -> Option<String> {
        Some("SORSA orthonormality regularizer L_reg".to_string())
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes {
            unit: None,
            higher_is_better: false,
        }
        .into()
    }

    fn update(&mut self, item: &RegularizerInput, _: &MetricMetadata) -> SerializedEntry {
        // Three digits, in scientific notation below 0.01 (values near orthonormality are tiny).
        let format = FormatOptions::new(self.name.clone()).precision(3);
        self.state.update(item.value, 1, format)
    }

    fn clear(&mut self) {
        self.state.reset()
    }
}

impl Numeric for RegularizerMetric {
    fn value(&self) -> NumericEntry {
        self.state.current_value()
    }

    fn running_value(&self) -> NumericEntry {
        self.state.running_value()
    }
}
