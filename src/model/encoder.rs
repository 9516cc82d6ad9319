//! BERT and RoBERTa encoders with transformers' sequence-classification heads
//! (`BertForSequenceClassification`, `RobertaForSequenceClassification`), loaded from HF
//! checkpoints. Every linear layer is a [`PeftLinear`] slot, so adapters can be injected into the
//! attention projections, the feed-forward block or the head.
//!
//! The model body has no dropout (transformers in eval mode): logits are deterministic, which the
//! parity tests and adapter initialisation rely on. Regularising dropout, when wanted, is the
//! adapters' own `dropout`.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::Module;
use burn::nn::{Embedding, LayerNorm, LayerNormConfig};
use burn::tensor::activation::{gelu, gelu_approximate, relu};
use burn::tensor::{FloatDType, Int, Tensor, backend::Backend};
use serde::Deserialize;

use super::config::{HfConfig, ModelType};
use super::lean_backward::masked_softmax;
use super::linear::{PeftLinear, SharedInput, frozen, frozen_linear};
use super::precision::Precision;
use super::{LoadReport, PeftModel};
use crate::adapter::{AdaptedLinear, HasAdapters, SharedFactors, Targets};
use crate::io::checkpoint::{Checkpoint, OutTensor};
use crate::linalg::layout::burn_to_hf;
use crate::linalg::{gaussian, mat_to_tensor, tensor_to_vec};
use crate::{Error, Result};

/// The activation of the (ungated) feed-forward block (`hidden_act`); the decoders' gated MLP
/// uses [`GateActivation`](super::lean_backward::GateActivation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedForwardActivation {
    /// `gelu`: the exact erf form.
    Gelu,
    /// `gelu_new` / `gelu_pytorch_tanh`: the tanh approximation.
    GeluTanh,
    Relu,
}

impl FeedForwardActivation {
    const SUPPORTED: &'static str = "gelu, gelu_new, gelu_pytorch_tanh, relu";

    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "gelu" => FeedForwardActivation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" => FeedForwardActivation::GeluTanh,
            "relu" => FeedForwardActivation::Relu,
            _ => return None,
        })
    }

    /// Applies the activation element-wise.
    pub fn apply<B: Backend, const D: usize>(self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            FeedForwardActivation::Gelu => gelu(x),
            FeedForwardActivation::GeluTanh => gelu_approximate(x),
            FeedForwardActivation::Relu => relu(x),
        }
    }
}

/// What the logits are trained against (transformers' `problem_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemType {
    /// Cross-entropy over `num_labels` classes.
    SingleLabelClassification,
    /// Independent sigmoid per label (binary cross-entropy).
    MultiLabelClassification,
    /// One real-valued output per example (mean squared error), e.g. STS-B.
    Regression,
}

impl ProblemType {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "single_label_classification" => ProblemType::SingleLabelClassification,
            "multi_label_classification" => ProblemType::MultiLabelClassification,
            "regression" => ProblemType::Regression,
            _ => return None,
        })
    }

    /// transformers' default when the config names none: regression for a single output.
    fn default_for(num_labels: usize) -> Self {
        if num_labels == 1 {
            ProblemType::Regression
        } else {
            ProblemType::SingleLabelClassification
        }
    }
}

/// The fields of a BERT / RoBERTa `config.json` the model uses.
#[derive(Clone, Debug, PartialEq)]
pub struct EncoderConfig {
    /// `Bert` or `Roberta`.
    pub model_type: ModelType,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: FeedForwardActivation,
    pub layer_norm_eps: f64,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    /// Also RoBERTa's `padding_idx` for position ids.
    pub pad_token_id: usize,
    /// Standard deviation of a freshly initialised head ([`HeadInit::Fresh`]).
    pub initializer_range: f64,
    /// Outputs of the head: `len(id2label)`, else `num_labels`, else 2 (transformers' default).
    pub num_labels: usize,
    pub problem_type: ProblemType,
}

