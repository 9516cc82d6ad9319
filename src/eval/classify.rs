//! Running a classification model over GLUE examples: the tokenizer's pair template and
//! longest-first truncation ([`PairEncoder`]), right-padded batches ([`ClassificationBatcher`]),
//! and the head's outputs per example. Encoders (BERT, RoBERTa) use their classifier; decoders
//! need a sequence-classification `score` head, which pools the last real token.

use std::path::Path;

use burn::data::dataloader::batcher::Batcher;
use burn::tensor::backend::Backend;

use super::progress::Progress;
use crate::data::batch::{ClassificationBatch, ClassificationBatcher};
use crate::data::classification::{ClassificationExample, PairEncoder};
use crate::data::glue::GlueExample;
use crate::linalg::tensor_to_vec;
use crate::model::any::AnyModel;
use crate::{Error, Result};

/// What the model accepts, checked before any forward pass (an out-of-range id would panic in
/// the embedding lookup).
struct Limits {
    vocab_size: usize,
    /// Segment types of the embedding; 1 or less: no segment ids are passed (RoBERTa).
    type_vocab_size: usize,
    max_length: usize,
    pad_token_id: u32,
}

/// The head's outputs for every example (`[examples][outputs]`), `batch_size` at a time.
/// `tokenizer` is a `tokenizer.json` or a folder holding one; inputs are truncated to
/// `max_length` tokens (or the model's positions, if fewer).
pub fn predict<B: Backend>(
    model: &AnyModel<B>,
    tokenizer: &Path,
    examples: &[GlueExample],
    num_outputs: usize,
    max_length: usize,
    batch_size: usize,
    progress: &Progress,
) -> Result<Vec<Vec<f32>>> {
    let limits = check_model(model, num_outputs)?;
    let tokenizer = crate::model::tokenizer::TextTokenizer::load(tokenizer)?;
    let file = tokenizer.path().to_path_buf();
    let tokenizer = tokenizer.hf()?;
    let encoder = PairEncoder::new(tokenizer, max_length.min(limits.max_length))?;
    let encoded = encoder.tokenize_all(examples)?;
    for (i, e) in encoded.iter().enumerate() {
        check_example(&limits, e, i, &file)?;
    }
    let batcher = ClassificationBatcher {
        pad_token_id: limits.pad_token_id,
    };
    let mut outputs = Vec::with_capacity(examples.len());
    for chunk in encoded.chunks(batch_size.max(1)) {
        let device = device(model);
        let batch: ClassificationBatch<B> = batcher.batch(chunk.to_vec(), &device);
        let logits = forward(model, batch, &limits)?;
        outputs.extend(logits.chunks(num_outputs).map(<[f32]>::to_vec));
        progress.advance(chunk.len(), 0);
    }
    Ok(outputs)
}

fn device<B: Backend>(model: &AnyModel<B>) -> B::Device {
    match model {
        AnyModel::Encoder(m) => m.embeddings.word.weight.device(),
        AnyModel::Decoder(m) => m.embed_tokens.weight.device(),
        AnyModel::Rwkv6(m) => m.embeddings.weight.device(),
    }
}

fn check_model<B: Backend>(model: &AnyModel<B>, num_outputs: usize) -> Result<Limits> {
    let (labels, limits) = match model {
        AnyModel::Rwkv6(_) => {
            return Err(Error::invalid(
                "model",
                "rwkv6",
                "GLUE needs a classification head: a BERT/RoBERTa classifier or a decoder with a \
                 `score` head (RWKV6 is evaluated on generation tasks)",
            ));
        }
        AnyModel::Encoder(m) => (
            m.config.num_labels,
            Limits {
                vocab_size: m.config.vocab_size,
                type_vocab_size: m.config.type_vocab_size,
                max_length: m.config.max_sequence_length(),
                pad_token_id: m.config.pad_token_id as u32,
            },
        ),
        AnyModel::Decoder(m) => {
            let labels = match (&m.score, m.config.num_labels) {
                (Some(_), Some(n)) => n,
                _ => {
                    return Err(Error::invalid(
                        "model",
                        "causal LM",
                        "GLUE needs a classification head: a BERT/RoBERTa classifier or a \
                         decoder with a `score` head",
                    ));
                }
            };
            (
                labels,
                Limits {
                    vocab_size: m.config.vocab_size,
                    type_vocab_size: 0,
                    max_length: m.config.max_position_embeddings,
                    pad_token_id: m.config.pad_token_id.unwrap_or(0),
                },
            )
        }
    };
    if labels != num_outputs {
        return Err(Error::invalid(
            "num_labels",
            labels,
            format!("this task needs a head with {num_outputs} output(s)"),
        ));
    }
    Ok(limits)
}

fn check_example(
    limits: &Limits,
    e: &ClassificationExample,
    index: usize,
    tokenizer: &Path,
) -> Result<()> {
    let problem = if e.input_ids.is_empty() {
        Some("encodes to no tokens".to_string())
    } else if let Some(id) = e
        .input_ids
        .iter()
        .find(|&&id| id as usize >= limits.vocab_size)
    {
        Some(format!(
            "has token id {id}, outside the model's vocabulary of {}",
            limits.vocab_size
        ))
    } else if limits.type_vocab_size > 1
        && let Some(t) = e
            .token_type_ids
            .iter()
            .find(|&&t| t as usize >= limits.type_vocab_size)
    {
        Some(format!(
            "has segment id {t}, outside the model's {} segment types",
            limits.type_vocab_size
        ))
    } else {
        None
    };
    match problem {
        Some(p) => Err(Error::BadFile {
            path: tokenizer.to_path_buf(),
            message: format!("example {index} {p} (is this the model's tokenizer?)"),
        }),
        None => Ok(()),
    }
}

/// Flat `[batch · outputs]` outputs of one batch.
fn forward<B: Backend>(
    model: &AnyModel<B>,
    batch: ClassificationBatch<B>,
    limits: &Limits,
) -> Result<Vec<f32>> {
    let logits = match model {
        AnyModel::Encoder(m) => {
            let types = (limits.type_vocab_size > 1).then_some(batch.token_type_ids);
            m.forward(batch.input_ids, batch.attention_mask, types)
        }
        AnyModel::Decoder(m) => m.classify(batch.input_ids, batch.attention_mask)?,
        AnyModel::Rwkv6(_) => unreachable!("check_model refuses RWKV6"),
    };
    Ok(tensor_to_vec(logits))
}
