//! One causal-LM training example: token ids and their loss labels, as the instruction, chat and
//! plain-text pipelines all produce them and [`LmBatcher`](super::LmBatcher) pads them.

use crate::model::loss::IGNORE_INDEX;

/// One causal-LM training example: ids and labels of equal length, labels −100 where no loss is
/// taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenizedExample {
    pub input_ids: Vec<u32>,
    pub labels: Vec<i64>,
}

impl TokenizedExample {
    /// An example that is trained on every token (plain language modelling).
    pub fn all_targets(input_ids: Vec<u32>) -> Self {
        let labels = input_ids.iter().map(|&id| i64::from(id)).collect();
        Self { input_ids, labels }
    }

    /// Number of positions that carry a label.
    pub fn target_count(&self) -> usize {
        self.labels.iter().filter(|&&l| l != IGNORE_INDEX).count()
    }
}
