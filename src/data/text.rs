//! Plain-text data for language modelling.
//!
//! A document is a paragraph: a run of non-blank lines, documents separated by one or more blank
//! lines (so multi-line stories stay whole; a file with one document per line works too when
//! its lines are separated by blank lines). The lines of a document are joined with `\n`.
//!
//! Each document is encoded as BOS + text + EOS (when the tokenizer has those tokens), the
//! documents are concatenated in file order and the stream is cut into windows of `max_length`
//! tokens, as transformers' `run_clm` `group_texts` packs them: no padding is wasted and a window
//! may span a document boundary, which EOS/BOS mark. Unlike `group_texts`, the last, shorter
//! window is kept (the batcher pads it) unless it is a single token, which has nothing to
//! predict. Every token is a target.

use std::path::Path;

use super::example::TokenizedExample;
use super::source::{bad_file, numbered_lines, read_text};
use crate::model::tokenizer::TextTokenizer;
use crate::{Error, Result};

/// The blank-line-separated documents of `path`, in order.
pub fn load_documents(path: &Path) -> Result<Vec<String>> {
    let text = read_text(path)?;
    let mut documents = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for (_, line) in numbered_lines(&text) {
        if line.trim().is_empty() {
            if !current.is_empty() {
                documents.push(current.join("\n"));
                current.clear();
            }
        } else {
            current.push(line);
        }
    }
    if !current.is_empty() {
        documents.push(current.join("\n"));
    }
    if documents.is_empty() {
        return Err(bad_file(path, "contains no text"));
    }
    Ok(documents)
}

/// The documents packed into windows of at most `max_length` tokens (see the module docs).
pub fn chunk_documents(
    tokenizer: &TextTokenizer,
    documents: &[String],
    max_length: usize,
) -> Result<Vec<TokenizedExample>> {
    if max_length < 2 {
        return Err(Error::invalid(
            "max_length",
            max_length,
            "a window needs at least 2 tokens: one to predict and one to predict it from",
        ));
    }
    let mut stream = Vec::new();
    for document in documents {
        stream.extend(tokenizer.encode_with_bos(document)?);
        stream.extend(tokenizer.eos_token_id);
    }
    Ok(stream
        .chunks(max_length)
        .filter(|window| window.len() >= 2)
        .map(|window| TokenizedExample::all_targets(window.to_vec()))
        .collect())
}
