//! The dtype a model's frozen base is stored and multiplied in (`[model] precision` in a recipe,
//! `--precision` on the commands that load a model), as transformers' `dtype=` argument.
//!
//! Only the frozen base follows it: adapters, their gradients and the optimizer state are always
//! f32 (PEFT's `autocast_adapter_dtype`), and the loss, the SORSA regularizer, RMSNorm/LayerNorm
//! statistics and the attention softmax are computed in f32, as transformers does in bf16.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::backend::Backend;
use burn::tensor::{DType, FloatDType, bf16, f16};
use serde::{Deserialize, Serialize};

use super::config::HfConfig;
use crate::io::checkpoint::Checkpoint;
use crate::{Error, Result};

/// Requested base precision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Precision {
    /// The checkpoint's own dtype (config.json's `dtype` / `torch_dtype`, else the dtype most
    /// of its weights have), as transformers' `dtype="auto"`.
    #[default]
    Auto,
    Bf16,
    F16,
    F32,
}

impl Precision {
    pub const CHOICES: &'static str = "auto, bf16, f16, f32";

    /// The dtype to load a checkpoint stored mostly in `stored` with.
    pub fn resolve(self, stored: FloatDType) -> FloatDType {
        match self {
            Precision::Auto => match stored {
                // f64 checkpoints are rare and nothing here computes in f64.
                FloatDType::F64 | FloatDType::Flex32 => FloatDType::F32,
                other => other,
            },
            Precision::Bf16 => FloatDType::BF16,
            Precision::F16 => FloatDType::F16,
            Precision::F32 => FloatDType::F32,
        }
    }

    /// [`resolve`](Self::resolve) on backend `B`: a dtype the device cannot store and compute
    /// with (bf16/f16 on `--device ndarray`, bf16 on most wgpu adapters) falls back to f32, with
    /// one notice per process naming what is used instead.
    pub fn resolve_on<B: Backend>(self, stored: FloatDType, device: &B::Device) -> FloatDType {
        let wanted = self.resolve(stored);
        if wanted == FloatDType::F32 || B::supports_dtype(device, DType::from(wanted)) {
            return wanted;
        }
        static NOTICE: AtomicBool = AtomicBool::new(false);
        if !NOTICE.swap(true, Ordering::Relaxed) {
            eprintln!(
                "note: {} has no {} support; the frozen base is stored and multiplied in f32 \
                 instead (precision = {self})",
                B::name(device),
                dtype_name(wanted),
            );
        }
        FloatDType::F32
    }
}

/// The short name of a float dtype (`bf16`, `f16`, `f32`, `f64`).
pub fn dtype_name(dtype: FloatDType) -> &'static str {
    match dtype {
        FloatDType::BF16 => "bf16",
        FloatDType::F16 => "f16",
        FloatDType::F64 => "f64",
        FloatDType::F32 | FloatDType::Flex32 => "f32",
    }
}

/// Opens the weights of the HF folder `dir` to be read in `precision` on `B` (see
/// [`Precision::resolve_on`]).
pub fn open_weights<B: Backend>(
    dir: &Path,
    config: &HfConfig,
    precision: Precision,
    device: &B::Device,
) -> Result<Checkpoint> {
    let ckpt = Checkpoint::open_dir(dir)?;
    let stored = stored_dtype(config, &ckpt);
    let dtype = precision.resolve_on::<B>(stored, device);
    Ok(ckpt.with_dtype(dtype))
}

/// The dtype a checkpoint is "in": config.json's `dtype` (transformers 5) or `torch_dtype`,
/// else the dtype most of its weights are stored in.
pub fn stored_dtype(config: &HfConfig, ckpt: &Checkpoint) -> FloatDType {
    named_dtype(config).unwrap_or_else(|| ckpt.stored_dtype())
}

/// The dtype config.json names: `dtype` (transformers 5) or `torch_dtype`.
pub fn named_dtype(config: &HfConfig) -> Option<FloatDType> {
    ["dtype", "torch_dtype"]
        .iter()
        .filter_map(|key| config.json.get(*key).and_then(|v| v.as_str()))
        .find_map(from_hf_name)
}

/// `value` rounded to `dtype`, as transformers rounds a scalar it builds with
/// `torch.tensor(value, dtype=hidden.dtype)` (Gemma's embedding scale).
pub fn round_scalar(value: f64, dtype: DType) -> f64 {
    match dtype {
        DType::BF16 => f64::from(bf16::from_f64(value).to_f32()),
        DType::F16 => f64::from(f16::from_f64(value).to_f32()),
        DType::F64 => value,
        _ => f64::from(value as f32),
    }
}

/// The dtype named by an HF `config.json` (`"bfloat16"`, `"float16"`, `"float32"`, …).
pub fn from_hf_name(name: &str) -> Option<FloatDType> {
    Some(match name.strip_prefix("torch.").unwrap_or(name) {
        "bfloat16" => FloatDType::BF16,
        "float16" | "half" => FloatDType::F16,
        "float32" | "float" => FloatDType::F32,
        "float64" | "double" => FloatDType::F64,
        _ => return None,
    })
}

/// The name HF `config.json` uses for a dtype.
pub fn hf_name(dtype: FloatDType) -> &'static str {
    match dtype {
        FloatDType::BF16 => "bfloat16",
        FloatDType::F16 => "float16",
        FloatDType::F64 => "float64",
        FloatDType::F32 | FloatDType::Flex32 => "float32",
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::Auto => "auto",
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
            Precision::F32 => "f32",
        })
    }
}

impl FromStr for Precision {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "auto" => Precision::Auto,
            "bf16" | "bfloat16" => Precision::Bf16,
            "f16" | "fp16" | "float16" | "half" => Precision::F16,
            "f32" | "fp32" | "float32" => Precision::F32,
            _ => {
                return Err(Error::invalid(
                    "precision",
                    s,
                    format!("expected one of {}", Self::CHOICES),
                ));
            }
        })
    }
}

impl TryFrom<String> for Precision {
    type Error = Error;

    fn try_from(value: String) -> Result<Self> {
        value.parse()
    }
}

impl From<Precision> for String {
    fn from(value: Precision) -> Self {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_resolves_auto_to_the_stored_dtype() {
        assert_eq!("BF16".parse::<Precision>().unwrap(), Precision::Bf16);
        assert_eq!("float16".parse::<Precision>().unwrap(), Precision::F16);
        let err = "int8".parse::<Precision>().unwrap_err().to_string();
        assert!(err.contains("precision") && err.contains("int8"), "{err}");
        assert_eq!(Precision::Auto.resolve(FloatDType::BF16), FloatDType::BF16);
        assert_eq!(Precision::Auto.resolve(FloatDType::F64), FloatDType::F32);
        assert_eq!(Precision::F32.resolve(FloatDType::BF16), FloatDType::F32);
        assert_eq!(from_hf_name("torch.bfloat16"), Some(FloatDType::BF16));
    }

    #[test]
    fn a_device_without_the_dtype_falls_back_to_f32() {
        use crate::backend::{Cpu, Ndarray};
        let got = Precision::Bf16.resolve_on::<Ndarray>(FloatDType::F32, &Default::default());
        assert_eq!(got, FloatDType::F32);
        let got = Precision::Bf16.resolve_on::<Cpu>(FloatDType::F32, &Default::default());
        assert_eq!(got, FloatDType::BF16);
    }
}
