//! Batched generation with a KV cache: left-padded prompts, greedy or temperature / top-p
//! sampling, stopping at EOS or after `max_new_tokens`.

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use rand::{Rng, SeedableRng, rngs::StdRng};

use super::decoder::{Decoder, KvCache};
use crate::linalg::tensor_to_vec;
use crate::{Error, Result};

/// How to generate.
#[derive(Debug, Clone)]
pub struct GenerationOptions {
    pub max_new_tokens: usize,
    /// 0 selects greedy decoding.
    pub temperature: f32,
    /// Nucleus sampling mass (1 keeps the whole distribution).
    pub top_p: f32,
    pub seed: u64,
    /// Reuse past keys/values (`false` recomputes the whole sequence each step, for checking).
    pub use_cache: bool,
    /// Tokens that end a sequence (emitted, then the row stops).
    pub eos_token_ids: Vec<u32>,
    /// Token fed for padding and after a row has finished.
    pub pad_token_id: u32,
}

impl Default for GenerationOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 128,
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
            use_cache: true,
            eos_token_ids: Vec::new(),
            pad_token_id: 0,
        }
    }
}

/// Generates a continuation for each prompt; returns the new tokens of each (with the EOS that
/// ended it, if any).
pub fn generate<B: Backend>(
    model: &Decoder<B>,
    prompts: &[Vec<u32>],
    options: &GenerationOptions,
) -> Result<Vec<Vec<u32>>> {
    if prompts.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(i) = prompts.iter().position(|p| p.is_empty()) {
        return Err(Error::invalid(
            "prompt",
            i,
            "is empty; start it with at least a BOS token",
        ));
    }
    // An id past the vocabulary would fail inside the embedding lookup.
    let vocab = model.config.vocab_size;
    if let Some((i, id)) = prompts
        .iter()
        .enumerate()
        .find_map(|(i, p)| p.iter().find(|&&id| id as usize >= vocab).map(|id| (i, id)))
    {
        return Err(Error::invalid(
            "prompt",
            i,
            format!(
                "has token id {id}, outside the model's vocabulary of {vocab}: is the tokenizer \
                 the model's?"
            ),
        ));
    }
    if options.pad_token_id as usize >= vocab {
        return Err(Error::invalid(
            "pad_token_id",
            options.pad_token_id,
            format!("outside the model's vocabulary of {vocab}"),
        ));
    }
    if !(options.temperature >= 0.0 && options.top_p > 0.0 && options.top_p <= 1.0) {
        return Err(Error::invalid(
            "sampling",
            format!(
                "temperature {} top_p {}",
                options.temperature, options.top_p
            ),
            "temperature must be >= 0 and top_p in (0, 1]",
        ));
    }
    let device = model.embed_tokens.weight.device();
    let batch = prompts.len();
    let width = prompts.iter().map(Vec::len).max().unwrap_or(0);
    // Left padding: every row's last prompt token sits in the same column.
    let mut tokens: Vec<Vec<i64>> = Vec::with_capacity(batch);
    let mut mask: Vec<Vec<i64>> = Vec::with_capacity(batch);
    let mut positions: Vec<Vec<i64>> = Vec::with_capacity(batch);
    for prompt in prompts {
        let pad = width - prompt.len();
        let mut row = vec![i64::from(options.pad_token_id); pad];
        row.extend(prompt.iter().map(|&t| i64::from(t)));
        tokens.push(row);
        let mut m = vec![0; pad];
        m.extend(std::iter::repeat_n(1, prompt.len()));
        mask.push(m);
        let mut p = vec![0; pad];
        p.extend(0..prompt.len() as i64);
        positions.push(p);
    }

    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut cache = options.use_cache.then(|| KvCache::new(model.layers.len()));
    let mut outputs: Vec<Vec<u32>> = vec![Vec::new(); batch];
    let mut done = vec![false; batch];
    let mut step_tokens = tokens.clone();
    let mut step_positions = positions.clone();
    for _ in 0..options.max_new_tokens {
        let ids = int_tensor::<B>(&step_tokens, &device);
        let pos = int_tensor::<B>(&step_positions, &device);
        let key_mask = int_tensor::<B>(&mask, &device);
        let hidden = model.hidden_states(ids, Some(key_mask), pos, cache.as_mut());
        let [b, s, h] = hidden.dims();
        let last = hidden.slice([0..b, s - 1..s, 0..h]);
        let logits = tensor_to_vec(model.lm_logits(last));
        let vocab = logits.len() / batch;
        for row in 0..batch {
            let next = if done[row] {
                options.pad_token_id
            } else {
                let token =
                    select_token(&logits[row * vocab..(row + 1) * vocab], options, &mut rng);
                outputs[row].push(token);
                done[row] = options.eos_token_ids.contains(&token);
                token
            };
            tokens[row].push(i64::from(next));
            mask[row].push(1);
            let next_pos = positions[row].last().copied().unwrap_or(-1) + 1;
            positions[row].push(next_pos);
        }
        if done.iter().all(|d| *d) {
            break;
        }
        if cache.is_some() {
            step_tokens = tokens
                .iter()
                .map(|r| vec![*r.last().expect("non-empty")])
                .collect();
            step_positions = positions
                .iter()
                .map(|r| vec![*r.last().expect("non-empty")])
                .collect();
        } else {
            step_tokens = tokens.clone();
            step_positions = positions.clone();
        }
    }
    Ok(outputs)
}

fn int_tensor<B: Backend>(rows: &[Vec<i64>], device: &B::Device) -> Tensor<B, 2, Int> {
    let width = rows.first().map(Vec::len).unwrap_or(0);
    let flat: Vec<i64> = rows.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), width]), device)
}

/// Greedy (first maximum, as `torch.argmax`) or temperature / top-p sampling.
fn select_token(logits: &[f32], options: &GenerationOptions, rng: &mut StdRng) -> u32 {
    if options.temperature == 0.0 {
        let mut best = 0;
        for (i, &v) in logits.iter().enumerate() {
            if v > logits[best] {
                best = i;
            }
        }
        return best as u32;
    }
    let scaled: Vec<f64> = logits
        .iter()
        .map(|&v| f64::from(v) / f64::from(options.temperature))
        .collect();
    let max = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut probs: Vec<(usize, f64)> = scaled
        .iter()
        .map(|&v| (v - max).exp())
        .enumerate()
        .collect();
    let total: f64 = probs.iter().map(|p| p.1).sum();
    probs.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut kept = Vec::new();
    let mut mass = 0.0;
    for (i, p) in probs {
        kept.push((i, p / total));
        mass += p / total;
        if mass >= f64::from(options.top_p) {
            break;
        }
    }
    let mut draw = rng.random::<f64>() * mass;
    for &(i, p) in &kept {
        if draw < p {
            return i as u32;
        }
        draw -= p;
    }
    kept.last().map(|k| k.0 as u32).unwrap_or(0)
}
