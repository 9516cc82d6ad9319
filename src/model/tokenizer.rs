//! Text ↔ token ids with an HF `tokenizer.json` (the `tokenizers` crate), and the special tokens
//! and chat templates from `tokenizer_config.json` (or `chat_template.jinja`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::chat_template::ChatTemplate;
use super::source::ModelSource;
use super::world_tokenizer::{self, WorldTokenizer};
use crate::{Error, Result};

/// Each token's byte range `(start, end)` in the encoded text.
pub type Offsets = Vec<(usize, usize)>;

/// A tokenizer with its special tokens.
pub struct TextTokenizer {
    inner: Engine,
    path: PathBuf,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    pub pad_token_id: Option<u32>,
    /// `bos_token`, `eos_token`, … as text, the variables chat templates see.
    special_tokens: BTreeMap<String, String>,
    /// Chat template sources, compiled when asked for.
    chat_templates: Vec<ChatTemplateSource>,
}

/// What turns text into ids: an HF `tokenizer.json`, or RWKV's World vocabulary.
enum Engine {
    /// Boxed: an HF tokenizer is 1.5 KB inline, the World tokenizer's tables live on the heap.
    Hf(Box<tokenizers::Tokenizer>),
    World(WorldTokenizer),
}

/// A chat template as found on disk.
struct ChatTemplateSource {
    /// `None` for the only (or default) template.
    name: Option<String>,
    source: String,
    origin: PathBuf,
}

#[derive(Deserialize, Default)]
struct TokenizerConfig {
    bos_token: Option<SpecialToken>,
    eos_token: Option<SpecialToken>,
    pad_token: Option<SpecialToken>,
    unk_token: Option<SpecialToken>,
    chat_template: Option<ChatTemplateField>,
}

/// `chat_template` is one template, or a list of named ones (`default`, `tool_use`, …).
#[derive(Deserialize)]
#[serde(untagged)]
enum ChatTemplateField {
    One(String),
    Named(Vec<NamedTemplate>),
}

#[derive(Deserialize)]
struct NamedTemplate {
    name: String,
    template: String,
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
    /// The tokenizer of the model at `model`: `explicit` when given (a folder or a
    /// `tokenizer.json`), else the HF folder's own; for a llama2.c checkpoint (a `.bin`, or a
    /// folder holding one) the folder the `.bin` sits in when it has a `tokenizer.json`, else
    /// its `hf/` subfolder; for an RWKV6 `.pth` the World vocabulary beside it.
    pub fn for_model(model: &Path, explicit: Option<&Path>) -> Result<Self> {
        if let Some(path) = explicit {
            return Self::load(path);
        }
        match ModelSource::resolve(model)? {
            ModelSource::Hf { dir, .. } => Self::load(&dir),
            ModelSource::RwkvPth(file) => Self::load(file.parent().unwrap_or(Path::new("."))),
            ModelSource::Llama2c(file) => {
                let dir = file.parent().unwrap_or(Path::new("."));
                if dir.join("tokenizer.json").is_file() {
                    Self::load(dir)
                } else {
                    Self::load(&dir.join("hf"))
                }
            }
        }
    }

