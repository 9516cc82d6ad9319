//! A model's shape without its weights: the linear layers it has, with their HF module names
//! and `[out, in]` weight shapes, its other parameters (embeddings, norms) and sizes, from
//! `config.json` alone. Recipes are checked against it before gigabytes of weights are read
//! (`burn-peft check`), and memory can be estimated from it.
//!
//! The names and shapes are those the loaders ([`Decoder`](super::decoder::Decoder),
//! [`EncoderClassifier`](super::encoder::EncoderClassifier)) build, in the same order as
//! [`PeftModel::linears`](super::PeftModel::linears); a test holds the two to each other.

use std::path::{Path, PathBuf};

use burn::tensor::FloatDType;

use super::config::{GenerationConfig, HfConfig, ModelType};
use super::decoder::DecoderConfig;
use super::encoder::EncoderConfig;
use super::precision::named_dtype;
use super::rwkv6::Rwkv6Config;
use crate::adapter::Targets;
use crate::{Error, Result};

/// One linear layer: `y = x Wᵀ + b` with `W` of shape `[out_features, in_features]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinearShape {
    /// Full HF module name, e.g. `model.layers.0.self_attn.q_proj`.
    pub name: String,
    pub out_features: usize,
    pub in_features: usize,
    pub bias: bool,
    /// An output head (`lm_head`, `score`, a classifier, BERT's pooler): `all-linear` leaves it
    /// out, as PEFT does.
    pub is_head: bool,
}

impl LinearShape {
    /// Weight and bias parameters.
    pub fn params(&self) -> usize {
        self.out_features * self.in_features + if self.bias { self.out_features } else { 0 }
    }
}

/// A parameter tensor that is not part of a linear layer (embedding tables, norm weights).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtherParam {
    /// HF module name owning it, e.g. `model.embed_tokens`.
    pub module: String,
    pub params: usize,
}

/// Which head the model carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum HeadSpec {
    /// What `config.json` describes: a causal LM (or a `*ForSequenceClassification` decoder's
    /// `score` head); encoders their classifier with the config's number of labels.
    #[default]
    FromConfig,
    /// A sequence-classification head with this many outputs, as training on a GLUE task sets
    /// up (a fresh `score` head on a decoder, a fresh classifier on an encoder when the
    /// config's differs).
    Classifier { num_labels: usize },
}

/// A model's layers and sizes from `config.json`.
#[derive(Clone, Debug)]
pub struct ModelSkeleton {
    /// The config.json it was read from.
    pub config_path: PathBuf,
    pub model_type: ModelType,
    pub num_layers: usize,
    pub hidden_size: usize,
    /// The MLP's width.
    pub intermediate_size: usize,
    /// Query heads of the attention (each scores every key).
    pub num_heads: usize,
    pub vocab_size: usize,
    /// The dtype config.json names (`dtype` / `torch_dtype`), if any.
    pub dtype: Option<FloatDType>,
    /// Outputs of the classification head, if the model has one.
    pub num_labels: Option<usize>,
    /// The longest input the model's positions cover (decoders: `max_position_embeddings`,
    /// which RoPE may exceed at a quality cost; encoders: a hard limit).
    pub max_positions: usize,
    /// Every linear layer, in model order.
    pub linears: Vec<LinearShape>,
    /// Every other parameter tensor (embeddings, norms), by owning module.
    pub others: Vec<OtherParam>,
}

impl ModelSkeleton {
    /// Reads `dir/config.json` (or the file itself when `path` is a `.json` file).
    pub fn read(path: &Path, head: HeadSpec) -> Result<Self> {
        let hf = if path.extension().is_some_and(|e| e == "json") && path.is_file() {
            HfConfig::read_file(path)?
        } else {
            HfConfig::read(path)?
        };
        Self::from_config(&hf, head)
    }

    /// The skeleton of a parsed config.
    pub fn from_config(hf: &HfConfig, head: HeadSpec) -> Result<Self> {
        let skeleton = if hf.model_type.is_decoder() {
            let config = DecoderConfig::from_hf(hf, &GenerationConfig::default())?;
            Self::decoder(&config, &hf.path, head)
        } else if hf.model_type == ModelType::Rwkv6 {
            if let HeadSpec::Classifier { .. } = head {
                return Err(Error::invalid(
                    "data.task",
                    hf.path.display(),
                    "RWKV6 trains as a causal LM here; sequence classification is for the \
                     decoders and encoders",
                ));
            }
            let config = Rwkv6Config::from_hf(hf, &GenerationConfig::default())?;
            Self::rwkv6(&config, &hf.path)
        } else {
            let config = EncoderConfig::from_hf(hf)?;
            Self::encoder(&config, &hf.path, head)?
        };
        Ok(Self {
            dtype: named_dtype(hf),
            ..skeleton
        })
    }

