//! Llama-family decoders: Llama 2/3, Mistral, Qwen2 and Gemma, as HF's `*ForCausalLM` (and
//! `*ForSequenceClassification` with a `score` head) compute them. The variants differ only in
//! configuration: Qwen2's q/k/v biases, Gemma's √hidden embedding scale, `(1 + w)` RMSNorm,
//! GeLU-tanh MLP and explicit head_dim, Llama 3's RoPE frequency scaling, Mistral's (and
//! Qwen2's optional) sliding-window attention.

use std::path::Path;

use burn::module::Module;
use burn::nn::Embedding;
use burn::tensor::{Bool, DType, FloatDType, Int, Tensor, backend::Backend, module::embedding};
use serde::Deserialize;

use super::attention::{attention_mask, grouped_attention, mask_for_heads};
use super::config::{GenerationConfig, HfConfig, ModelType, TokenIds};
use super::inject::adapted_layers;
pub use super::kv_cache::KvCache;
use super::lean_backward::{GateActivation, gated_activation};
use super::linear::{PeftLinear, SharedInput, frozen};
use super::norm::RmsNorm;
use super::precision::{Precision, round_scalar};
use super::rope::{Rope, RopeParameters};
use super::{LoadReport, PeftModel};
use crate::adapter::{AdaptedLinear, HasAdapters, SharedFactors, Targets};
use crate::io::checkpoint::Checkpoint;
use crate::kernel::matmul::matmul;
use crate::{Error, Result};

/// Everything the decoder needs from `config.json` (and `generation_config.json`).
#[derive(Debug, Clone)]
pub struct DecoderConfig {
    pub model_type: ModelType,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: Option<RopeParameters>,
    pub tie_word_embeddings: bool,
    pub qkv_bias: bool,
    pub o_bias: bool,
    pub mlp_bias: bool,
    /// The gated MLP's activation (`hidden_act` / `hidden_activation`).
    pub activation: GateActivation,
    /// Gemma multiplies embeddings by √hidden.
    pub scale_embeddings: bool,
    /// Gemma's RMSNorm uses `(1 + w)`.
    pub norm_offset: f64,
    pub max_position_embeddings: usize,
    /// Sliding-window attention (Mistral; Qwen2 with `use_sliding_window`): a query sees only
    /// the keys less than this many positions back.
    pub sliding_window: Option<usize>,
    /// Which layers use the window (Qwen2's `layer_types` / `max_window_layers`).
    pub layer_types: Vec<LayerType>,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
    pub pad_token_id: Option<u32>,
    /// Labels of a `score` head (`*ForSequenceClassification`), if the checkpoint has one.
    pub num_labels: Option<usize>,
}

/// A layer's attention pattern, as transformers' `config.layer_types` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerType {
    FullAttention,
    SlidingAttention,
}

#[derive(Deserialize)]
struct RawDecoderConfig {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rms_norm_eps: Option<f64>,
    rope_theta: Option<f64>,
    rope_parameters: Option<RopeParameters>,
    rope_scaling: Option<RopeParameters>,
    tie_word_embeddings: Option<bool>,
    attention_bias: Option<bool>,
    mlp_bias: Option<bool>,
    hidden_act: Option<String>,
    hidden_activation: Option<String>,
    max_position_embeddings: Option<usize>,
    use_sliding_window: Option<bool>,
    max_window_layers: Option<usize>,
    layer_types: Option<Vec<LayerType>>,
    #[serde(default)]
    bos_token_id: TokenIds,
    #[serde(default)]
    eos_token_id: TokenIds,
    #[serde(default)]
    pad_token_id: TokenIds,
    #[serde(default)]
    architectures: Vec<String>,
    id2label: Option<serde_json::Map<String, serde_json::Value>>,
    num_labels: Option<usize>,
}

impl DecoderConfig {
    /// A plain Llama-2-style configuration (SiLU, no biases, θ = 10⁴, BOS 1, EOS 2), as the
    /// llama2.c format implies and benchmarks use.
    #[allow(clippy::too_many_arguments)]
    pub fn llama(
        vocab_size: usize,
        hidden_size: usize,
        intermediate_size: usize,
        num_layers: usize,
        num_heads: usize,
        num_kv_heads: usize,
        max_position_embeddings: usize,
        tie_word_embeddings: bool,
    ) -> Self {
        Self {
            model_type: ModelType::Llama,
            vocab_size,
            hidden_size,
            intermediate_size,
            num_layers,
            num_heads,
            num_kv_heads,
            head_dim: hidden_size / num_heads,
            rms_norm_eps: 1e-5,
            rope_theta: 10_000.0,
            rope_scaling: None,
            tie_word_embeddings,
            qkv_bias: false,
            o_bias: false,
            mlp_bias: false,
            activation: GateActivation::Silu,
            scale_embeddings: false,
            norm_offset: 0.0,
            max_position_embeddings,
            sliding_window: None,
            layer_types: vec![LayerType::FullAttention; num_layers],
            bos_token_id: Some(1),
            eos_token_ids: vec![2],
            pad_token_id: None,
            num_labels: None,
        }
    }