/// `config.json` as written by transformers; defaults are transformers' own.
#[derive(Deserialize)]
struct RawEncoderConfig {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    max_position_embeddings: usize,
    #[serde(default = "default_hidden_act")]
    hidden_act: String,
    #[serde(default = "default_layer_norm_eps")]
    layer_norm_eps: f64,
    #[serde(default = "default_type_vocab_size")]
    type_vocab_size: usize,
    #[serde(default)]
    pad_token_id: Option<usize>,
    #[serde(default = "default_initializer_range")]
    initializer_range: f64,
    #[serde(default)]
    id2label: Option<BTreeMap<String, String>>,
    #[serde(default)]
    num_labels: Option<usize>,
    #[serde(default)]
    problem_type: Option<String>,
    #[serde(default)]
    position_embedding_type: Option<String>,
}

fn default_hidden_act() -> String {
    "gelu".into()
}

fn default_layer_norm_eps() -> f64 {
    1e-12
}

fn default_type_vocab_size() -> usize {
    2
}

fn default_initializer_range() -> f64 {
    0.02
}

impl EncoderConfig {
    /// Reads `dir/config.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        Self::from_hf(&HfConfig::read(dir)?)
    }

    /// The encoder view of a parsed config. Errors (naming config.json) for other architectures,
    /// missing or malformed fields, and settings this implementation does not support.
    pub fn from_hf(hf: &HfConfig) -> Result<Self> {
        let bad = |message: String| Error::BadFile {
            path: hf.path.clone(),
            message,
        };
        if !matches!(hf.model_type, ModelType::Bert | ModelType::Roberta) {
            return Err(bad(format!(
                "model_type {:?} is not an encoder (expected bert or roberta)",
                hf.model_type
            )));
        }
        let raw: RawEncoderConfig = hf.parse()?;
        let hidden_act = FeedForwardActivation::from_name(&raw.hidden_act).ok_or_else(|| {
            bad(format!(
                "unsupported hidden_act `{}` (supported: {})",
                raw.hidden_act,
                FeedForwardActivation::SUPPORTED
            ))
        })?;
        if let Some(kind) = raw.position_embedding_type.as_deref()
            && kind != "absolute"
        {
            return Err(bad(format!(
                "unsupported position_embedding_type `{kind}` (only `absolute`)"
            )));
        }
        if raw.num_attention_heads == 0 || !raw.hidden_size.is_multiple_of(raw.num_attention_heads)
        {
            return Err(bad(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                raw.hidden_size, raw.num_attention_heads
            )));
        }
        let num_labels = match (&raw.id2label, raw.num_labels) {
            (Some(labels), _) if !labels.is_empty() => labels.len(),
            (_, Some(n)) => n,
            _ => 2,
        };
        if num_labels == 0 {
            return Err(bad("num_labels must be at least 1".into()));
        }
        let problem_type = match raw.problem_type.as_deref() {
            None => ProblemType::default_for(num_labels),
            Some(name) => ProblemType::from_name(name).ok_or_else(|| {
                bad(format!(
                    "unknown problem_type `{name}` (expected single_label_classification, \
                     multi_label_classification or regression)"
                ))
            })?,
        };
        let pad_token_id = raw.pad_token_id.unwrap_or(match hf.model_type {
            ModelType::Roberta => 1,
            _ => 0,
        });
        Ok(Self {
            model_type: hf.model_type,
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            num_hidden_layers: raw.num_hidden_layers,
            num_attention_heads: raw.num_attention_heads,
            intermediate_size: raw.intermediate_size,
            hidden_act,
            layer_norm_eps: raw.layer_norm_eps,
            max_position_embeddings: raw.max_position_embeddings,
            type_vocab_size: raw.type_vocab_size,
            pad_token_id,
            initializer_range: raw.initializer_range,
            num_labels,
            problem_type,
        })
    }

    /// The HF module prefix of the body: `bert.` or `roberta.`.
    pub fn body_prefix(&self) -> &'static str {
        match self.model_type {
            ModelType::Roberta => "roberta.",
            _ => "bert.",
        }
    }

    /// First position id of a sequence: RoBERTa counts from `padding_idx + 1`.
    fn position_offset(&self) -> usize {
        match self.model_type {
            ModelType::Roberta => self.pad_token_id + 1,
            _ => 0,
        }
    }

    /// The longest input the position table covers.
    pub fn max_sequence_length(&self) -> usize {
        self.max_position_embeddings
            .saturating_sub(self.position_offset())
    }
}