    /// A Llama-family decoder: as [`Decoder::from_checkpoint`](super::decoder::Decoder) and
    /// [`Decoder::with_score_head`](super::decoder::Decoder::with_score_head) build it.
    pub fn decoder(c: &DecoderConfig, config_path: &Path, head: HeadSpec) -> Self {
        let (h, inter) = (c.hidden_size, c.intermediate_size);
        let (q, kv) = (c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim);
        let mut linears = Vec::new();
        let mut others = vec![OtherParam {
            module: "model.embed_tokens".into(),
            params: c.vocab_size * h,
        }];
        for l in 0..c.num_layers {
            let p = format!("model.layers.{l}");
            for (name, out_features, in_features, bias) in [
                ("self_attn.q_proj", q, h, c.qkv_bias),
                ("self_attn.k_proj", kv, h, c.qkv_bias),
                ("self_attn.v_proj", kv, h, c.qkv_bias),
                ("self_attn.o_proj", h, q, c.o_bias),
                ("mlp.gate_proj", inter, h, c.mlp_bias),
                ("mlp.up_proj", inter, h, c.mlp_bias),
                ("mlp.down_proj", h, inter, c.mlp_bias),
            ] {
                linears.push(LinearShape {
                    name: format!("{p}.{name}"),
                    out_features,
                    in_features,
                    bias,
                    is_head: false,
                });
            }
            for norm in ["input_layernorm", "post_attention_layernorm"] {
                others.push(OtherParam {
                    module: format!("{p}.{norm}"),
                    params: h,
                });
            }
        }
        others.push(OtherParam {
            module: "model.norm".into(),
            params: h,
        });
        let head_linear = |name: &str, out_features| LinearShape {
            name: name.into(),
            out_features,
            in_features: h,
            bias: false,
            is_head: true,
        };
        // A checkpoint with a `score` head has no LM head; a fresh score head is added next to
        // whatever the checkpoint has.
        if c.num_labels.is_none() && !c.tie_word_embeddings {
            linears.push(head_linear("lm_head", c.vocab_size));
        }
        let num_labels = match head {
            HeadSpec::FromConfig => c.num_labels,
            HeadSpec::Classifier { num_labels } => Some(num_labels),
        };
        if let Some(labels) = num_labels {
            linears.push(head_linear("score", labels));
        }
        Self {
            config_path: config_path.to_path_buf(),
            model_type: c.model_type,
            num_layers: c.num_layers,
            hidden_size: h,
            intermediate_size: inter,
            num_heads: c.num_heads,
            vocab_size: c.vocab_size,
            dtype: None,
            num_labels,
            max_positions: c.max_position_embeddings,
            linears,
            others,
        }
    }

    /// An RWKV6 causal LM, as [`Rwkv6::from_checkpoint`](super::rwkv6::Rwkv6) builds it (the
    /// released models' lerp and decay ranks).
    pub fn rwkv6(c: &Rwkv6Config, config_path: &Path) -> Self {
        let (h, a, f) = (c.hidden_size, c.attention_hidden_size, c.intermediate_size);
        let mut linears = Vec::new();
        let mut others = vec![OtherParam {
            module: "rwkv.embeddings".into(),
            params: c.vocab_size * h,
        }];
        let linear = |name: String, out_features, in_features, is_head| LinearShape {
            name,
            out_features,
            in_features,
            bias: false,
            is_head,
        };
        for l in 0..c.num_layers {
            let p = format!("rwkv.blocks.{l}");
            for (part, out_features, in_features) in [
                ("attention.receptance", a, h),
                ("attention.key", a, h),
                ("attention.value", a, h),
                ("attention.gate", a, h),
                ("attention.output", h, a),
                ("feed_forward.key", f, h),
                ("feed_forward.receptance", h, h),
                ("feed_forward.value", h, f),
            ] {
                linears.push(linear(
                    format!("{p}.{part}"),
                    out_features,
                    in_features,
                    false,
                ));
            }
            let mut norms = vec!["ln1", "ln2"];
            if l == 0 {
                norms.insert(0, "pre_ln");
            }
            for norm in norms {
                others.push(OtherParam {
                    module: format!("{p}.{norm}"),
                    params: 2 * h,
                });
            }
            // The time mix's own parameters (`time_*`, `ln_x`) and the channel mix's lerps.
            let linear_params = 4 * a * h + h * a + f * h + h * h + h * f;
            let feed_forward_lerps = 2 * h;
            others.push(OtherParam {
                module: format!("{p}.attention"),
                params: c.block_parameters() - linear_params - 4 * h - feed_forward_lerps,
            });
            others.push(OtherParam {
                module: format!("{p}.feed_forward"),
                params: feed_forward_lerps,
            });
        }
        others.push(OtherParam {
            module: "rwkv.ln_out".into(),
            params: 2 * h,
        });
        linears.push(linear("head".into(), c.vocab_size, h, true));
        Self {
            config_path: config_path.to_path_buf(),
            model_type: ModelType::Rwkv6,
            num_layers: c.num_layers,
            hidden_size: h,
            intermediate_size: f,
            num_heads: c.heads(),
            vocab_size: c.vocab_size,
            dtype: None,
            num_labels: None,
            // A recurrent model has no position table.
            max_positions: usize::MAX,
            linears,
            others,
        }
    }