    pub fn from_hf(hf: &HfConfig, generation: &GenerationConfig) -> Result<Self> {
        let raw: RawDecoderConfig = hf.parse()?;
        let bad = |message: String| Error::BadFile {
            path: hf.path.clone(),
            message,
        };
        let model_type = hf.model_type;
        if !model_type.is_decoder() {
            return Err(bad(format!("model_type {model_type:?} is not a decoder")));
        }
        let num_kv_heads = raw.num_key_value_heads.unwrap_or(raw.num_attention_heads);
        if raw.num_attention_heads == 0
            || num_kv_heads == 0
            || !raw.num_attention_heads.is_multiple_of(num_kv_heads)
        {
            return Err(bad(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {num_kv_heads}",
                raw.num_attention_heads
            )));
        }
        let head_dim = raw
            .head_dim
            .unwrap_or(raw.hidden_size / raw.num_attention_heads);
        if head_dim == 0 || !head_dim.is_multiple_of(2) {
            return Err(bad(format!(
                "head_dim {head_dim} must be even and positive"
            )));
        }
        let (sliding_window, layer_types) = sliding_window(hf, &raw).map_err(bad)?;
        let gemma = model_type == ModelType::Gemma;
        let act = raw
            .hidden_activation
            .or(raw.hidden_act)
            .unwrap_or_else(|| "silu".into());
        let activation = match act.as_str() {
            "silu" | "swish" => GateActivation::Silu,
            "gelu_pytorch_tanh" | "gelu_new" | "gelu_fast" => GateActivation::GeluTanh,
            // Gemma 1 configs say "gelu" but transformers runs the tanh approximation.
            "gelu" if gemma => GateActivation::GeluTanh,
            other => {
                return Err(bad(format!(
                    "hidden_act `{other}` is not supported (silu, gelu_pytorch_tanh)"
                )));
            }
        };
        let rope_theta = raw
            .rope_parameters
            .as_ref()
            .and_then(|p| p.rope_theta)
            .or(raw.rope_theta)
            .unwrap_or(10_000.0);
        let rope_scaling = raw.rope_scaling.or(raw.rope_parameters);
        if let Some(kind) = rope_scaling.as_ref().and_then(|p| p.rope_type.as_deref())
            && !matches!(kind, "default" | "llama3")
        {
            return Err(bad(format!(
                "rope type `{kind}` is not supported (default, llama3)"
            )));
        }
        let is_classifier = raw
            .architectures
            .iter()
            .any(|a| a.ends_with("ForSequenceClassification"));
        let num_labels = is_classifier.then(|| {
            raw.num_labels
                .or(raw.id2label.map(|m| m.len()))
                .unwrap_or(2)
        });
        let attention_bias = raw.attention_bias.unwrap_or(false);
        Ok(Self {
            model_type,
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            intermediate_size: raw.intermediate_size,
            num_layers: raw.num_hidden_layers,
            num_heads: raw.num_attention_heads,
            num_kv_heads,
            head_dim,
            rms_norm_eps: raw.rms_norm_eps.unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(gemma),
            // Qwen2 always has q/k/v biases and no o_proj bias.
            qkv_bias: attention_bias || model_type == ModelType::Qwen2,
            o_bias: attention_bias,
            mlp_bias: raw.mlp_bias.unwrap_or(false),
            activation,
            scale_embeddings: gemma,
            norm_offset: if gemma { 1.0 } else { 0.0 },
            max_position_embeddings: raw.max_position_embeddings.unwrap_or(2048),
            sliding_window,
            layer_types,
            bos_token_id: generation.bos_token_id.clone().or(raw.bos_token_id).first(),
            eos_token_ids: generation.eos_token_id.clone().or(raw.eos_token_id).all(),
            pad_token_id: generation.pad_token_id.clone().or(raw.pad_token_id).first(),
            num_labels,
        })
    }
}

impl DecoderConfig {
    /// Whether layer `index` attends through the sliding window.
    pub fn uses_sliding_window(&self, index: usize) -> bool {
        self.sliding_window.is_some()
            && self.layer_types.get(index) == Some(&LayerType::SlidingAttention)
    }
}

