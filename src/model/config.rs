//! Reading an HF model folder's `config.json`: which architecture it is, and typed access to its
//! fields with errors that name the file and the field.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// Architectures burn-peft loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelType {
    Llama,
    Mistral,
    Qwen2,
    Gemma,
    Bert,
    Roberta,
    Rwkv6,
}

impl ModelType {
    pub const SUPPORTED: &'static str = "llama, mistral, qwen2, gemma, bert, roberta, rwkv6";

    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "llama" => ModelType::Llama,
            "mistral" => ModelType::Mistral,
            "qwen2" => ModelType::Qwen2,
            "gemma" => ModelType::Gemma,
            "bert" => ModelType::Bert,
            "roberta" => ModelType::Roberta,
            "rwkv6" => ModelType::Rwkv6,
            _ => return None,
        })
    }

    /// The name transformers' classes start with (`Llama` in `LlamaForCausalLM`).
    pub fn class_prefix(self) -> &'static str {
        match self {
            ModelType::Llama => "Llama",
            ModelType::Mistral => "Mistral",
            ModelType::Qwen2 => "Qwen2",
            ModelType::Gemma => "Gemma",
            ModelType::Bert => "Bert",
            ModelType::Roberta => "Roberta",
            ModelType::Rwkv6 => "Rwkv6",
        }
    }

    /// A Llama-family transformer decoder ([`super::decoder::Decoder`]).
    pub fn is_decoder(self) -> bool {
        matches!(
            self,
            ModelType::Llama | ModelType::Mistral | ModelType::Qwen2 | ModelType::Gemma
        )
    }

    /// A causal language model: a decoder or RWKV6.
    pub fn is_causal_lm(self) -> bool {
        self.is_decoder() || self == ModelType::Rwkv6
    }
}

/// A parsed `config.json` with its path.
#[derive(Debug, Clone)]
pub struct HfConfig {
    pub path: PathBuf,
    pub model_type: ModelType,
    pub json: serde_json::Value,
}

impl HfConfig {
    /// Reads `dir/config.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        Self::read_file(&dir.join("config.json"))
    }

    /// Reads a `config.json` file.
    pub fn read_file(path: &Path) -> Result<Self> {
        let path = path.to_path_buf();
        let json: serde_json::Value = crate::io::read_json(&path)?;
        let name = json
            .get("model_type")
            .and_then(|v| v.as_str())
            .ok_or_else(|| Error::BadFile {
                path: path.clone(),
                message: "no `model_type` field".into(),
            })?;
        let model_type = ModelType::from_name(name).ok_or_else(|| Error::BadFile {
            path: path.clone(),
            message: format!(
                "unsupported model_type `{name}` (supported: {})",
                ModelType::SUPPORTED
            ),
        })?;
        Ok(Self {
            path,
            model_type,
            json,
        })
    }

    /// This config for a `*ForSequenceClassification` model with `num_labels` outputs (a merged
    /// model with a trained head): `architectures` set accordingly and, when the number of
    /// labels changes, transformers' generic `LABEL_i` names.
    pub fn for_classifier(&self, num_labels: usize) -> serde_json::Value {
        let mut json = self.json.clone();
        let Some(map) = json.as_object_mut() else {
            return json;
        };
        let class = format!(
            "{}ForSequenceClassification",
            self.model_type.class_prefix()
        );
        map.insert("architectures".into(), serde_json::json!([class]));
        let current = map
            .get("id2label")
            .and_then(|m| m.as_object())
            .map(|m| m.len())
            .or_else(|| {
                map.get("num_labels")
                    .and_then(|n| n.as_u64())
                    .map(|n| n as usize)
            });
        if current != Some(num_labels) {
            let names: Vec<String> = (0..num_labels).map(|i| format!("LABEL_{i}")).collect();
            let id2label: serde_json::Map<String, serde_json::Value> = names
                .iter()
                .enumerate()
                .map(|(i, n)| (i.to_string(), n.clone().into()))
                .collect();
            let label2id: serde_json::Map<String, serde_json::Value> = names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), i.into()))
                .collect();
            map.insert("id2label".into(), id2label.into());
            map.insert("label2id".into(), label2id.into());
            map.remove("num_labels");
        }
        json
    }

    /// Deserialises the config into an architecture's typed view.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_value(self.json.clone()).map_err(|e| Error::BadFile {
            path: self.path.clone(),
            message: format!("{e}"),
        })
    }
}

/// A token id field that HF writes as a number, a list of numbers, or null.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    #[default]
    None,
    One(u32),
    Many(Vec<u32>),
}

impl TokenIds {
    pub fn first(&self) -> Option<u32> {
        match self {
            TokenIds::None => None,
            TokenIds::One(id) => Some(*id),
            TokenIds::Many(ids) => ids.first().copied(),
        }
    }

    pub fn all(&self) -> Vec<u32> {
        match self {
            TokenIds::None => Vec::new(),
            TokenIds::One(id) => vec![*id],
            TokenIds::Many(ids) => ids.clone(),
        }
    }

    pub fn or(self, other: TokenIds) -> TokenIds {
        match self {
            TokenIds::None => other,
            some => some,
        }
    }
}

/// `generation_config.json`'s token ids, which override config.json's when present.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GenerationConfig {
    #[serde(default)]
    pub bos_token_id: TokenIds,
    #[serde(default)]
    pub eos_token_id: TokenIds,
    #[serde(default)]
    pub pad_token_id: TokenIds,
}

impl GenerationConfig {
    /// Reads `dir/generation_config.json` if it exists.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join("generation_config.json");
        if !path.is_file() {
            return Ok(Self::default());
        }
        crate::io::read_json(&path)
    }
}
