//! Text ↔ token ids with an HF `tokenizer.json` (the `tokenizers` crate), and the special tokens
//! from `tokenizer_config.json`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{Error, Result};

/// A tokenizer with its special tokens.
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    pub pad_token_id: Option<u32>,
}

#[derive(Deserialize, Default)]
struct TokenizerConfig {
    bos_token: Option<SpecialToken>,
    eos_token: Option<SpecialToken>,
    pad_token: Option<SpecialToken>,
}

/// HF writes special tokens as a string or as `{"content": …}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum SpecialToken {
    Text(String),
    Added { content: String },
}

impl SpecialToken {
    fn content(&self) -> &str {
        match self {
            SpecialToken::Text(t) => t,
            SpecialToken::Added { content } => content,
        }
    }
}

impl TextTokenizer {
    /// Loads `tokenizer.json` (and `tokenizer_config.json` when present) from a model folder,
    /// or a `tokenizer.json` path directly.
    pub fn load(path: &Path) -> Result<Self> {
        let (file, dir) = if path.is_dir() {
            (path.join("tokenizer.json"), path.to_path_buf())
        } else {
            (
                path.to_path_buf(),
                path.parent().map(Path::to_path_buf).unwrap_or_default(),
            )
        };
        if !file.is_file() {
            return Err(Error::BadFile {
                path: file,
                message: "no tokenizer.json here (pass --tokenizer FILE)".into(),
            });
        }
        let inner = tokenizers::Tokenizer::from_file(&file).map_err(|e| Error::BadFile {
            path: file.clone(),
            message: format!("not a valid tokenizer.json: {e}"),
        })?;
        let config_path = dir.join("tokenizer_config.json");
        let config: TokenizerConfig = if config_path.is_file() {
            let text = std::fs::read_to_string(&config_path).map_err(|source| Error::Io {
                path: config_path.clone(),
                source,
            })?;
            serde_json::from_str(&text).map_err(|e| Error::BadFile {
                path: config_path.clone(),
                message: e.to_string(),
            })?
        } else {
            TokenizerConfig::default()
        };
        let id = |t: &Option<SpecialToken>| t.as_ref().and_then(|t| inner.token_to_id(t.content()));
        Ok(Self {
            bos_token_id: id(&config.bos_token),
            eos_token_id: id(&config.eos_token),
            pad_token_id: id(&config.pad_token),
            inner,
            path: file,
        })
    }

    /// Token ids of `text`; `special` adds what the tokenizer's post-processor adds (BOS).
    pub fn encode(&self, text: &str, special: bool) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode(text, special)
            .map_err(|e| Error::BadFile {
                path: self.path.clone(),
                message: format!("cannot encode text: {e}"),
            })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Text of `ids`, special tokens skipped.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(|e| Error::BadFile {
            path: self.path.clone(),
            message: format!("cannot decode ids: {e}"),
        })
    }

    /// The tokenizer.json this was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying HF tokenizer (pair templates for classification).
    pub fn hf(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}