/// Where the classification head's weights come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadInit {
    /// From the checkpoint (a model already fine-tuned for the task); missing head tensors are
    /// an error.
    Checkpoint,
    /// A new head with `num_labels` outputs (1: regression), initialised as transformers does
    /// (weights N(0, `initializer_range`), zero biases): fine-tuning a pretrained body such as
    /// `roberta-base` on a new task. Head tensors in the checkpoint are reported unused. BERT's
    /// pooler is part of the pretrained body and is loaded when present, new otherwise. The new
    /// head is frozen like every base layer: name it in `modules_to_save` to train it.
    Fresh { num_labels: usize, seed: u64 },
    /// From the checkpoint where it holds the head's tensors, new (as [`Fresh`](Self::Fresh))
    /// where it lacks them, as transformers' `from_pretrained` does for a pretrained body such as
    /// `roberta-base`: each head linear (and BERT's pooler) is taken or created on its own, and
    /// the created tensors are listed in [`LoadReport::initialized`]. `num_labels` sizes a new
    /// output layer; a loaded one keeps the checkpoint's.
    IfMissing { num_labels: usize, seed: u64 },
}

/// Word, position and token-type embeddings, summed and layer-normalised.
#[derive(Module, Debug)]
pub struct Embeddings<B: Backend> {
    pub word: Embedding<B>,
    pub position: Embedding<B>,
    pub token_type: Embedding<B>,
    pub norm: LayerNorm<B>,
}

/// One transformer block: post-norm self-attention and feed-forward, as in BERT.
#[derive(Module, Debug)]
pub struct EncoderLayer<B: Backend> {
    pub query: PeftLinear<B>,
    pub key: PeftLinear<B>,
    pub value: PeftLinear<B>,
    /// `attention.output.dense`.
    pub attention_output: PeftLinear<B>,
    /// `attention.output.LayerNorm`.
    pub attention_norm: LayerNorm<B>,
    /// `intermediate.dense`.
    pub intermediate: PeftLinear<B>,
    /// `output.dense`.
    pub output: PeftLinear<B>,
    /// `output.LayerNorm`.
    pub output_norm: LayerNorm<B>,
}

/// HF names of an [`EncoderLayer`]'s linears under `encoder.layer.{i}.`, in the order of
/// [`EncoderLayer::slots`].
const LAYER_LINEARS: [&str; 6] = [
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
];

impl<B: Backend> EncoderLayer<B> {
    fn slots(&self) -> [&PeftLinear<B>; 6] {
        [
            &self.query,
            &self.key,
            &self.value,
            &self.attention_output,
            &self.intermediate,
            &self.output,
        ]
    }

    fn slots_mut(&mut self) -> [&mut PeftLinear<B>; 6] {
        [
            &mut self.query,
            &mut self.key,
            &mut self.value,
            &mut self.attention_output,
            &mut self.intermediate,
            &mut self.output,
        ]
    }

    fn forward(
        &self,
        x: Tensor<B, 3>,
        mask_bias: Tensor<B, 4>,
        config: &EncoderConfig,
        shared: &SharedFactors<B>,
    ) -> Tensor<B, 3> {
        let context = self.self_attention(x.clone(), mask_bias, config.num_attention_heads, shared);
        let x = norm_f32(
            &self.attention_norm,
            self.attention_output.forward(context, shared) + x,
        );
        let inner = config
            .hidden_act
            .apply(self.intermediate.forward(x.clone(), shared));
        norm_f32(&self.output_norm, self.output.forward(inner, shared) + x)
    }