    /// Loads `tokenizer.json` (and `tokenizer_config.json` when present) from a model folder,
    /// or a `tokenizer.json` path directly; RWKV's World vocabulary
    /// (`rwkv_vocab_v20230424.txt`, in a folder without `tokenizer.json`, or named directly).
    pub fn load(path: &Path) -> Result<Self> {
        let world = if path.is_dir() {
            let vocab = path.join(world_tokenizer::VOCAB_FILE);
            (!path.join("tokenizer.json").is_file() && vocab.is_file()).then_some(vocab)
        } else {
            path.extension()
                .is_some_and(|e| e == "txt")
                .then(|| path.to_path_buf())
        };
        if let Some(vocab) = world {
            return Self::load_world(&vocab);
        }
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
                cause: source,
            })?;
            serde_json::from_str(&text).map_err(|e| Error::BadFile {
                path: config_path.clone(),
                message: e.to_string(),
            })?
        } else {
            TokenizerConfig::default()
        };
        let id = |t: &Option<SpecialToken>| t.as_ref().and_then(|t| inner.token_to_id(t.content()));
        let special_tokens = [
            ("bos_token", &config.bos_token),
            ("eos_token", &config.eos_token),
            ("unk_token", &config.unk_token),
            ("pad_token", &config.pad_token),
        ]
        .into_iter()
        .filter_map(|(name, t)| Some((name.to_string(), t.as_ref()?.content().to_string())))
        .collect();
        // transformers saves the template as `chat_template.jinja` next to the tokenizer, which
        // then takes precedence over tokenizer_config.json's field.
        let jinja = dir.join("chat_template.jinja");
        let chat_templates = if jinja.is_file() {
            let source = std::fs::read_to_string(&jinja).map_err(|source| Error::Io {
                path: jinja.clone(),
                cause: source,
            })?;
            vec![ChatTemplateSource {
                name: None,
                source,
                origin: jinja,
            }]
        } else {
            match config.chat_template {
                None => Vec::new(),
                Some(ChatTemplateField::One(source)) => vec![ChatTemplateSource {
                    name: None,
                    source,
                    origin: config_path.clone(),
                }],
                Some(ChatTemplateField::Named(list)) => list
                    .into_iter()
                    .map(|t| ChatTemplateSource {
                        name: Some(t.name),
                        source: t.template,
                        origin: config_path.clone(),
                    })
                    .collect(),
            }
        };
        Ok(Self {
            bos_token_id: id(&config.bos_token),
            eos_token_id: id(&config.eos_token),
            pad_token_id: id(&config.pad_token),
            special_tokens,
            chat_templates,
            inner: Engine::Hf(Box::new(inner)),
            path: file,
        })
    }

    /// RWKV's World tokenizer from its vocabulary file: no BOS (the `rwkv` package adds
    /// none), token 0 ends a text and pads, no chat template.
    fn load_world(vocab: &Path) -> Result<Self> {
        Ok(Self {
            inner: Engine::World(WorldTokenizer::load(vocab)?),
            path: vocab.to_path_buf(),
            bos_token_id: None,
            eos_token_id: Some(0),
            pad_token_id: Some(0),
            special_tokens: BTreeMap::new(),
            chat_templates: Vec::new(),
        })
    }

    /// Whether the tokenizer carries a chat template.
    pub fn has_chat_template(&self) -> bool {
        !self.chat_templates.is_empty()
    }

    /// The chat template `name` (as transformers' `apply_chat_template(chat_template=name)`), or
    /// the tokenizer's only or `default` one when `name` is `None`.
    pub fn chat_template(&self, name: Option<&str>) -> Result<ChatTemplate> {
        let config = self.path.with_file_name("tokenizer_config.json");
        let names = || {
            self.chat_templates
                .iter()
                .filter_map(|t| t.name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let found = match name {
            Some(name) => self
                .chat_templates
                .iter()
                .find(|t| t.name.as_deref() == Some(name))
                .ok_or_else(|| Error::BadFile {
                    path: config.clone(),
                    message: format!(
                        "no chat template named `{name}` (templates: {})",
                        if self.chat_templates.is_empty() {
                            "none".to_string()
                        } else {
                            names()
                        }
                    ),
                })?,
            None => match &self.chat_templates[..] {
                [] => {
                    return Err(Error::BadFile {
                        path: config,
                        message: "the tokenizer has no chat template (no `chat_template` field, \
                                  no chat_template.jinja)"
                            .into(),
                    });
                }
                [only] => only,
                several => several
                    .iter()
                    .find(|t| t.name.as_deref() == Some("default"))
                    .ok_or_else(|| Error::BadFile {
                        path: config.clone(),
                        message: format!(
                            "several chat templates and none is named `default`: choose one of {}",
                            names()
                        ),
                    })?,
            },
        };
        ChatTemplate::new(
            found.source.clone(),
            &found.origin,
            found.name.clone(),
            self.special_tokens.clone(),
        )
    }

    /// Token ids of `text` and each token's byte range in `text`.
    pub fn encode_with_offsets(&self, text: &str, special: bool) -> Result<(Vec<u32>, Offsets)> {
        let inner = match &self.inner {
            Engine::Hf(inner) => inner,
            Engine::World(world) => return Ok(world.encode_with_offsets(text)),
        };
        let encoding = inner.encode(text, special).map_err(|e| Error::BadFile {
            path: self.path.clone(),
            message: format!("cannot encode text: {e}"),
        })?;
        Ok((encoding.get_ids().to_vec(), encoding.get_offsets().to_vec()))
    }

    /// Token ids of `text`; `special` adds what the tokenizer's post-processor adds (BOS).
    pub fn encode(&self, text: &str, special: bool) -> Result<Vec<u32>> {
        let inner = match &self.inner {
            Engine::Hf(inner) => inner,
            Engine::World(world) => return Ok(world.encode_with_offsets(text).0),
        };
        let encoding = inner.encode(text, special).map_err(|e| Error::BadFile {
            path: self.path.clone(),
            message: format!("cannot encode text: {e}"),
        })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// `text` with the tokenizer's special tokens, starting with BOS whenever the tokenizer has
    /// one: a tokenizer.json whose template adds no BOS still gets the BOS METHODS.md asks for.
    pub fn encode_with_bos(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = self.encode(text, true)?;
        if let Some(bos) = self.bos_token_id
            && ids.first() != Some(&bos)
        {
            ids.insert(0, bos);
        }
        Ok(ids)
    }

    /// Text of `ids`, special tokens skipped.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let inner = match &self.inner {
            Engine::Hf(inner) => inner,
            Engine::World(world) => return Ok(world.decode(ids)),
        };
        inner.decode(ids, true).map_err(|e| Error::BadFile {
            path: self.path.clone(),
            message: format!("cannot decode ids: {e}"),
        })
    }

    /// The tokenizer.json this was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying HF tokenizer (pair templates for classification); an error for the World
    /// tokenizer, which has none.
    pub fn hf(&self) -> Result<&tokenizers::Tokenizer> {
        match &self.inner {
            Engine::Hf(inner) => Ok(inner),
            Engine::World(_) => Err(Error::BadFile {
                path: self.path.clone(),
                message: "RWKV's World tokenizer has no sentence-pair template; classification \
                          needs an HF tokenizer.json"
                    .into(),
            }),
        }
    }

    pub fn vocab_size(&self) -> usize {
        match &self.inner {
            Engine::Hf(inner) => inner.get_vocab_size(true),
            Engine::World(world) => world.vocab_size(),
        }
    }
}
