//! Batched generation with a KV cache or a recurrent state ([`LanguageModel`]): left-padded
//! prompts prefilled together, greedy or
//! temperature / top-p sampling on the device, stopping at EOS or after `max_new_tokens`. Each
//! step moves only the new token ids to the host.

use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Int, Tensor, TensorData, backend::Backend};
use rand::{Rng, SeedableRng, rngs::StdRng};

use super::language_model::LanguageModel;
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
pub fn generate<B: Backend, M: LanguageModel<B>>(
    model: &M,
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
    let vocab = model.vocab_size();
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
    let device = model.device();
    let batch = prompts.len();
    let width = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let capacity = width + options.max_new_tokens;
    // Left padding: every row's last prompt token sits in the same column. The key mask covers
    // every column generation can reach (new tokens are always real keys).
    let mut ids = Vec::with_capacity(batch * width);
    let mut key_mask = Vec::with_capacity(batch * capacity);
    let mut positions = Vec::with_capacity(batch * width);
    for prompt in prompts {
        let pad = width - prompt.len();
        ids.extend(std::iter::repeat_n(i64::from(options.pad_token_id), pad));
        ids.extend(prompt.iter().map(|&t| i64::from(t)));
        key_mask.extend(std::iter::repeat_n(0, pad));
        key_mask.extend(std::iter::repeat_n(1, capacity - pad));
        positions.extend(std::iter::repeat_n(0, pad));
        positions.extend(0..prompt.len() as i64);
    }
    let int = |values: Vec<i64>, shape: [usize; 2]| {
        Tensor::<B, 2, Int>::from_data(TensorData::new(values, shape), &device)
    };
    let key_mask = int(key_mask, [batch, capacity]);
    let lengths: Vec<i64> = prompts.iter().map(|p| p.len() as i64).collect();
    let lengths = int(lengths, [batch, 1]);
    let mut step_ids = int(ids, [batch, width]);
    let mut step_positions = int(positions, [batch, width]);

    let mut draws = UniformDraws::new(options.seed);
    let mut cache = options.use_cache.then(|| model.new_cache(batch, capacity));
    // Without a cache every step re-runs the whole sequence so far.
    let mut sequence: Option<(Tensor<B, 2, Int>, Tensor<B, 2, Int>)> = None;
    let mut outputs: Vec<Vec<u32>> = vec![Vec::new(); batch];
    let mut done = vec![false; batch];
    let mut finished: Tensor<B, 1, Bool> = Tensor::<B, 1, Int>::zeros([batch], &device).bool();
    for step in 0..options.max_new_tokens {
        let (ids, pos) = match &sequence {
            Some((ids, pos)) => (ids.clone(), pos.clone()),
            None => (step_ids.clone(), step_positions.clone()),
        };
        let total = width + step;
        let mask = key_mask.clone().slice([0..batch, 0..total]);
        let logits = model.next_logits(ids, mask, pos, cache.as_mut());
        let uniform = (options.temperature > 0.0).then(|| {
            Tensor::<B, 1>::from_data(TensorData::new(draws.next(batch), [batch]), &device)
        });
        // Finished rows are fed padding; the new ids are the step's only host transfer.
        let next = select_tokens(logits, options, uniform)
            .mask_fill(finished.clone(), i64::from(options.pad_token_id));
        let host: Vec<i64> = next
            .clone()
            .into_data()
            .convert::<i64>()
            .to_vec()
            .map_err(|e| {
                Error::invalid(
                    "generation",
                    "token ids",
                    format!("could not be read: {e:?}"),
                )
            })?;
        for (row, &token) in host.iter().enumerate() {
            if !done[row] {
                let token = token as u32;
                outputs[row].push(token);
                done[row] = options.eos_token_ids.contains(&token);
            }
        }
        if done.iter().all(|d| *d) {
            break;
        }
        for &eos in &options.eos_token_ids {
            finished = finished.bool_or(next.clone().equal_elem(i64::from(eos)));
        }
        let next = next.reshape([batch, 1]);
        let next_pos = lengths.clone().add_scalar(step as i64);
        if options.use_cache {
            step_ids = next;
            step_positions = next_pos;
        } else {
            let (ids, pos) = sequence
                .take()
                .unwrap_or((step_ids.clone(), step_positions.clone()));
            sequence = Some((
                Tensor::cat(vec![ids, next], 1),
                Tensor::cat(vec![pos, next_pos], 1),
            ));
        }
    }
    Ok(outputs)
}