/// The window and per-layer attention types as transformers derives them: Mistral applies
/// `sliding_window` (4096 when the key is absent, none when null) to every layer; Qwen2 only
/// with `use_sliding_window`, to the layers from `max_window_layers` on (or as `layer_types`
/// lists them); the other architectures have none.
fn sliding_window(
    hf: &HfConfig,
    raw: &RawDecoderConfig,
) -> std::result::Result<(Option<usize>, Vec<LayerType>), String> {
    let layers = raw.num_hidden_layers;
    let configured = match hf.json.get("sliding_window") {
        None => Some(4096),
        Some(serde_json::Value::Null) => None,
        Some(value) => Some(
            value
                .as_u64()
                .filter(|&w| w > 0)
                .ok_or_else(|| format!("sliding_window {value} must be a positive integer"))?
                as usize,
        ),
    };
    let window = match hf.model_type {
        ModelType::Mistral => configured,
        ModelType::Qwen2 if raw.use_sliding_window.unwrap_or(false) => configured,
        _ => None,
    };
    let types = match (&raw.layer_types, window) {
        (_, None) => vec![LayerType::FullAttention; layers],
        (Some(types), Some(_)) if types.len() == layers => types.clone(),
        (Some(types), Some(_)) => {
            return Err(format!(
                "layer_types lists {} layers, num_hidden_layers is {layers}",
                types.len()
            ));
        }
        (None, Some(_)) if hf.model_type == ModelType::Qwen2 => {
            let first = raw.max_window_layers.unwrap_or(28);
            (0..layers)
                .map(|i| {
                    if i >= first {
                        LayerType::SlidingAttention
                    } else {
                        LayerType::FullAttention
                    }
                })
                .collect()
        }
        (None, Some(_)) => vec![LayerType::SlidingAttention; layers],
    };
    Ok((window, types))
}

#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    pub q_proj: PeftLinear<B>,
    pub k_proj: PeftLinear<B>,
    pub v_proj: PeftLinear<B>,
    pub o_proj: PeftLinear<B>,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
}

impl<B: Backend> Attention<B> {
    /// `mask` comes from [`attention_mask`] (`[b, 1, s, past + s]`); with a cache, this step's
    /// keys and values are written into it and attention runs over all cached positions.
    fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: (&Tensor<B, 4>, &Tensor<B, 4>),
        mask: Tensor<B, 4, Bool>,
        cache: Option<(&mut KvCache<B>, usize)>,
        shared: &SharedFactors<B>,
    ) -> Tensor<B, 3> {
        let [b, s, _] = x.dims();
        let (h, kv, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let heads = |t: Tensor<B, 3>, n: usize| t.reshape([b, s, n, d]).swap_dims(1, 2);
        let x = SharedInput::new(x);
        let q = Rope::apply(
            heads(self.q_proj.forward_shared(&x, shared), h),
            rope.0,
            rope.1,
        );
        let k = Rope::apply(
            heads(self.k_proj.forward_shared(&x, shared), kv),
            rope.0,
            rope.1,
        );
        let v = heads(self.v_proj.forward_shared(&x, shared), kv);
        let (k, v) = match cache {
            Some((cache, layer)) => cache.append(layer, k, v),
            None => (k, v),
        };
        let out = grouped_attention(q, k, v, mask);
        let out = out.swap_dims(1, 2).reshape([b, s, h * d]);
        self.o_proj.forward(out, shared)
    }
}

#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    pub gate_proj: PeftLinear<B>,
    pub up_proj: PeftLinear<B>,
    pub down_proj: PeftLinear<B>,
    pub gelu_tanh: bool,
}

impl<B: Backend> Mlp<B> {
    fn forward(&self, x: Tensor<B, 3>, shared: &SharedFactors<B>) -> Tensor<B, 3> {
        let x = SharedInput::new(x);
        let act = if self.gelu_tanh {
            GateActivation::GeluTanh
        } else {
            GateActivation::Silu
        };
        // SiLU / GeLU-tanh in f32, rounded once to the hidden dtype, as transformers does
        // (bf16 logits match it bit for bit).
        let hidden = gated_activation(
            self.gate_proj.forward_shared(&x, shared),
            self.up_proj.forward_shared(&x, shared),
            act,
        );
        self.down_proj.forward(hidden, shared)
    }
}

#[derive(Module, Debug)]
pub struct DecoderLayer<B: Backend> {
    pub input_layernorm: RmsNorm<B>,
    pub self_attn: Attention<B>,
    pub post_attention_layernorm: RmsNorm<B>,
    pub mlp: Mlp<B>,
}

/// What every decoder layer reads besides its input: the rotary `cos`/`sin` (in the hidden
/// dtype) and the attention masks ([`attention_mask`]: full causal, and the sliding window for
/// the layers that use one).
#[derive(Debug, Clone)]
pub struct LayerContext<B: Backend> {
    cos: Tensor<B, 4>,
    sin: Tensor<B, 4>,
    full: Tensor<B, 4, Bool>,
    /// `Some` when a layer uses the sliding window, with `sliding_layers[i]` saying which.
    sliding: Option<Tensor<B, 4, Bool>>,
    sliding_layers: Vec<bool>,
}