    /// Scaled dot-product attention over all positions, masked keys pushed to ~0 weight.
    fn self_attention(
        &self,
        x: Tensor<B, 3>,
        mask_bias: Tensor<B, 4>,
        heads: usize,
        shared: &SharedFactors<B>,
    ) -> Tensor<B, 3> {
        let [batch, seq, hidden] = x.dims();
        let head_dim = hidden / heads;
        let split = |t: Tensor<B, 3>| t.reshape([batch, seq, heads, head_dim]).swap_dims(1, 2);
        let x = SharedInput::new(x);
        let q = split(self.query.forward_shared(&x, shared));
        let k = split(self.key.forward_shared(&x, shared));
        let v = split(self.value.forward_shared(&x, shared));
        let dtype = FloatDType::from(q.dtype());
        // Scores in the hidden dtype, the masked softmax in f32.
        let scores = q.matmul(k.swap_dims(2, 3)) / (head_dim as f64).sqrt();
        masked_softmax(scores.cast(FloatDType::F32), |s| s + mask_bias)
            .cast(dtype)
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([batch, seq, hidden])
    }
}

/// The classification head on the first token's state: RoBERTa's `classifier.dense` + tanh,
/// then `classifier.out_proj`. BERT's `classifier` is the `out_proj` alone, with no `dense`: its
/// dense + tanh is the pooler, part of the body.
#[derive(Module, Debug)]
pub struct ClassificationHead<B: Backend> {
    pub dense: Option<PeftLinear<B>>,
    pub out_proj: PeftLinear<B>,
}

/// A BERT or RoBERTa model for sequence classification or regression.
#[derive(Module, Debug)]
pub struct EncoderClassifier<B: Backend> {
    pub embeddings: Embeddings<B>,
    pub layers: Vec<EncoderLayer<B>>,
    /// BERT's pooler (`dense` + tanh on the first token); RoBERTa has none.
    pub pooler: Option<PeftLinear<B>>,
    /// Named `classifier` so that `modules_to_save = ["classifier"]` selects it.
    pub classifier: ClassificationHead<B>,
    /// LoTR factors shared between adapted layers.
    pub shared: SharedFactors<B>,
    #[module(skip)]
    pub config: EncoderConfig,
}

/// Reads tensors of one HF checkpoint onto a device.
struct Loader<'a, B: Backend> {
    ckpt: &'a Checkpoint,
    device: &'a B::Device,
    /// Prefix of the body's tensors in this checkpoint (`bert.`, `roberta.` or none).
    body: &'a str,
}

impl<B: Backend> Loader<'_, B> {
    /// `alternative` when only it is in the checkpoint, else `primary` (so errors name that).
    fn present(&self, primary: String, alternative: String) -> String {
        if !self.ckpt.contains(&primary) && self.ckpt.contains(&alternative) {
            alternative
        } else {
            primary
        }
    }

    fn linear(&self, name: &str, in_features: usize, out_features: usize) -> Result<PeftLinear<B>> {
        PeftLinear::load(
            self.ckpt,
            name,
            in_features,
            out_features,
            true,
            self.device,
        )
    }

    fn body_linear(
        &self,
        name: &str,
        in_features: usize,
        out_features: usize,
    ) -> Result<PeftLinear<B>> {
        self.linear(&format!("{}{name}", self.body), in_features, out_features)
    }

    fn embedding(&self, name: &str, rows: usize, dim: usize) -> Result<Embedding<B>> {
        let weight = self.ckpt.tensor(
            &format!("{}{name}.weight", self.body),
            [rows, dim],
            self.device,
        )?;
        Ok(Embedding {
            weight: frozen(weight),
        })
    }

    /// `{name}.weight` / `.bias`, or `.gamma` / `.beta` as original TF-converted BERT
    /// checkpoints name them.
    fn layer_norm(&self, name: &str, dim: usize, eps: f64) -> Result<LayerNorm<B>> {
        let prefix = format!("{}{name}", self.body);
        let weight = self.present(format!("{prefix}.weight"), format!("{prefix}.gamma"));
        let bias = self.present(format!("{prefix}.bias"), format!("{prefix}.beta"));
        let mut norm = LayerNormConfig::new(dim)
            .with_epsilon(eps)
            .init(self.device);
        // Kept in f32 (the norm computes in f32), with the values of the base dtype.
        let f32 = |name: &str| -> Result<Tensor<B, 1>> {
            Ok(self
                .ckpt
                .tensor::<B, 1>(name, [dim], self.device)?
                .cast(FloatDType::F32))
        };
        norm.gamma = frozen(f32(&weight)?);
        norm.beta = Some(frozen(f32(&bias)?));
        Ok(norm)
    }
}