    /// A BERT / RoBERTa sequence classifier, as
    /// [`EncoderClassifier::from_checkpoint`](super::encoder::EncoderClassifier) builds it with
    /// the body prefix of a task checkpoint (`roberta.`, `bert.`).
    pub fn encoder(c: &EncoderConfig, config_path: &Path, head: HeadSpec) -> Result<Self> {
        let num_labels = match head {
            HeadSpec::FromConfig => c.num_labels,
            HeadSpec::Classifier { num_labels: 0 } => {
                return Err(Error::invalid(
                    "num_labels",
                    0,
                    "a head needs at least one output",
                ));
            }
            HeadSpec::Classifier { num_labels } => num_labels,
        };
        let body = c.body_prefix();
        let (h, inter) = (c.hidden_size, c.intermediate_size);
        let linear = |name: String, out_features, in_features, is_head| LinearShape {
            name,
            out_features,
            in_features,
            bias: true,
            is_head,
        };
        let layer_norm = |module: String| OtherParam {
            module,
            params: 2 * h,
        };
        let embedding = |name: &str, rows: usize| OtherParam {
            module: format!("{body}embeddings.{name}"),
            params: rows * h,
        };
        let mut others = vec![
            embedding("word_embeddings", c.vocab_size),
            embedding("position_embeddings", c.max_position_embeddings),
            embedding("token_type_embeddings", c.type_vocab_size),
            layer_norm(format!("{body}embeddings.LayerNorm")),
        ];
        let mut linears = Vec::new();
        for i in 0..c.num_hidden_layers {
            let p = format!("{body}encoder.layer.{i}");
            for (part, out_features, in_features) in [
                ("attention.self.query", h, h),
                ("attention.self.key", h, h),
                ("attention.self.value", h, h),
                ("attention.output.dense", h, h),
                ("intermediate.dense", inter, h),
                ("output.dense", h, inter),
            ] {
                linears.push(linear(
                    format!("{p}.{part}"),
                    out_features,
                    in_features,
                    false,
                ));
            }
            others.push(layer_norm(format!("{p}.attention.output.LayerNorm")));
            others.push(layer_norm(format!("{p}.output.LayerNorm")));
        }
        match c.model_type {
            ModelType::Roberta => {
                linears.push(linear("classifier.dense".into(), h, h, true));
                linears.push(linear("classifier.out_proj".into(), num_labels, h, true));
            }
            _ => {
                linears.push(linear(format!("{body}pooler.dense"), h, h, true));
                linears.push(linear("classifier".into(), num_labels, h, true));
            }
        }
        Ok(Self {
            config_path: config_path.to_path_buf(),
            model_type: c.model_type,
            num_layers: c.num_hidden_layers,
            hidden_size: h,
            intermediate_size: inter,
            num_heads: c.num_attention_heads,
            vocab_size: c.vocab_size,
            dtype: None,
            num_labels: Some(num_labels),
            max_positions: c.max_sequence_length(),
            linears,
            others,
        })
    }

    /// Every parameter of the model.
    pub fn total_params(&self) -> usize {
        self.linears.iter().map(LinearShape::params).sum::<usize>()
            + self.others.iter().map(|o| o.params).sum::<usize>()
    }

    /// Every module name: the linears, the other parameters' owners and all their ancestors
    /// (`model`, `model.layers.0`, `classifier`, …), sorted.
    pub fn module_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        let owners = self
            .linears
            .iter()
            .map(|l| l.name.as_str())
            .chain(self.others.iter().map(|o| o.module.as_str()));
        for owner in owners {
            let mut end = 0;
            for part in owner.split('.') {
                end += part.len();
                names.push(owner[..end].to_string());
                end += 1;
            }
        }
        names.sort();
        names.dedup();
        names
    }

    /// Parameters of the module `name` and everything under it.
    pub fn params_under(&self, name: &str) -> usize {
        let under = |owner: &str| owner == name || owner.starts_with(&format!("{name}."));
        self.linears
            .iter()
            .filter(|l| under(&l.name))
            .map(LinearShape::params)
            .sum::<usize>()
            + self
                .others
                .iter()
                .filter(|o| under(&o.module))
                .map(|o| o.params)
                .sum::<usize>()
    }

    /// PEFT's default `target_modules` for the architecture (what the loaders use when a recipe
    /// names none).
    pub fn default_targets(&self) -> Targets {
        if self.model_type == ModelType::Rwkv6 {
            // SORSA's `--rwkv`: every linear layer of the blocks.
            return Targets::Pattern(crate::adapter::targets::ALL_LINEAR.to_string());
        }
        let names: &[&str] = if self.model_type.is_decoder() {
            &["q_proj", "v_proj"]
        } else {
            &["query", "value"]
        };
        Targets::Names(names.iter().map(|s| s.to_string()).collect())
    }
}