impl<B: Backend> LayerContext<B> {
    /// The mask layer `index` attends with.
    fn mask(&self, index: usize) -> Tensor<B, 4, Bool> {
        match &self.sliding {
            Some(sliding) if self.sliding_layers.get(index) == Some(&true) => sliding.clone(),
            _ => self.full.clone(),
        }
    }
}

impl<B: Backend> DecoderLayer<B> {
    /// The output of layer `index`: pre-norm attention and MLP, each added to its input. With a
    /// cache, this step's keys and values are written into it.
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        context: &LayerContext<B>,
        index: usize,
        cache: Option<&mut KvCache<B>>,
        shared: &SharedFactors<B>,
    ) -> Tensor<B, 3> {
        let h = self.input_layernorm.forward(x.clone());
        let rope = (&context.cos, &context.sin);
        let slot = cache.map(|c| (c, index));
        let x = x + self
            .self_attn
            .forward(h, rope, context.mask(index), slot, shared);
        let h = self.post_attention_layernorm.forward(x.clone());
        x + self.mlp.forward(h, shared)
    }
}

/// A Llama-family decoder with its language-model head (and optional classification head).
#[derive(Module, Debug)]
pub struct Decoder<B: Backend> {
    pub embed_tokens: Embedding<B>,
    pub layers: Vec<DecoderLayer<B>>,
    pub norm: RmsNorm<B>,
    /// `None` when tied to the embeddings.
    pub lm_head: Option<PeftLinear<B>>,
    /// Sequence-classification head on the last non-pad token.
    pub score: Option<PeftLinear<B>>,
    pub shared: SharedFactors<B>,
    #[module(skip)]
    pub config: DecoderConfig,
    #[module(skip)]
    rope: Rope,
}

impl<B: Backend> Decoder<B> {
    /// Loads an HF model folder (config.json, safetensors, optional generation_config.json) in
    /// the checkpoint's own dtype.
    pub fn load(dir: &Path, device: &B::Device) -> Result<(Self, LoadReport)> {
        Self::load_as(dir, Precision::Auto, device)
    }

    /// Loads an HF model folder with its frozen base in `precision`.
    pub fn load_as(
        dir: &Path,
        precision: Precision,
        device: &B::Device,
    ) -> Result<(Self, LoadReport)> {
        let hf = HfConfig::read(dir)?;
        let config = DecoderConfig::from_hf(&hf, &GenerationConfig::read(dir)?)?;
        let ckpt = super::precision::open_weights::<B>(dir, &hf, precision, device)?;
        let model = Self::from_checkpoint(config, &ckpt, device)?;
        Ok((model, LoadReport::of(&ckpt)))
    }

    /// Builds the model from HF-named tensors.
    pub fn from_checkpoint(
        config: DecoderConfig,
        ckpt: &Checkpoint,
        device: &B::Device,
    ) -> Result<Self> {
        let c = &config;
        let (hidden, inter) = (c.hidden_size, c.intermediate_size);
        let (q_out, kv_out) = (c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim);
        let norm = |name: &str| -> Result<RmsNorm<B>> {
            Ok(RmsNorm {
                weight: frozen(ckpt.tensor::<B, 1>(name, [hidden], device)?),
                eps: c.rms_norm_eps,
                offset: c.norm_offset,
            })
        };
        let linear = |name: &str, i: usize, o: usize, bias: bool| {
            PeftLinear::load(ckpt, name, i, o, bias, device)
        };
        let mut layers = Vec::with_capacity(c.num_layers);
        for l in 0..c.num_layers {
            let p = format!("model.layers.{l}");
            layers.push(DecoderLayer {
                input_layernorm: norm(&format!("{p}.input_layernorm.weight"))?,
                self_attn: Attention {
                    q_proj: linear(&format!("{p}.self_attn.q_proj"), hidden, q_out, c.qkv_bias)?,
                    k_proj: linear(&format!("{p}.self_attn.k_proj"), hidden, kv_out, c.qkv_bias)?,
                    v_proj: linear(&format!("{p}.self_attn.v_proj"), hidden, kv_out, c.qkv_bias)?,
                    o_proj: linear(&format!("{p}.self_attn.o_proj"), q_out, hidden, c.o_bias)?,
                    num_heads: c.num_heads,
                    num_kv_heads: c.num_kv_heads,
                    head_dim: c.head_dim,
                },
                post_attention_layernorm: norm(&format!("{p}.post_attention_layernorm.weight"))?,
                mlp: Mlp {
                    gate_proj: linear(&format!("{p}.mlp.gate_proj"), hidden, inter, c.mlp_bias)?,
                    up_proj: linear(&format!("{p}.mlp.up_proj"), hidden, inter, c.mlp_bias)?,
                    down_proj: linear(&format!("{p}.mlp.down_proj"), inter, hidden, c.mlp_bias)?,
                    gelu_tanh: c.activation == GateActivation::GeluTanh,
                },
            });
        }
        let embed =
            ckpt.tensor::<B, 2>("model.embed_tokens.weight", [c.vocab_size, hidden], device)?;
        let lm_head = match (c.tie_word_embeddings, c.num_labels) {
            (_, Some(_)) => None,
            (true, None) => {
                // Some tied checkpoints also store the head; it is the same tensor.
                if ckpt.contains("lm_head.weight") {
                    ckpt.tensor::<B, 2>("lm_head.weight", [c.vocab_size, hidden], device)?;
                }
                None
            }
            (false, None) => Some(linear("lm_head", hidden, c.vocab_size, false)?),
        };
        let score = match c.num_labels {
            Some(labels) => Some(linear("score", hidden, labels, false)?),
            None => None,
        };
        Ok(Self {
            embed_tokens: Embedding {
                weight: frozen(embed),
            },
            layers,
            norm: norm("model.norm.weight")?,
            lm_head,
            score,
            shared: SharedFactors::default(),
            rope: Rope::new(c.rope_theta, c.head_dim, c.rope_scaling.as_ref()),
            config,
        })
    }

