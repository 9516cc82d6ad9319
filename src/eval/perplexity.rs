//! Perplexity of a causal LM over a file: the mean next-token negative log-likelihood over every
//! predicted token (as transformers' loss on one batch: token-weighted, not a mean of per-row
//! means), and its exponential.
//!
//! Inputs: a `.jsonl` file whose rows are `{"input_ids": [...]}` (optionally with
//! `"attention_mask"`, 0 for padding that is neither attended to nor scored) or
//! `{"text": "..."}` (one document each); or any other file as plain text, documents separated
//! by blank lines. Text is packed into windows of at most `max_length` tokens as for training
//! ([`crate::data::text`]: BOS + document + EOS, concatenated).

use std::path::Path;

use burn::tensor::{ElementConversion, Int, Tensor, TensorData, backend::Backend};
use serde::Deserialize;

use super::jsonl;
use super::progress::Progress;
use crate::data::text::{chunk_documents, load_documents};
use crate::model::LanguageModel;
use crate::model::loss::{causal_lm_loss, lm_labels};
use crate::model::tokenizer::TextTokenizer;
use crate::{Error, Result};

/// One scored sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Sequence {
    pub input_ids: Vec<u32>,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Vec<u8>,
}

#[derive(Deserialize)]
struct Row {
    #[serde(default)]
    input_ids: Option<Vec<u32>>,
    #[serde(default)]
    attention_mask: Option<Vec<u8>>,
    #[serde(default)]
    text: Option<String>,
}

/// Reads sequences from `path` (see the module docs). `tokenizer` is needed only for text.
pub fn read_sequences(
    path: &Path,
    tokenizer: Option<&TextTokenizer>,
    max_length: usize,
) -> Result<Vec<Sequence>> {
    let need_tokenizer = || {
        tokenizer.ok_or_else(|| Error::BadFile {
            path: path.to_path_buf(),
            message: "holds text, but no tokenizer.json was found for the model".into(),
        })
    };
    let mut sequences = Vec::new();
    if path.extension().is_some_and(|e| e == "jsonl") {
        let mut documents = Vec::new();
        for jsonl::Line { line, row } in jsonl::read::<Row>(path)? {
            match (row.input_ids, row.text) {
                (Some(ids), None) => {
                    let mask = row.attention_mask.unwrap_or_else(|| vec![1; ids.len()]);
                    if mask.len() != ids.len() || mask.iter().any(|&m| m > 1) {
                        return Err(jsonl::bad_line(
                            path,
                            line,
                            "`attention_mask` must be 0/1 values, as many as `input_ids`",
                        ));
                    }
                    if ids.len() > max_length {
                        return Err(jsonl::bad_line(
                            path,
                            line,
                            format!("{} tokens, more than --max-length {max_length}", ids.len()),
                        ));
                    }
                    sequences.push(Sequence {
                        input_ids: ids,
                        attention_mask: mask,
                    });
                }
                (None, Some(text)) => documents.push(text),
                _ => {
                    return Err(jsonl::bad_line(
                        path,
                        line,
                        "expected exactly one of `input_ids` and `text`",
                    ));
                }
            }
        }
        if !documents.is_empty() {
            sequences.extend(packed(need_tokenizer()?, &documents, max_length)?);
        }
    } else {
        let documents = load_documents(path)?;
        sequences.extend(packed(need_tokenizer()?, &documents, max_length)?);
    }
    if sequences.iter().all(|s| scored_tokens(s) == 0) {
        return Err(Error::BadFile {
            path: path.to_path_buf(),
            message: "no sequence has two or more tokens: nothing to score".into(),
        });
    }
    Ok(sequences)
}

/// Documents packed into windows as for language-model training ([`chunk_documents`]).
fn packed(
    tokenizer: &TextTokenizer,
    documents: &[String],
    max_length: usize,
) -> Result<Vec<Sequence>> {
    Ok(chunk_documents(tokenizer, documents, max_length)?
        .into_iter()
        .map(|window| Sequence {
            attention_mask: vec![1; window.input_ids.len()],
            input_ids: window.input_ids,
        })
        .collect())
}

/// Positions whose label counts: real tokens after the first position.
pub fn scored_tokens(s: &Sequence) -> usize {
    s.attention_mask.iter().skip(1).filter(|&&m| m == 1).count()
}

/// Perplexity over a set of sequences.
#[derive(Debug, Clone)]
pub struct Perplexity {
    /// Mean negative log-likelihood per scored token (nats).
    pub nll: f64,
    pub perplexity: f64,
    /// Scored tokens.
    pub tokens: usize,
    /// Mean NLL of each sequence (NaN for one with nothing to score).
    pub per_sequence: Vec<f64>,
}

/// Scores `sequences` with `model`, `batch_size` rows at a time (rows right-padded with mask 0).
pub fn perplexity<B: Backend, M: LanguageModel<B>>(
    model: &M,
    sequences: &[Sequence],
    batch_size: usize,
    progress: &Progress,
) -> Result<Perplexity> {
    let vocab = model.vocab_size();
    if let Some((i, id)) = sequences.iter().enumerate().find_map(|(i, s)| {
        s.input_ids
            .iter()
            .find(|&&id| id as usize >= vocab)
            .map(|&id| (i, id))
    }) {
        return Err(Error::invalid(
            "input_ids",
            id,
            format!("sequence {i} has a token outside the model's vocabulary of {vocab}"),
        ));
    }
    let device = model.device();
    let mut total = 0.0f64;
    let mut tokens = 0usize;
    let mut per_sequence = Vec::with_capacity(sequences.len());
    for batch in sequences.chunks(batch_size.max(1)) {
        let width = batch.iter().map(|s| s.input_ids.len()).max().unwrap_or(0);
        let (mut ids, mut mask) = (Vec::new(), Vec::new());
        for s in batch {
            let pad = width - s.input_ids.len();
            ids.extend(s.input_ids.iter().map(|&t| i64::from(t)));
            ids.extend(std::iter::repeat_n(0i64, pad));
            mask.extend(s.attention_mask.iter().map(|&m| i64::from(m)));
            mask.extend(std::iter::repeat_n(0i64, pad));
        }
        let shape = [batch.len(), width];
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, shape), &device);
        let mask = Tensor::<B, 2, Int>::from_data(TensorData::new(mask, shape), &device);
        let labels = lm_labels(ids.clone(), Some(mask.clone()));
        let logits = model.logits(ids, Some(mask));
        let [_, _, v] = logits.dims();
        // One loss per row, so that each row's mean can be recorded; the total weights every
        // row by its scored tokens, which gives the batch loss exactly.
        for (row, s) in batch.iter().enumerate() {
            let count = scored_tokens(s);
            if count == 0 || width < 2 {
                per_sequence.push(f64::NAN);
                continue;
            }
            let row_logits = logits.clone().slice([row..row + 1, 0..width, 0..v]);
            let row_labels = labels.clone().slice([row..row + 1, 0..width]);
            let mean: f64 = causal_lm_loss(row_logits, row_labels)
                .into_scalar()
                .elem::<f64>();
            per_sequence.push(mean);
            total += mean * count as f64;
            tokens += count;
        }
        progress.advance(batch.len(), 0);
    }
    let nll = total / tokens.max(1) as f64;
    Ok(Perplexity {
        nll,
        perplexity: nll.exp(),
        tokens,
        per_sequence,
    })
}
