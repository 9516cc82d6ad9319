//! Sentence and sentence-pair examples to token ids for sequence classification (GLUE on
//! BERT/RoBERTa), as `tokenizer(a, b, truncation=True, max_length=n)` does in transformers.
//!
//! This works on the `tokenizers` crate's `Tokenizer` directly because pairs need its pair
//! template (BERT `[CLS] A [SEP] B [SEP]` with segment ids 0/1, RoBERTa `<s> A </s></s> B </s>`).
//! Truncation is longest-first over the two sentences, leaving room for the special tokens.
//!
//! A tokenizer whose template puts nothing between the two sentences (a post-processor that adds
//! no more tokens for a pair than for one sentence, or none at all, as some decoder tokenizers
//! have) would run them together; for those the pair is joined as text, `a + "\n" + b`
//! ([`PAIR_SEPARATOR`]), and encoded and truncated as one sentence.

use tokenizers::{PaddingParams, PostProcessor, Tokenizer, TruncationParams};

use super::glue::{GlueExample, GlueLabel};
use crate::{Error, Result};

/// The text placed between two sentences when the tokenizer has no pair template.
pub const PAIR_SEPARATOR: &str = "\n";

/// One tokenized classification example.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassificationExample {
    pub input_ids: Vec<u32>,
    /// Segment ids from the tokenizer's template (0 for the first sentence, 1 for the second
    /// with BERT; all 0 with RoBERTa).
    pub token_type_ids: Vec<u32>,
    pub label: GlueLabel,
}

/// Encodes sentences and pairs to at most `max_length` tokens, special tokens included.
pub struct PairEncoder {
    tokenizer: Tokenizer,
    /// The tokenizer has no usable pair template: join pairs as text.
    join_pairs: bool,
}

impl PairEncoder {
    /// A copy of `tokenizer` set to truncate (longest first, from the right) to `max_length`
    /// and not to pad (padding is the batcher's job, whatever tokenizer.json says).
    pub fn new(tokenizer: &Tokenizer, max_length: usize) -> Result<Self> {
        let added = |pair| {
            tokenizer
                .get_post_processor()
                .map_or(0, |p| p.added_tokens(pair))
        };
        let (single, pair) = (added(false), added(true));
        if max_length <= single.max(pair) {
            return Err(Error::invalid(
                "max_length",
                max_length,
                format!(
                    "must exceed the {} special tokens the tokenizer adds",
                    single.max(pair)
                ),
            ));
        }
        let mut tokenizer = tokenizer.clone();
        tokenizer.with_padding(None::<PaddingParams>);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length,
                ..TruncationParams::default()
            }))
            .map_err(|e| Error::invalid("max_length", max_length, e.to_string()))?;
        Ok(Self {
            tokenizer,
            join_pairs: pair <= single,
        })
    }

    /// Token ids and segment ids of `a` (and `b`).
    pub fn encode(&self, a: &str, b: Option<&str>) -> Result<(Vec<u32>, Vec<u32>)> {
        let encoded = match b {
            Some(b) if self.join_pairs => self
                .tokenizer
                .encode(format!("{a}{PAIR_SEPARATOR}{b}"), true),
            Some(b) => self.tokenizer.encode((a, b), true),
            None => self.tokenizer.encode(a, true),
        }
        .map_err(|e| Error::invalid("text", a, format!("cannot encode: {e}")))?;
        Ok((encoded.get_ids().to_vec(), encoded.get_type_ids().to_vec()))
    }

    /// One GLUE example.
    pub fn tokenize(&self, example: &GlueExample) -> Result<ClassificationExample> {
        let (input_ids, token_type_ids) =
            self.encode(&example.text_a, example.text_b.as_deref())?;
        Ok(ClassificationExample {
            input_ids,
            token_type_ids,
            label: example.label,
        })
    }

    /// Every example, in order.
    pub fn tokenize_all(&self, examples: &[GlueExample]) -> Result<Vec<ClassificationExample>> {
        examples.iter().map(|e| self.tokenize(e)).collect()
    }
}