    /// A model with random weights (N(0, 0.02²), unit norms) for benchmarks and tests.
    pub fn random(config: DecoderConfig, seed: u64, device: &B::Device) -> Result<Self> {
        Self::random_as(config, seed, FloatDType::F32, device)
    }

    /// [`random`](Self::random) with the weights stored in `dtype`.
    pub fn random_as(
        config: DecoderConfig,
        seed: u64,
        dtype: FloatDType,
        device: &B::Device,
    ) -> Result<Self> {
        use crate::io::checkpoint::{OutTensor, serialize};
        let c = &config;
        let mut rng = crate::linalg::gaussian::rng(seed);
        let mut normal = |shape: Vec<usize>| {
            let m = crate::linalg::gaussian::standard_normal(&mut rng, 1, shape.iter().product());
            (
                shape,
                (0..m.ncols())
                    .map(|j| 0.02 * m[(0, j)])
                    .collect::<Vec<f32>>(),
            )
        };
        let (h, q, kv, i) = (
            c.hidden_size,
            c.num_heads * c.head_dim,
            c.num_kv_heads * c.head_dim,
            c.intermediate_size,
        );
        let mut specs: Vec<(String, Vec<usize>)> =
            vec![("model.embed_tokens.weight".into(), vec![c.vocab_size, h])];
        for l in 0..c.num_layers {
            let p = format!("model.layers.{l}");
            for (name, shape) in [
                ("self_attn.q_proj.weight", vec![q, h]),
                ("self_attn.k_proj.weight", vec![kv, h]),
                ("self_attn.v_proj.weight", vec![kv, h]),
                ("self_attn.o_proj.weight", vec![h, q]),
                ("mlp.gate_proj.weight", vec![i, h]),
                ("mlp.up_proj.weight", vec![i, h]),
                ("mlp.down_proj.weight", vec![h, i]),
            ] {
                specs.push((format!("{p}.{name}"), shape));
            }
        }
        if !c.tie_word_embeddings {
            specs.push(("lm_head.weight".into(), vec![c.vocab_size, h]));
        }
        // Encoded straight in `dtype`, one tensor at a time: a large bf16 model never has a
        // whole f32 copy.
        let mut tensors: Vec<OutTensor> = specs
            .into_iter()
            .map(|(name, shape)| {
                let (shape, values) = normal(shape);
                OutTensor::f32_as(name, shape, &values, dtype)
            })
            .collect();
        let mut norms = vec!["model.norm.weight".to_string()];
        for l in 0..c.num_layers {
            norms.push(format!("model.layers.{l}.input_layernorm.weight"));
            norms.push(format!("model.layers.{l}.post_attention_layernorm.weight"));
        }
        for name in norms {
            let ones = vec![1.0 - c.norm_offset as f32; h];
            tensors.push(OutTensor::f32_as(name, vec![h], &ones, dtype));
        }
        let origin = Path::new("<random>");
        let ckpt =
            Checkpoint::from_bytes(origin, serialize(origin, tensors, None)?)?.with_dtype(dtype);
        Self::from_checkpoint(config, &ckpt, device)
    }