/// LayerNorm computed in f32 whatever the hidden dtype (as transformers does in bf16), the
/// result in the input's dtype. The norm's parameters are f32.
fn norm_f32<B: Backend, const D: usize>(norm: &LayerNorm<B>, x: Tensor<B, D>) -> Tensor<B, D> {
    let dtype = FloatDType::from(x.dtype());
    norm.forward(x.cast(FloatDType::F32)).cast(dtype)
}

/// A new frozen linear: weights N(0, `std`) in HF layout `[out, in]`, zero bias.
fn fresh_linear<B: Backend>(
    in_features: usize,
    out_features: usize,
    std: f64,
    rng: &mut rand::rngs::StdRng,
    device: &B::Device,
) -> PeftLinear<B> {
    let weight =
        gaussian::standard_normal(rng, out_features, in_features) * faer::Scale(std as f32);
    let weight = mat_to_tensor(weight.as_ref(), device);
    PeftLinear::Plain(frozen_linear(
        weight,
        Some(Tensor::zeros([out_features], device)),
    ))
}

impl<B: Backend> EncoderClassifier<B> {
    /// Loads `dir/config.json` and the checkpoint in `dir`, head included.
    pub fn load(dir: &Path, device: &B::Device) -> Result<(Self, LoadReport)> {
        Self::load_with(dir, HeadInit::Checkpoint, device)
    }

    /// Loads the model with the head taken from the checkpoint or newly initialised.
    pub fn load_with(dir: &Path, head: HeadInit, device: &B::Device) -> Result<(Self, LoadReport)> {
        Self::load_as(dir, head, Precision::Auto, device)
    }

    /// [`load_with`](Self::load_with) with the frozen base in `precision`.
    pub fn load_as(
        dir: &Path,
        head: HeadInit,
        precision: Precision,
        device: &B::Device,
    ) -> Result<(Self, LoadReport)> {
        let hf = HfConfig::read(dir)?;
        let config = EncoderConfig::from_hf(&hf)?;
        let ckpt = super::precision::open_weights::<B>(dir, &hf, precision, device)?;
        let (model, initialized) = Self::build(config, &ckpt, head, device)?;
        Ok((
            model,
            LoadReport {
                initialized,
                ..LoadReport::of(&ckpt)
            },
        ))
    }

    /// Builds the model from an opened checkpoint. Body tensors may carry the `bert.` /
    /// `roberta.` prefix (task models) or none (a bare `BertModel`); head tensors are unprefixed.
    pub fn from_checkpoint(
        config: EncoderConfig,
        ckpt: &Checkpoint,
        head: HeadInit,
        device: &B::Device,
    ) -> Result<Self> {
        Self::build(config, ckpt, head, device).map(|(model, _)| model)
    }

