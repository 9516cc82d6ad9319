//! Completing evaluation prompts with a causal LM: batched greedy decoding (left-padded, KV
//! cache) as METHODS.md prescribes, with prompts sorted by length so that a batch pads little.

use burn::tensor::backend::Backend;

use super::progress::Progress;
use crate::Result;
use crate::model::LanguageModel;
use crate::model::generate::{GenerationOptions, generate};
use crate::model::tokenizer::TextTokenizer;

/// The completions of a set of prompts, in prompt order.
pub struct Completions {
    pub texts: Vec<String>,
    /// New tokens generated (EOS included).
    pub new_tokens: usize,
    /// Time spent generating.
    pub seconds: f64,
}

/// Greedy decoding options for `model`: stop at the model's or the tokenizer's EOS.
pub fn greedy_options<B: Backend, M: LanguageModel<B>>(
    model: &M,
    tokenizer: &TextTokenizer,
    max_new_tokens: usize,
) -> GenerationOptions {
    let mut eos_token_ids = model.eos_token_ids().to_vec();
    eos_token_ids.extend(tokenizer.eos_token_id);
    GenerationOptions {
        max_new_tokens,
        temperature: 0.0,
        eos_token_ids,
        pad_token_id: model.pad_token_id().or(tokenizer.pad_token_id).unwrap_or(0),
        ..GenerationOptions::default()
    }
}

/// Completes every prompt (BOS added by the tokenizer), `batch_size` at a time.
pub fn complete<B: Backend, M: LanguageModel<B>>(
    model: &M,
    tokenizer: &TextTokenizer,
    prompts: &[String],
    batch_size: usize,
    max_new_tokens: usize,
    progress: &Progress,
) -> Result<Completions> {
    complete_with(
        model,
        tokenizer,
        prompts,
        true,
        batch_size,
        max_new_tokens,
        progress,
    )
}

/// As [`complete`]; `special_tokens` false encodes prompts as they are (chat-template prompts,
/// which carry their own BOS).
pub fn complete_with<B: Backend, M: LanguageModel<B>>(
    model: &M,
    tokenizer: &TextTokenizer,
    prompts: &[String],
    special_tokens: bool,
    batch_size: usize,
    max_new_tokens: usize,
    progress: &Progress,
) -> Result<Completions> {
    let encoded = prompts
        .iter()
        .map(|p| tokenizer.encode(p, special_tokens))
        .collect::<Result<Vec<_>>>()?;
    let options = greedy_options(model, tokenizer, max_new_tokens);
    // Longest first: the first batch shows the worst memory use and keeps the ETA honest.
    let mut order: Vec<usize> = (0..encoded.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(encoded[i].len()));
    let mut texts = vec![String::new(); prompts.len()];
    let mut new_tokens = 0;
    let started = std::time::Instant::now();
    for chunk in order.chunks(batch_size.max(1)) {
        let batch: Vec<Vec<u32>> = chunk.iter().map(|&i| encoded[i].clone()).collect();
        let outputs = generate(model, &batch, &options)?;
        let mut batch_tokens = 0;
        for (&i, output) in chunk.iter().zip(&outputs) {
            texts[i] = tokenizer.decode(output)?;
            batch_tokens += output.len();
        }
        new_tokens += batch_tokens;
        progress.advance(chunk.len(), batch_tokens);
    }
    Ok(Completions {
        texts,
        new_tokens,
        seconds: started.elapsed().as_secs_f64(),
    })
}