    /// Every weight under its HF name in HF layout (for writing a merged model). Errors when an
    /// adapter is still attached: merge first.
    pub fn hf_tensors(&self) -> Result<Vec<(String, Tensor<B, 2>)>> {
        use crate::linalg::layout::burn_to_hf;
        let mut out: Vec<(String, Tensor<B, 2>)> = vec![(
            "model.embed_tokens.weight".into(),
            self.embed_tokens.weight.val(),
        )];
        let norm = |name: String, n: &RmsNorm<B>| (name, n.weight.val().unsqueeze::<2>());
        for (l, layer) in self.layers.iter().enumerate() {
            out.push(norm(
                format!("model.layers.{l}.input_layernorm.weight"),
                &layer.input_layernorm,
            ));
            out.push(norm(
                format!("model.layers.{l}.post_attention_layernorm.weight"),
                &layer.post_attention_layernorm,
            ));
        }
        out.push(norm("model.norm.weight".into(), &self.norm));
        for (name, slot) in self.linears() {
            let PeftLinear::Plain(linear) = slot else {
                return Err(Error::invalid(
                    "model",
                    name,
                    "still carries an adapter; merge it first",
                ));
            };
            out.push((format!("{name}.weight"), burn_to_hf(linear.weight.val())));
            if let Some(bias) = &linear.bias {
                out.push((format!("{name}.bias"), bias.val().unsqueeze::<2>()));
            }
        }
        Ok(out)
    }

    /// Final hidden states `[batch, seq, hidden]`.
    ///
    /// `key_mask` (`[batch, past + seq]`, 1 = real token) masks padding keys; `positions`
    /// (`[batch, seq]`) are the rotary positions; `cache` holds and receives past keys/values.
    pub fn hidden_states(
        &self,
        input_ids: Tensor<B, 2, Int>,
        key_mask: Option<Tensor<B, 2, Int>>,
        positions: Tensor<B, 2, Int>,
        mut cache: Option<&mut KvCache<B>>,
    ) -> Tensor<B, 3> {
        let past = cache.as_ref().map(|c| c.len()).unwrap_or(0);
        let seq = input_ids.dims()[1];
        let mut x = self.embed(input_ids);
        let context = self.layer_context(key_mask, positions, past, x.dtype());
        for (index, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x, &context, index, cache.as_deref_mut(), &self.shared);
        }
        if let Some(cache) = cache {
            cache.advance(seq);
        }
        self.norm.forward(x)
    }

    /// Token embeddings `[batch, seq, hidden]` in the embedding's dtype (Gemma: times √hidden,
    /// rounded to that dtype first as transformers does).
    pub fn embed(&self, input_ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let x = embedding(self.embed_tokens.weight.val(), input_ids);
        if !self.config.scale_embeddings {
            return x;
        }
        let scale = round_scalar((self.config.hidden_size as f64).sqrt(), x.dtype());
        x.mul_scalar(scale)
    }

    /// The layers' shared inputs for `positions` (`[batch, seq]`) after `past` cached positions,
    /// `key_mask` as for [`hidden_states`](Self::hidden_states), hidden states in `dtype`.
    pub fn layer_context(
        &self,
        key_mask: Option<Tensor<B, 2, Int>>,
        positions: Tensor<B, 2, Int>,
        past: usize,
        dtype: DType,
    ) -> LayerContext<B> {
        let [batch, seq] = positions.dims();
        let device = positions.device();
        let (cos, sin) = self.rope.cos_sin(positions);
        let dtype = FloatDType::from(dtype);
        // One mask per distinct window (full causal, and the sliding window if any layer uses it).
        let (heads, kv_heads) = (self.config.num_heads, self.config.num_kv_heads);
        let mask = |window: Option<usize>| {
            let mask = attention_mask::<B>(key_mask.clone(), [batch, seq], past, window, &device);
            mask_for_heads(mask, heads, kv_heads)
        };
        let sliding_layers: Vec<bool> = (0..self.layers.len())
            .map(|index| self.config.uses_sliding_window(index))
            .collect();
        let sliding = match (self.config.sliding_window, sliding_layers.contains(&true)) {
            (Some(window), true) => Some(mask(Some(window))),
            _ => None,
        };
        LayerContext {
            cos: cos.cast(dtype),
            sin: sin.cast(dtype),
            full: mask(None),
            sliding,
            sliding_layers,
        }
    }

    /// Vocabulary logits of hidden states.
    pub fn lm_logits(&self, hidden: Tensor<B, 3>) -> Tensor<B, 3> {
        self.lm_logits_in_chunks(hidden, HEAD_CHUNK_ELEMENTS)
    }

    /// [`lm_logits`](Self::lm_logits) with a bf16/f16 head multiplied in chunks of at most
    /// `chunk` weight elements (a whole vocabulary row or column at least).
    fn lm_logits_in_chunks(&self, hidden: Tensor<B, 3>, chunk: usize) -> Tensor<B, 3> {
        let [b, s, h] = hidden.dims();
        let vocab = self.config.vocab_size;
        let dtype = FloatDType::from(hidden.dtype());
        let chunks = move || {
            let size = (chunk / h.max(1)).max(1);
            (0..vocab)
                .step_by(size)
                .map(move |start| start..(start + size).min(vocab))
        };
        // In chunks, the input's gradient sums one part per chunk: in f32, rounded once.
        let input_parts = |hidden: Tensor<B, 3>| {
            let x32 = hidden.reshape([b * s, h]).cast(FloatDType::F32);
            move || x32.clone().cast(dtype)
        };
        match &self.lm_head {
            Some(PeftLinear::Plain(head))
                if head.bias.is_none() && is_half_precision(&head.weight.val(), &hidden) =>
            {
                // `[hidden, vocab]` in column chunks.
                let (x, weight) = (input_parts(hidden), head.weight.val());
                let parts = chunks()
                    .map(|cols| x().matmul(weight.clone().slice([0..h, cols])))
                    .collect();
                Tensor::cat(parts, 1).reshape([b, s, vocab])
            }
            Some(head) => head.forward(hidden, &self.shared),
            None => {
                // Tied head: logitsᵀ = E hᵀ keeps the large [vocab, hidden] embedding in its
                // stored layout (a transposed operand is copied on every call).
                let weight = self.embed_tokens.weight.val();
                let logits_t = if is_half_precision(&weight, &hidden) {
                    let x = input_parts(hidden);
                    let parts = chunks()
                        .map(|rows| weight.clone().slice([rows, 0..h]).matmul(x().transpose()))
                        .collect();
                    Tensor::cat(parts, 0)
                } else {
                    matmul(weight, hidden.reshape([b * s, h]).transpose())
                };
                logits_t.transpose().reshape([b, s, vocab])
            }
        }
    }

    /// Logits `[batch, seq, vocab]` for a (right-padded) batch, as HF's forward computes them.
    pub fn forward(
        &self,
        input_ids: Tensor<B, 2, Int>,
        attention_mask: Option<Tensor<B, 2, Int>>,
    ) -> Tensor<B, 3> {
        let positions = arange_positions::<B>(input_ids.dims(), &input_ids.device());
        let hidden = self.hidden_states(input_ids, attention_mask, positions, None);
        self.lm_logits(hidden)
    }

    /// Adds a fresh sequence-classification head (`score`, N(0, 0.02²) as HF initialises it,
    /// seeded), trainable, for fine-tuning a causal LM on a classification task.
    pub fn with_score_head(mut self, num_labels: usize, seed: u64) -> Self {
        let device = self.embed_tokens.weight.device();
        let mut rng = crate::linalg::gaussian::rng(seed);
        let weight =
            crate::linalg::gaussian::standard_normal(&mut rng, num_labels, self.config.hidden_size)
                * faer::Scale(0.02);
        let weight = crate::linalg::mat_to_tensor::<B>(weight.as_ref(), &device);
        let head = crate::linalg::layout::linear_from_hf(weight, None);
        self.score = Some(PeftLinear::Plain(head));
        self.config.num_labels = Some(num_labels);
        self
    }

    /// Classification logits `[batch, labels]` from the last real token of each row.
    pub fn classify(
        &self,
        input_ids: Tensor<B, 2, Int>,
        attention_mask: Tensor<B, 2, Int>,
    ) -> Result<Tensor<B, 2>> {
        let head = self.score.as_ref().ok_or_else(|| {
            Error::invalid("model", "score", "this model has no classification head")
        })?;
        let [b, s] = input_ids.dims();
        let device = input_ids.device();
        let positions = arange_positions::<B>([b, s], &device);
        let last = (positions.clone() * attention_mask.clone()).max_dim(1); // [b, 1]
        let hidden = self.hidden_states(input_ids, Some(attention_mask), positions, None);
        let h = self.config.hidden_size;
        let index = last.unsqueeze_dim::<3>(2).repeat_dim(2, h);
        let pooled = hidden.gather(1, index).reshape([b, h]);
        Ok(head.forward(pooled, &self.shared))
    }
}