/// The U[0, 1) draws of sampled generation: a `StdRng` seeded with the options' seed gives one
/// draw per row at each step, in row order. Public so that a sampled generation can be replayed
/// against a reference sampler.
pub struct UniformDraws(StdRng);

impl UniformDraws {
    pub fn new(seed: u64) -> Self {
        Self(StdRng::seed_from_u64(seed))
    }

    /// The next step's draws, one per row.
    pub fn next(&mut self, batch: usize) -> Vec<f32> {
        (0..batch).map(|_| self.0.random::<f32>()).collect()
    }
}

/// Greedy (first maximum, as `torch.argmax`) or temperature / top-p sampling of one token per
/// row of `logits: [batch, vocab]`, on the device. `uniform` holds one U[0, 1) draw per row.
fn select_tokens<B: Backend>(
    logits: Tensor<B, 2>,
    options: &GenerationOptions,
    uniform: Option<Tensor<B, 1>>,
) -> Tensor<B, 1, Int> {
    let [batch, vocab] = logits.dims();
    let Some(uniform) = uniform else {
        return logits.argmax(1).reshape([batch]);
    };
    let probs = softmax(logits.div_scalar(options.temperature), 1);
    let kept = if options.top_p < 1.0 {
        let threshold = nucleus_threshold(probs.clone(), options.top_p).expand([batch, vocab]);
        probs.clone().mask_fill(probs.lower(threshold), 0.0)
    } else {
        probs
    };
    // Inverse-CDF sampling over the kept tokens in vocabulary order: the first token whose
    // cumulative mass exceeds the draw (never past the last kept token).
    let cumulative = kept.clone().cumsum(1);
    let total = cumulative.clone().slice([0..batch, vocab - 1..vocab]);
    let draw = (uniform.reshape([batch, 1]) * total).expand([batch, vocab]);
    let index = cumulative.lower_equal(draw).int().sum_dim(1);
    let last_kept = Tensor::<B, 1, Int>::arange(0..vocab as i64, &kept.device())
        .reshape([1, vocab])
        .expand([batch, vocab])
        .mask_fill(kept.equal_elem(0.0), 0)
        .max_dim(1);
    index.min_pair(last_kept).reshape([batch])
}

/// Per row, the largest probability τ whose tokens `p ≥ τ` hold at least `top_p` of the mass
/// (`[batch, 1]`): the nucleus is the most probable tokens until their mass reaches `top_p`.
/// Found by bisection (32 halvings of [0, max p]) rather than a sort, which Burn's GPU backends
/// would run on the host.
fn nucleus_threshold<B: Backend>(probs: Tensor<B, 2>, top_p: f32) -> Tensor<B, 2> {
    let [batch, vocab] = probs.dims();
    let mut high = probs.clone().max_dim(1);
    let mut low = high.zeros_like();
    for _ in 0..32 {
        let middle = (low.clone() + high.clone()).div_scalar(2.0);
        let kept = probs
            .clone()
            .greater_equal(middle.clone().expand([batch, vocab]));
        let mass = probs.clone().mask_fill(kept.bool_not(), 0.0).sum_dim(1);
        let enough = mass.greater_equal_elem(top_p);
        low = low.mask_where(enough.clone(), middle.clone());
        high = high.mask_where(enough.bool_not(), middle);
    }
    low
}
