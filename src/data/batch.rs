//! Burn batchers: tokenized examples to right-padded tensors.
//!
//! Rows are padded on the right to the longest row of the batch (not to a fixed length, so short
//! batches cost less). Padding positions get `pad_token_id` as input, 0 in `attention_mask` and
//! −100 as label, so they are neither attended to nor counted in the loss. Right padding suits
//! training; generation pads on the left and lives in `model::generate`.

use burn::data::dataloader::batcher::Batcher;
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

use super::classification::ClassificationExample;
use super::example::TokenizedExample;
use super::glue::GlueLabel;
use crate::model::loss::IGNORE_INDEX;

/// A causal-LM batch; all tensors are `[batch, seq]`.
#[derive(Clone, Debug)]
pub struct LmBatch<B: Backend> {
    pub input_ids: Tensor<B, 2, Int>,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Tensor<B, 2, Int>,
    /// Aligned with `input_ids` (the loss shifts them); −100 on prompt and padding.
    pub labels: Tensor<B, 2, Int>,
    /// Labels that are not −100, counted on the host (for averaging over accumulated batches
    /// without reading the tensor back).
    pub num_targets: usize,
}

/// Batches [`TokenizedExample`]s into an [`LmBatch`].
#[derive(Clone, Copy, Debug)]
pub struct LmBatcher {
    pub pad_token_id: u32,
}

impl<B: Backend> Batcher<B, TokenizedExample, LmBatch<B>> for LmBatcher {
    fn batch(&self, items: Vec<TokenizedExample>, device: &B::Device) -> LmBatch<B> {
        let width = items.iter().map(|e| e.input_ids.len()).max().unwrap_or(0);
        let pad = i64::from(self.pad_token_id);
        LmBatch {
            input_ids: padded(&items, width, pad, |e| ids(&e.input_ids), device),
            attention_mask: padded(&items, width, 0, |e| ones(e.input_ids.len()), device),
            labels: padded(&items, width, IGNORE_INDEX, |e| e.labels.clone(), device),
            num_targets: items.iter().map(TokenizedExample::target_count).sum(),
        }
    }
}

/// Targets of a classification batch.
#[derive(Clone, Debug)]
pub enum ClassificationTargets<B: Backend> {
    /// Class indices `[batch]` (cross-entropy).
    Classes(Tensor<B, 1, Int>),
    /// Scores `[batch]` (regression, mean-squared error).
    Scores(Tensor<B, 1>),
}

/// A sequence-classification batch; inputs are `[batch, seq]`.
#[derive(Clone, Debug)]
pub struct ClassificationBatch<B: Backend> {
    pub input_ids: Tensor<B, 2, Int>,
    pub attention_mask: Tensor<B, 2, Int>,
    /// Segment ids (0 on padding).
    pub token_type_ids: Tensor<B, 2, Int>,
    pub targets: ClassificationTargets<B>,
}

/// Batches [`ClassificationExample`]s into a [`ClassificationBatch`]. A batch whose labels are
/// all classes gets [`ClassificationTargets::Classes`]; one with any score (STS-B) gets
/// [`ClassificationTargets::Scores`], class indices converted to floats.
#[derive(Clone, Copy, Debug)]
pub struct ClassificationBatcher {
    pub pad_token_id: u32,
}

impl<B: Backend> Batcher<B, ClassificationExample, ClassificationBatch<B>>
    for ClassificationBatcher
{
    fn batch(
        &self,
        items: Vec<ClassificationExample>,
        device: &B::Device,
    ) -> ClassificationBatch<B> {
        let width = items.iter().map(|e| e.input_ids.len()).max().unwrap_or(0);
        let pad = i64::from(self.pad_token_id);
        let classes: Option<Vec<i64>> = items
            .iter()
            .map(|e| match e.label {
                GlueLabel::Class(c) => Some(c as i64),
                GlueLabel::Score(_) => None,
            })
            .collect();
        let targets = match classes {
            Some(classes) => {
                let n = classes.len();
                ClassificationTargets::Classes(Tensor::from_data(
                    TensorData::new(classes, [n]),
                    device,
                ))
            }
            None => {
                let scores: Vec<f32> = items
                    .iter()
                    .map(|e| match e.label {
                        GlueLabel::Class(c) => c as f32,
                        GlueLabel::Score(s) => s,
                    })
                    .collect();
                let n = scores.len();
                ClassificationTargets::Scores(Tensor::from_data(
                    TensorData::new(scores, [n]),
                    device,
                ))
            }
        };
        ClassificationBatch {
            input_ids: padded(&items, width, pad, |e| ids(&e.input_ids), device),
            attention_mask: padded(&items, width, 0, |e| ones(e.input_ids.len()), device),
            token_type_ids: padded(&items, width, 0, |e| ids(&e.token_type_ids), device),
            targets,
        }
    }
}

fn ids(values: &[u32]) -> Vec<i64> {
    values.iter().map(|&v| i64::from(v)).collect()
}

fn ones(len: usize) -> Vec<i64> {
    vec![1; len]
}

/// `[items.len(), width]` of `row(item)` for each item, right-padded with `fill`.
fn padded<T, B: Backend>(
    items: &[T],
    width: usize,
    fill: i64,
    row: impl Fn(&T) -> Vec<i64>,
    device: &B::Device,
) -> Tensor<B, 2, Int> {
    let mut flat = Vec::with_capacity(items.len() * width);
    for item in items {
        let mut values = row(item);
        values.resize(width, fill);
        flat.extend(values);
    }
    Tensor::from_data(TensorData::new(flat, [items.len(), width]), device)
}