/// Weight elements per chunk of a bf16/f16 LM head. burn-flex multiplies a half-precision
/// weight through an f32 copy of it (and in the backward pass through a contiguous copy of its
/// transpose too): for a whole head, `hidden × vocab`, the largest transient of a training
/// step, taken when every activation is alive. In chunks it is at most 6 bytes × this.
/// (Chunking changes no value: each logit is the same dot product.)
pub const HEAD_CHUNK_ELEMENTS: usize = 1 << 22;

/// A bf16/f16 head weight multiplied by hidden states of the same dtype: the case the head
/// runs in chunks.
fn is_half_precision<B: Backend, const D: usize>(weight: &Tensor<B, 2>, x: &Tensor<B, D>) -> bool {
    matches!(weight.dtype(), DType::BF16 | DType::F16) && weight.dtype() == x.dtype()
}

/// Positions `0..seq` for every row.
pub fn arange_positions<B: Backend>(
    [batch, seq]: [usize; 2],
    device: &B::Device,
) -> Tensor<B, 2, Int> {
    Tensor::<B, 1, Int>::arange(0..seq as i64, device)
        .unsqueeze::<2>()
        .repeat_dim(0, batch)
}

impl<B: Backend> PeftModel<B> for Decoder<B> {
    fn linears(&self) -> Vec<(String, &PeftLinear<B>)> {
        let mut out = Vec::new();
        for (l, layer) in self.layers.iter().enumerate() {
            let a = &layer.self_attn;
            let m = &layer.mlp;
            for (name, slot) in [
                ("self_attn.q_proj", &a.q_proj),
                ("self_attn.k_proj", &a.k_proj),
                ("self_attn.v_proj", &a.v_proj),
                ("self_attn.o_proj", &a.o_proj),
                ("mlp.gate_proj", &m.gate_proj),
                ("mlp.up_proj", &m.up_proj),
                ("mlp.down_proj", &m.down_proj),
            ] {
                out.push((format!("model.layers.{l}.{name}"), slot));
            }
        }
        if let Some(head) = &self.lm_head {
            out.push(("lm_head".into(), head));
        }
        if let Some(score) = &self.score {
            out.push(("score".into(), score));
        }
        out
    }

