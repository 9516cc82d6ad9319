//! What every task does before its first step: the pad id, adapters
//! injected from `[adapter]` or loaded from `model.init_adapter` (whose identity is checked
//! first), and the checks that turn input the model cannot take into errors.

use std::path::Path;

use burn::tensor::backend::AutodiffBackend;

use super::identity::check_init_adapter;
use crate::adapter::AdapterConfig;
use crate::model::tokenizer::TextTokenizer;
use crate::model::{PeftLinear, PeftModel, inject_adapters};
use crate::persist::adapter::{InitialAdapters, SavedAdapterConfig, load_adapter};
use crate::{Error, Result};

/// The id batches are padded with, for every task: the model's own `pad_token_id`, else the
/// tokenizer's pad token, else its end-of-sequence token, else 0. (Padded positions are masked
/// out of attention and loss; RoBERTa also derives its position ids from it, which is why the
/// model's own comes first.)
pub(crate) fn pad_token_id(model: Option<u32>, tokenizer: &TextTokenizer) -> u32 {
    model
        .or(tokenizer.pad_token_id)
        .or(tokenizer.eos_token_id)
        .unwrap_or(0)
}

/// `model` with its adapters: from `init_adapter` when given (its configuration must be
/// `adapter`), else newly initialised from `adapter`; `modules_to_save` trainable either way.
/// Returns the model, its initial adapters and the number of adapted layers.
pub(crate) fn attach_adapters<B: AutodiffBackend, M: PeftModel<B>>(
    model: M,
    adapter: &AdapterConfig,
    init_adapter: Option<&Path>,
) -> Result<(M, InitialAdapters<B>, usize)> {
    let Some(dir) = init_adapter else {
        let (model, injection) = inject_adapters(model, adapter)?;
        let initial = InitialAdapters::of(&model);
        return Ok((model, initial, injection.adapted.len()));
    };
    let (saved, _) = SavedAdapterConfig::read(dir)?;
    check_init_adapter(adapter, &saved.burn_peft, dir)?;
    // Trainable factors, and the saved modules trainable as the (equal) config says.
    let (model, _, loaded_initial) = load_adapter(model, dir, true)?;
    let adapted = model
        .linears()
        .iter()
        .filter(|(_, slot)| matches!(slot, PeftLinear::Adapted(_)))
        .count();
    // Unsplit methods need no initial factors; for the others the file provides them.
    let initial = if loaded_initial.layers.is_empty() {
        InitialAdapters::of(&model)
    } else {
        loaded_initial
    };
    Ok((model, initial, adapted))
}

/// Every token id of the tokenized rows must index the model's vocabulary (an id past it
/// would fail inside the embedding lookup): the error names the tokenizer and the row.
pub(crate) fn check_vocabulary<'a>(
    rows: impl IntoIterator<Item = &'a [u32]>,
    vocab_size: usize,
    tokenizer: &Path,
    what: &str,
) -> Result<()> {
    for (i, ids) in rows.into_iter().enumerate() {
        if let Some(id) = ids.iter().find(|&&id| id as usize >= vocab_size) {
            return Err(Error::BadFile {
                path: tokenizer.to_path_buf(),
                message: format!(
                    "{what} row {i} has token id {id}, outside the model's vocabulary of \
                     {vocab_size}: is this the model's tokenizer (model.tokenizer)?"
                ),
            });
        }
    }
    Ok(())
}
