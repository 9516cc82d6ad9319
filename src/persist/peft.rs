//! Adapters in HF PEFT's on-disk layout: `adapter_config.json` + `adapter_model.safetensors`
//! with tensors named `base_model.model.<module>.lora_A.weight` (`[r, in]`) and `…lora_B.weight`
//! (`[out, r]`).

use std::path::Path;

use burn::nn::DropoutConfig;
use burn::tensor::backend::Backend;
use serde::Deserialize;

use super::modules_to_save::restore_modules;
use crate::adapter::linear::param;
use crate::adapter::low_rank::LowRank;
use crate::adapter::{AdaptedLinear, Adapter};
use crate::io::checkpoint::{Checkpoint, OutTensor, write_safetensors};
use crate::io::{ensure_finite, read_json, write_atomic};
use crate::linalg::layout::hf_to_burn;
use crate::model::{PeftLinear, PeftModel};
use crate::{Error, Result};

pub const CONFIG_FILE: &str = "adapter_config.json";
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
const PREFIX: &str = "base_model.model.";

/// Writes an adapter folder: `adapter_model.safetensors` and `adapter_config.json` (atomically).
pub fn write_adapter_folder<C: serde::Serialize>(
    dir: &Path,
    tensors: Vec<OutTensor>,
    config: &C,
) -> Result<()> {
    ensure_finite(&dir.join(WEIGHTS_FILE), &tensors)?;
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        cause: source,
    })?;
    write_safetensors(&dir.join(WEIGHTS_FILE), tensors, None)?;
    let json = serde_json::to_string_pretty(config).expect("adapter configs serialise");
    write_atomic(&dir.join(CONFIG_FILE), json.as_bytes())
}

/// The fields of PEFT's `adapter_config.json` burn-peft reads.
#[derive(Debug, Clone, Deserialize)]
pub struct PeftConfig {
    pub peft_type: String,
    pub r: usize,
    pub lora_alpha: f64,
    #[serde(default)]
    pub lora_dropout: f64,
    #[serde(default)]
    pub use_rslora: bool,
    #[serde(default)]
    pub use_dora: bool,
    #[serde(default)]
    pub fan_in_fan_out: bool,
    #[serde(default)]
    pub rank_pattern: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub alpha_pattern: serde_json::Map<String, serde_json::Value>,
}

impl PeftConfig {
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(CONFIG_FILE);
        let config: PeftConfig = read_json(&path)?;
        let unsupported = |field: &str, why: &str| {
            Err(Error::BadFile {
                path: path.clone(),
                message: format!("`{field}`: {why}"),
            })
        };
        if config.peft_type != "LORA" {
            return unsupported(
                "peft_type",
                &format!("{} adapters are not PEFT LoRA adapters", config.peft_type),
            );
        }
        if config.use_dora {
            return unsupported("use_dora", "DoRA adapters are not supported");
        }
        if config.fan_in_fan_out {
            return unsupported(
                "fan_in_fan_out",
                "Conv1D-style (GPT-2) layers are not supported",
            );
        }
        if !config.rank_pattern.is_empty() || !config.alpha_pattern.is_empty() {
            return unsupported(
                "rank_pattern/alpha_pattern",
                "per-module ranks are not supported",
            );
        }
        if config.r == 0 || config.lora_alpha.is_nan() || config.lora_alpha <= 0.0 {
            return unsupported("r/lora_alpha", "must be positive");
        }
        Ok(config)
    }

    pub fn scale(&self) -> f64 {
        if self.use_rslora {
            self.lora_alpha / (self.r as f64).sqrt()
        } else {
            self.lora_alpha / self.r as f64
        }
    }
}

/// Applies a PEFT LoRA adapter folder to `model`. Every adapter tensor must name a linear layer
/// of the model with matching shapes: an adapter trained for another model is an error that
/// names the tensor.
pub fn load_peft_lora<B: Backend, M: PeftModel<B>>(mut model: M, dir: &Path) -> Result<M> {
    let config = PeftConfig::read(dir)?;
    let weights_path = dir.join(WEIGHTS_FILE);
    let ckpt = Checkpoint::open_files(std::slice::from_ref(&weights_path))?;
    let scale = config.scale();
    let mut slots = model.linears_mut();
    let mut applied = 0;
    for name in ckpt.names() {
        // Other tensors: lora_B (read with its A) and saved modules (read below).
        let Some(module) = name
            .strip_prefix(PREFIX)
            .and_then(|n| n.strip_suffix(".lora_A.weight"))
        else {
            continue;
        };
        let Some((_, slot)) = slots.iter_mut().find(|(n, _)| n == module) else {
            return Err(Error::BadFile {
                path: weights_path,
                message: format!(
                    "tensor `{name}` adapts `{module}`, which this model does not have: is the adapter for a different base model?"
                ),
            });
        };
        let [in_features, out_features] = slot.dims();
        let device = slot.base().weight.device();
        let a = ckpt.tensor::<B, 2>(name, [config.r, in_features], &device)?;
        let b_name = format!("{PREFIX}{module}.lora_B.weight");
        let b = ckpt.tensor::<B, 2>(&b_name, [out_features, config.r], &device)?;
        let adapter = Adapter::Lora(LowRank {
            a: param(hf_to_burn(a), true),
            b: param(hf_to_burn(b), true),
            scale,
            dropout: DropoutConfig::new(config.lora_dropout).init(),
        });
        let base = slot.base().clone();
        **slot = PeftLinear::Adapted(AdaptedLinear { base, adapter });
        applied += 1;
    }
    if applied == 0 {
        return Err(Error::BadFile {
            path: weights_path,
            message: "no LoRA tensors found".into(),
        });
    }
    drop(slots);
    // `modules_to_save` (a SEQ_CLS adapter's head). PEFT lists `classifier` and `score` for
    // every SEQ_CLS model, so entries without tensors are fine; tensors without a layer are not.
    restore_modules(&mut model, &ckpt, |_| false)?;
    if let Some(name) = ckpt.unused().first() {
        return Err(Error::BadFile {
            path: weights_path,
            message: format!(
                "tensor `{name}` is neither a LoRA factor nor the weight of a linear layer of this \
                 model (other PEFT types and non-linear modules_to_save are not supported)"
            ),
        });
    }
    Ok(model)
}
