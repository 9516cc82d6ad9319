//! What training, generation and evaluation need of a causal language model, whatever carries
//! its past: the Llama-family [`Decoder`] (a KV cache) or [`Rwkv6`] (a recurrent state).

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use super::PeftModel;
use super::decoder::{Decoder, KvCache};
use super::rwkv6::{Rwkv6, Rwkv6State};

/// A causal LM with adapter slots.
pub trait LanguageModel<B: Backend>: PeftModel<B> {
    /// What generation carries from one step to the next.
    type Cache;

    /// The architecture, as config.json names it (`llama`, `rwkv6`, …).
    fn architecture(&self) -> String;
    fn vocab_size(&self) -> usize;
    /// Tokens that end a generation (config.json / generation_config.json).
    fn eos_token_ids(&self) -> &[u32];
    fn pad_token_id(&self) -> Option<u32>;
    /// The longest input the model's positions cover, if it has a limit.
    fn max_positions(&self) -> Option<usize>;
    fn device(&self) -> B::Device;

    /// Logits `[batch, seq, vocab]` of a right-padded batch (`attention_mask` 1 = real token).
    fn logits(
        &self,
        input_ids: Tensor<B, 2, Int>,
        attention_mask: Option<Tensor<B, 2, Int>>,
    ) -> Tensor<B, 3>;

    /// An empty cache for `batch` rows of up to `capacity` tokens.
    fn new_cache(&self, batch: usize, capacity: usize) -> Self::Cache;

    /// Logits `[batch, vocab]` after the last of `input_ids` (`[batch, seq]`, continuing what
    /// `cache` holds; without a cache, the whole sequence). `key_mask` is `[batch, past + seq]`
    /// (1 = real token, left padding), `positions` `[batch, seq]`.
    fn next_logits(
        &self,
        input_ids: Tensor<B, 2, Int>,
        key_mask: Tensor<B, 2, Int>,
        positions: Tensor<B, 2, Int>,
        cache: Option<&mut Self::Cache>,
    ) -> Tensor<B, 2>;
}

impl<B: Backend> LanguageModel<B> for Decoder<B> {
    type Cache = KvCache<B>;

    fn architecture(&self) -> String {
        format!("{:?}", self.config.model_type).to_lowercase()
    }

    fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }

    fn eos_token_ids(&self) -> &[u32] {
        &self.config.eos_token_ids
    }

    fn pad_token_id(&self) -> Option<u32> {
        self.config.pad_token_id
    }

    fn max_positions(&self) -> Option<usize> {
        Some(self.config.max_position_embeddings)
    }

    fn device(&self) -> B::Device {
        self.embed_tokens.weight.device()
    }

    fn logits(
        &self,
        input_ids: Tensor<B, 2, Int>,
        attention_mask: Option<Tensor<B, 2, Int>>,
    ) -> Tensor<B, 3> {
        self.forward(input_ids, attention_mask)
    }

    fn new_cache(&self, _batch: usize, capacity: usize) -> KvCache<B> {
        KvCache::new(self.layers.len(), capacity)
    }

    fn next_logits(
        &self,
        input_ids: Tensor<B, 2, Int>,
        key_mask: Tensor<B, 2, Int>,
        positions: Tensor<B, 2, Int>,
        cache: Option<&mut KvCache<B>>,
    ) -> Tensor<B, 2> {
        let hidden = self.hidden_states(input_ids, Some(key_mask), positions, cache);
        let [b, s, h] = hidden.dims();
        self.lm_logits(hidden.slice([0..b, s - 1..s, 0..h]))
            .reshape([b, self.config.vocab_size])
    }
}

impl<B: Backend> LanguageModel<B> for Rwkv6<B> {
    /// The state after the tokens so far (`None` before the first step).
    type Cache = Option<Rwkv6State<B>>;

    fn architecture(&self) -> String {
        "rwkv6".into()
    }

    fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }

    fn eos_token_ids(&self) -> &[u32] {
        &self.config.eos_token_ids
    }

    fn pad_token_id(&self) -> Option<u32> {
        self.config.pad_token_id
    }

    fn max_positions(&self) -> Option<usize> {
        None
    }

    fn device(&self) -> B::Device {
        self.embeddings.weight.device()
    }

    fn logits(
        &self,
        input_ids: Tensor<B, 2, Int>,
        attention_mask: Option<Tensor<B, 2, Int>>,
    ) -> Tensor<B, 3> {
        self.forward(input_ids, attention_mask)
    }

    fn new_cache(&self, _batch: usize, _capacity: usize) -> Self::Cache {
        None
    }

    fn next_logits(
        &self,
        input_ids: Tensor<B, 2, Int>,
        key_mask: Tensor<B, 2, Int>,
        _positions: Tensor<B, 2, Int>,
        mut cache: Option<&mut Self::Cache>,
    ) -> Tensor<B, 2> {
        let [b, s] = input_ids.dims();
        let total = key_mask.dims()[1];
        // The mask of the new tokens only: the state stands for everything before them.
        let mask = key_mask.slice([0..b, total - s..total]);
        let previous = cache.as_mut().and_then(|c| c.take());
        let (logits, state) = self.forward_with_state(input_ids, Some(mask), previous);
        if let Some(cache) = cache {
            *cache = Some(state);
        }
        let vocab = self.config.vocab_size;
        logits.slice([0..b, s - 1..s, 0..vocab]).reshape([b, vocab])
    }
}
