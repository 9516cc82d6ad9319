//! What a model path names: an HF model folder (`config.json` + safetensors), a llama2.c `.bin`
//! checkpoint, a BlinkDL RWKV6 `.pth`, or a folder without `config.json` that holds one llama2.c checkpoint (as
//! `models/stories260K` does, next to its `tok512.bin` tokenizer and an `hf/` folder).

use std::path::{Path, PathBuf};

use super::config::HfConfig;
use super::llama2c;
use crate::{Error, Result};

/// A model path, resolved to the files that hold the model.
#[derive(Debug, Clone)]
pub enum ModelSource {
    /// An HF model folder and its parsed `config.json`.
    Hf { dir: PathBuf, config: HfConfig },
    /// A llama2.c checkpoint file.
    Llama2c(PathBuf),
    /// A BlinkDL RWKV6 release (`.pth`).
    RwkvPth(PathBuf),
}

impl ModelSource {
    /// Resolves `path`: a `.bin` file is a llama2.c checkpoint; a folder with `config.json` an HF
    /// model; a folder without one must hold exactly one llama2.c checkpoint (its other `.bin`
    /// files, such as a llama2.c tokenizer, are not checkpoints and are passed over).
    pub fn resolve(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            cause: source,
        })?;
        if meta.is_file() {
            if path.extension().is_some_and(|e| e == "bin") {
                return Ok(ModelSource::Llama2c(path.to_path_buf()));
            }
            if super::rwkv6_pth::is_pth(path) {
                return Ok(ModelSource::RwkvPth(path.to_path_buf()));
            }
            return Err(Error::BadFile {
                path: path.to_path_buf(),
                message: "expected an HF model folder, a llama2.c .bin file or an RWKV6 .pth"
                    .into(),
            });
        }
        if !path.join("config.json").exists() {
            let bins = bin_files(path)?;
            let checkpoints: Vec<&PathBuf> =
                bins.iter().filter(|f| llama2c::is_checkpoint(f)).collect();
            match checkpoints[..] {
                [one] => return Ok(ModelSource::Llama2c(one.clone())),
                [] if bins.is_empty() => {} // config.json's own error below
                [] => {
                    return Err(Error::BadFile {
                        path: path.to_path_buf(),
                        message: format!(
                            "holds no config.json (an HF model folder), and none of its .bin \
                             files ({}) is a llama2.c checkpoint",
                            names(&bins)
                        ),
                    });
                }
                _ => {
                    return Err(Error::BadFile {
                        path: path.to_path_buf(),
                        message: format!(
                            "holds no config.json and several llama2.c checkpoints ({}); pass \
                             the one to load, e.g. {}",
                            names(&checkpoints),
                            checkpoints[0].display()
                        ),
                    });
                }
            }
        }
        Ok(ModelSource::Hf {
            dir: path.to_path_buf(),
            config: HfConfig::read(path)?,
        })
    }

    /// Whether the model is an encoder (BERT / RoBERTa family); llama2.c checkpoints are
    /// decoders.
    pub fn is_encoder(&self) -> bool {
        match self {
            ModelSource::Hf { config, .. } => !config.model_type.is_causal_lm(),
            ModelSource::Llama2c(_) | ModelSource::RwkvPth(_) => false,
        }
    }
}

/// The `.bin` files directly in `dir`, sorted by name.
fn bin_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let io = |source| Error::Io {
        path: dir.to_path_buf(),
        cause: source,
    };
    let mut bins = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_some_and(|e| e == "bin") && path.is_file() {
            bins.push(path);
        }
    }
    bins.sort();
    Ok(bins)
}

/// File names, comma-separated.
fn names(files: &[impl AsRef<Path>]) -> String {
    files
        .iter()
        .map(|f| {
            f.as_ref().file_name().map_or_else(
                || f.as_ref().display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}