    fn linears_mut(&mut self) -> Vec<(String, &mut PeftLinear<B>)> {
        let mut out = Vec::new();
        for (l, layer) in self.layers.iter_mut().enumerate() {
            let a = &mut layer.self_attn;
            let m = &mut layer.mlp;
            for (name, slot) in [
                ("self_attn.q_proj", &mut a.q_proj),
                ("self_attn.k_proj", &mut a.k_proj),
                ("self_attn.v_proj", &mut a.v_proj),
                ("self_attn.o_proj", &mut a.o_proj),
                ("mlp.gate_proj", &mut m.gate_proj),
                ("mlp.up_proj", &mut m.up_proj),
                ("mlp.down_proj", &mut m.down_proj),
            ] {
                out.push((format!("model.layers.{l}.{name}"), slot));
            }
        }
        if let Some(head) = &mut self.lm_head {
            out.push(("lm_head".into(), head));
        }
        if let Some(score) = &mut self.score {
            out.push(("score".into(), score));
        }
        out
    }

    fn shared(&self) -> &SharedFactors<B> {
        &self.shared
    }

    fn shared_mut(&mut self) -> &mut SharedFactors<B> {
        &mut self.shared
    }

    fn is_head(&self, name: &str) -> bool {
        name == "lm_head" || name == "score"
    }

    fn default_targets(&self) -> Targets {
        Targets::Names(vec!["q_proj".into(), "v_proj".into()])
    }
}

impl<B: Backend> HasAdapters<B> for Decoder<B> {
    fn adapted_layers(&self) -> Vec<&AdaptedLinear<B>> {
        adapted_layers(self.linears())
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{ElementConversion, FloatDType, Int, Tensor, TensorData};

    use super::{Decoder, DecoderConfig};
    use crate::backend::{Cpu, Train};

    /// A half-precision head in chunks gives the whole head's logits and input gradient, tied
    /// (row chunks of the embedding) and untied (column chunks of `lm_head`).
    #[test]
    fn half_precision_head_in_chunks_is_the_whole_head() {
        type B = Train<Cpu>;
        let device = Default::default();
        for tied in [true, false] {
            let config = DecoderConfig::llama(300, 32, 64, 1, 4, 4, 64, tied);
            let model = Decoder::<B>::random_as(config, 3, FloatDType::BF16, &device).unwrap();
            let ids = Tensor::<B, 2, Int>::from_data(
                TensorData::new(
                    (0..14).map(|i| (i * 37) % 300).collect::<Vec<i64>>(),
                    [2, 7],
                ),
                &device,
            );
            let run = |chunk: usize| {
                let hidden = model.embed(ids.clone()).detach().require_grad();
                let logits = model.lm_logits_in_chunks(hidden.clone(), chunk);
                // A loss that weighs every logit differently.
                let weights = Tensor::<B, 1, Int>::arange(0..300, &device)
                    .float()
                    .div_scalar(300.0)
                    .cast(FloatDType::BF16);
                let loss = (logits.clone() * weights.unsqueeze::<3>())
                    .cast(FloatDType::F32)
                    .sum();
                let grads = loss.backward();
                let grad = hidden.grad(&grads).unwrap().cast(FloatDType::F32);
                (logits.inner().cast(FloatDType::F32), grad)
            };
            let (whole, whole_grad) = run(usize::MAX);
            // 32 · 40 elements: chunks of 40 rows/columns, the last one short (300 = 7·40 + 20).
            let (parts, parts_grad) = run(32 * 40);
            assert_eq!(whole.to_data(), parts.to_data(), "tied {tied}: logits");
            let scale: f32 = whole_grad.clone().abs().max().into_scalar().elem();
            let err: f32 = (whole_grad - parts_grad).abs().max().into_scalar().elem();
            // bf16 parts summed in f32 and rounded once: within one bf16 rounding.
            assert!(
                err <= scale / 128.0,
                "tied {tied}: gradient {err} (scale {scale})"
            );
        }
    }
}