    /// [`from_checkpoint`](Self::from_checkpoint), also returning the newly initialised tensors.
    fn build(
        mut config: EncoderConfig,
        ckpt: &Checkpoint,
        head: HeadInit,
        device: &B::Device,
    ) -> Result<(Self, Vec<String>)> {
        let probe = "embeddings.word_embeddings.weight";
        let body = [config.body_prefix(), ""]
            .into_iter()
            .find(|p| ckpt.contains(&format!("{p}{probe}")))
            .unwrap_or(config.body_prefix());
        let loader = Loader::<B> { ckpt, device, body };
        let (h, eps) = (config.hidden_size, config.layer_norm_eps);

        let embeddings = Embeddings {
            word: loader.embedding("embeddings.word_embeddings", config.vocab_size, h)?,
            position: loader.embedding(
                "embeddings.position_embeddings",
                config.max_position_embeddings,
                h,
            )?,
            token_type: loader.embedding(
                "embeddings.token_type_embeddings",
                config.type_vocab_size,
                h,
            )?,
            norm: loader.layer_norm("embeddings.LayerNorm", h, eps)?,
        };
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let name = |part: &str| format!("encoder.layer.{i}.{part}");
                let inter = config.intermediate_size;
                Ok(EncoderLayer {
                    query: loader.body_linear(&name("attention.self.query"), h, h)?,
                    key: loader.body_linear(&name("attention.self.key"), h, h)?,
                    value: loader.body_linear(&name("attention.self.value"), h, h)?,
                    attention_output: loader.body_linear(&name("attention.output.dense"), h, h)?,
                    attention_norm: loader.layer_norm(
                        &name("attention.output.LayerNorm"),
                        h,
                        eps,
                    )?,
                    intermediate: loader.body_linear(&name("intermediate.dense"), h, inter)?,
                    output: loader.body_linear(&name("output.dense"), inter, h)?,
                    output_norm: loader.layer_norm(&name("output.LayerNorm"), h, eps)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;

        let (new_labels, seed, always_new) = match head {
            HeadInit::Checkpoint => (config.num_labels, None, false),
            HeadInit::Fresh { num_labels, seed } => (num_labels, Some(seed), true),
            HeadInit::IfMissing { num_labels, seed } => (num_labels, Some(seed), false),
        };
        if new_labels == 0 {
            return Err(Error::invalid(
                "num_labels",
                0,
                "a head needs at least one output",
            ));
        }
        let out_proj = match config.model_type {
            ModelType::Roberta => "classifier.out_proj",
            _ => "classifier",
        };
        // A head linear is new when asked for, or when allowed and the checkpoint lacks it.
        let is_new = |name: &str| {
            seed.is_some() && (always_new || !ckpt.contains(&format!("{name}.weight")))
        };
        let num_labels = if is_new(out_proj) {
            new_labels
        } else {
            config.num_labels
        };
        if num_labels != config.num_labels {
            config.num_labels = num_labels;
            config.problem_type = ProblemType::default_for(num_labels);
        }
        let mut rng = seed.map(gaussian::rng);
        let mut initialized = Vec::new();
        let std = config.initializer_range;
        // A head linear `[h] -> [out]`: new (transformers' init) or from the checkpoint.
        let mut head_linear = |name: &str, out: usize, new: bool| match rng.as_mut() {
            Some(rng) if new => {
                initialized.extend([format!("{name}.weight"), format!("{name}.bias")]);
                Ok(fresh_linear::<B>(h, out, std, rng, device))
            }
            _ => loader.linear(name, h, out),
        };
        let pooler_name = format!("{body}pooler.dense");
        let pooler = match config.model_type {
            ModelType::Roberta => None,
            // Part of the pretrained body: loaded whenever the checkpoint has it.
            _ => {
                let new = seed.is_some() && !ckpt.contains(&format!("{pooler_name}.weight"));
                Some(head_linear(&pooler_name, h, new)?)
            }
        };
        let classifier = match config.model_type {
            ModelType::Roberta => ClassificationHead {
                dense: Some(head_linear(
                    "classifier.dense",
                    h,
                    is_new("classifier.dense"),
                )?),
                out_proj: head_linear(out_proj, num_labels, is_new(out_proj))?,
            },
            _ => ClassificationHead {
                dense: None,
                out_proj: head_linear(out_proj, num_labels, is_new(out_proj))?,
            },
        };

        let model = Self {
            embeddings,
            layers,
            pooler,
            classifier,
            shared: SharedFactors::default(),
            config,
        };
        Ok((model, initialized))
    }

    /// Logits `[batch, num_labels]` for `input_ids` `[batch, seq]` with `attention_mask` (1 for
    /// real tokens, 0 for padding) and optional `token_type_ids` (default: all segment 0).
    ///
    /// # Panics
    /// When `seq` exceeds [`EncoderConfig::max_sequence_length`]: callers truncate inputs (as
    /// the tokenizer's `max_length` does) and keep ids within the vocabulary.
    pub fn forward(
        &self,
        input_ids: Tensor<B, 2, Int>,
        attention_mask: Tensor<B, 2, Int>,
        token_type_ids: Option<Tensor<B, 2, Int>>,
    ) -> Tensor<B, 2> {
        let hidden = self.encode(input_ids, attention_mask, token_type_ids);
        let [batch, _, h] = hidden.dims();
        let first = hidden.narrow(1, 0, 1).reshape([batch, h]);
        let dense = self.pooler.iter().chain(&self.classifier.dense);
        let x = dense.fold(first, |x, d| d.forward(x, &self.shared).tanh());
        self.classifier.out_proj.forward(x, &self.shared)
    }

    /// The last hidden states `[batch, seq, hidden]` (arguments as for [`forward`](Self::forward)).
    pub fn encode(
        &self,
        input_ids: Tensor<B, 2, Int>,
        attention_mask: Tensor<B, 2, Int>,
        token_type_ids: Option<Tensor<B, 2, Int>>,
    ) -> Tensor<B, 3> {
        let [batch, seq] = input_ids.dims();
        let max = self.config.max_sequence_length();
        assert!(
            seq <= max,
            "input of {seq} tokens is longer than the {max} this model's position table covers"
        );
        let mut x = self.embed(input_ids, token_type_ids);
        // Additive key mask, transformers' `(1 - mask) · finfo.min`: finite, so a row whose keys
        // are all masked still softmaxes to numbers instead of NaN.
        let mask_bias = (attention_mask.float().neg() + 1.0)
            .mul_scalar(f32::MIN)
            .reshape([batch, 1, 1, seq]);
        for layer in &self.layers {
            x = layer.forward(x, mask_bias.clone(), &self.config, &self.shared);
        }
        x
    }

    fn embed(
        &self,
        input_ids: Tensor<B, 2, Int>,
        token_type_ids: Option<Tensor<B, 2, Int>>,
    ) -> Tensor<B, 3> {
        let [batch, seq] = input_ids.dims();
        let device = input_ids.device();
        let positions = match self.config.model_type {
            // transformers' create_position_ids_from_input_ids: padding_idx + 1 + the running
            // count of non-pad tokens; pad tokens get padding_idx.
            ModelType::Roberta => {
                let pad = self.config.pad_token_id as i64;
                let real = input_ids.clone().not_equal_elem(pad).int();
                real.clone().cumsum(1) * real + pad
            }
            _ => Tensor::<B, 1, Int>::arange(0..seq as i64, &device).reshape([1, seq]),
        };
        let token_types = token_type_ids.unwrap_or_else(|| Tensor::zeros([batch, seq], &device));
        let e = &self.embeddings;
        let sum = e.word.forward(input_ids)
            + e.position.forward(positions)
            + e.token_type.forward(token_types);
        norm_f32(&e.norm, sum)
    }

    /// Every weight under its HF name (`roberta.`/`bert.` body prefix, unprefixed head) in HF
    /// layout, for writing a merged model folder. Errors when an adapter is still attached:
    /// merge first.
    pub fn hf_tensors(&self) -> Result<Vec<OutTensor>> {
        let body = self.config.body_prefix();
        let mut out = Vec::new();
        let mut push = |name: String, shape: Vec<usize>, values: Vec<f32>| {
            out.push(OutTensor::F32(name, shape, values));
        };
        let e = &self.embeddings;
        for (name, table) in [
            ("word_embeddings", &e.word),
            ("position_embeddings", &e.position),
            ("token_type_embeddings", &e.token_type),
        ] {
            let weight = table.weight.val();
            push(
                format!("{body}embeddings.{name}.weight"),
                weight.dims().to_vec(),
                tensor_to_vec(weight),
            );
        }
        let mut norm = |name: String, n: &LayerNorm<B>| {
            let gamma = n.gamma.val();
            push(
                format!("{name}.weight"),
                gamma.dims().to_vec(),
                tensor_to_vec(gamma),
            );
            if let Some(beta) = &n.beta {
                let beta = beta.val();
                push(
                    format!("{name}.bias"),
                    beta.dims().to_vec(),
                    tensor_to_vec(beta),
                );
            }
        };
        norm(format!("{body}embeddings.LayerNorm"), &e.norm);
        for (i, layer) in self.layers.iter().enumerate() {
            let prefix = format!("{body}encoder.layer.{i}");
            norm(
                format!("{prefix}.attention.output.LayerNorm"),
                &layer.attention_norm,
            );
            norm(format!("{prefix}.output.LayerNorm"), &layer.output_norm);
        }
        for (name, slot) in self.linears() {
            let PeftLinear::Plain(linear) = slot else {
                return Err(Error::invalid(
                    "model",
                    name,
                    "still carries an adapter; merge it first",
                ));
            };
            let weight = burn_to_hf(linear.weight.val());
            out.push(OutTensor::F32(
                format!("{name}.weight"),
                weight.dims().to_vec(),
                tensor_to_vec(weight),
            ));
            if let Some(bias) = &linear.bias {
                let bias = bias.val();
                out.push(OutTensor::F32(
                    format!("{name}.bias"),
                    bias.dims().to_vec(),
                    tensor_to_vec(bias),
                ));
            }
        }
        Ok(out)
    }

    /// Full HF module names of the linear layers, in model order (as [`PeftModel::linears`]).
    fn linear_names(&self) -> Vec<String> {
        let body = self.config.body_prefix();
        let mut names: Vec<String> = (0..self.layers.len())
            .flat_map(|i| LAYER_LINEARS.map(|part| format!("{body}encoder.layer.{i}.{part}")))
            .collect();
        if self.pooler.is_some() {
            names.push(format!("{body}pooler.dense"));
        }
        match self.classifier.dense {
            Some(_) => names.extend(["classifier.dense".into(), "classifier.out_proj".into()]),
            None => names.push("classifier".into()),
        }
        names
    }
}

impl<B: Backend> PeftModel<B> for EncoderClassifier<B> {
    fn linears(&self) -> Vec<(String, &PeftLinear<B>)> {
        let mut slots: Vec<&PeftLinear<B>> =
            self.layers.iter().flat_map(EncoderLayer::slots).collect();
        slots.extend(self.pooler.as_ref());
        slots.extend(self.classifier.dense.as_ref());
        slots.push(&self.classifier.out_proj);
        self.linear_names().into_iter().zip(slots).collect()
    }

    fn linears_mut(&mut self) -> Vec<(String, &mut PeftLinear<B>)> {
        let names = self.linear_names();
        let mut slots: Vec<&mut PeftLinear<B>> = self
            .layers
            .iter_mut()
            .flat_map(EncoderLayer::slots_mut)
            .collect();
        slots.extend(self.pooler.as_mut());
        slots.extend(self.classifier.dense.as_mut());
        slots.push(&mut self.classifier.out_proj);
        names.into_iter().zip(slots).collect()
    }

    fn shared(&self) -> &SharedFactors<B> {
        &self.shared
    }

    fn shared_mut(&mut self) -> &mut SharedFactors<B> {
        &mut self.shared
    }

    /// The classifier and BERT's pooler: `all-linear` leaves them to `modules_to_save`.
    fn is_head(&self, name: &str) -> bool {
        name == "classifier" || name.starts_with("classifier.") || name.ends_with("pooler.dense")
    }

    /// PEFT's default for BERT and RoBERTa: the query and value projections.
    fn default_targets(&self) -> Targets {
        Targets::Names(vec!["query".into(), "value".into()])
    }
}

impl<B: Backend> HasAdapters<B> for EncoderClassifier<B> {
    fn adapted_layers(&self) -> Vec<&AdaptedLinear<B>> {
        super::inject::adapted_layers(self.linears())
    }
}
