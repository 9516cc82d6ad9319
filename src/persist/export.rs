//! Converting any burn-peft adapter into a standard HF PEFT LoRA that loads on the ORIGINAL
//! base (METHODS.md, "Converting SVD-initialised adapters to plain LoRA"):
//! - splitting methods: `ΔW = B A − B₀ A₀` as rank 2r, `lora_A = [A; A₀]`, `lora_B = [B, −B₀]`
//!   (SORSA: `[diag(S) A; diag(S₀) A₀]`), `alpha ← 2·alpha` (rsLoRA: `alpha·√2`) so the scale
//!   is unchanged;
//! - LoTR: per layer `lora_A = G_s R`, `lora_B = L` (and the rank-2r difference for svd init);
//! - LoRA and LoRA-FA (unsplit) are copied as they are;
//! - saved modules (`modules_to_save`, e.g. a trained head) are copied as they are.

use std::path::Path;

use faer::Mat;

use super::adapter::SavedAdapterConfig;
use super::peft::WEIGHTS_FILE;
use crate::adapter::{Init, Method};
use crate::io::checkpoint::{Checkpoint, OutTensor};
use crate::model::inject::selects;
use crate::{Error, Result};

const PREFIX: &str = "base_model.model.";

fn read_mat(ckpt: &Checkpoint, name: &str) -> Result<Mat<f32>> {
    let (values, shape) = ckpt.read_f32(name)?;
    let (rows, cols) = match shape[..] {
        [r, c] => (r, c),
        [r] => (r, 1),
        _ => {
            return Err(Error::BadFile {
                path: ckpt.path_of(name),
                message: format!("tensor `{name}` has shape {shape:?}; expected a matrix"),
            });
        }
    };
    Ok(Mat::from_fn(rows, cols, |i, j| values[i * cols + j]))
}

fn write_mat(name: String, m: &Mat<f32>) -> OutTensor {
    let mut values = Vec::with_capacity(m.nrows() * m.ncols());
    for i in 0..m.nrows() {
        for j in 0..m.ncols() {
            values.push(m[(i, j)]);
        }
    }
    OutTensor::F32(name, vec![m.nrows(), m.ncols()], values)
}

/// `[top; bottom]`.
fn stack_rows(top: &Mat<f32>, bottom: &Mat<f32>) -> Mat<f32> {
    Mat::from_fn(top.nrows() + bottom.nrows(), top.ncols(), |i, j| {
        if i < top.nrows() {
            top[(i, j)]
        } else {
            bottom[(i - top.nrows(), j)]
        }
    })
}

/// `[left, −right]`.
fn stack_cols_negated(left: &Mat<f32>, right: &Mat<f32>) -> Mat<f32> {
    Mat::from_fn(left.nrows(), left.ncols() + right.ncols(), |i, j| {
        if j < left.ncols() {
            left[(i, j)]
        } else {
            -right[(i, j - left.ncols())]
        }
    })
}

/// `diag(s) A` for `s` stored as an `[r, 1]` matrix.
fn scale_rows(s: &Mat<f32>, a: &Mat<f32>) -> Mat<f32> {
    Mat::from_fn(a.nrows(), a.ncols(), |i, j| s[(i, 0)] * a[(i, j)])
}

/// Writes the PEFT LoRA equivalent of the adapter in `adapter_dir` to `out`.
pub fn export_peft_lora(adapter_dir: &Path, out: &Path) -> Result<()> {
    let (saved, config_path) = SavedAdapterConfig::read(adapter_dir)?;
    let cfg = &saved.burn_peft;
    let ckpt = Checkpoint::open_files(&[adapter_dir.join(WEIGHTS_FILE)])?;
    let split = match cfg.method {
        Method::Pissa | Method::Sorsa => true,
        Method::LoraFa => cfg.resolved_init() == Some(Init::SvdSplit),
        Method::Lotr => cfg.resolved_init() == Some(Init::Svd),
        Method::Lora => false,
    };
    // Modules, from the names of their first factor.
    let marker = match cfg.method {
        Method::Sorsa => ".sorsa_A.weight",
        Method::Lotr => ".lotr_G",
        _ => ".lora_A.weight",
    };
    let modules: Vec<String> = ckpt
        .names()
        .into_iter()
        .filter_map(|n| {
            n.strip_prefix(PREFIX)
                .and_then(|n| n.strip_suffix(marker))
                .map(String::from)
        })
        .collect();
    let mut tensors = Vec::with_capacity(2 * modules.len());
    for module in &modules {
        let name = |f: &str| format!("{PREFIX}{module}.{f}");
        let (a, b) = match cfg.method {
            Method::Lora | Method::LoraFa | Method::Pissa => {
                let a = read_mat(&ckpt, &name("lora_A.weight"))?;
                let b = read_mat(&ckpt, &name("lora_B.weight"))?;
                if split {
                    let a0 = read_mat(&ckpt, &name("lora_A0.weight"))?;
                    let b0 = read_mat(&ckpt, &name("lora_B0.weight"))?;
                    (stack_rows(&a, &a0), stack_cols_negated(&b, &b0))
                } else {
                    (a, b)
                }
            }
            Method::Sorsa => {
                let sa = scale_rows(
                    &read_mat(&ckpt, &name("sorsa_S"))?,
                    &read_mat(&ckpt, &name("sorsa_A.weight"))?,
                );
                let sa0 = scale_rows(
                    &read_mat(&ckpt, &name("sorsa_S0"))?,
                    &read_mat(&ckpt, &name("sorsa_A0.weight"))?,
                );
                let b = read_mat(&ckpt, &name("sorsa_B.weight"))?;
                let b0 = read_mat(&ckpt, &name("sorsa_B0.weight"))?;
                (stack_rows(&sa, &sa0), stack_cols_negated(&b, &b0))
            }
            Method::Lotr => {
                let group = saved
                    .lotr_groups
                    .get(module)
                    .ok_or_else(|| Error::BadFile {
                        path: config_path.clone(),
                        message: format!("`lotr_groups` has no entry for `{module}`"),
                    })?;
                let shared = |f: &str| read_mat(&ckpt, &format!("{PREFIX}lotr.{group}.{f}"));
                let a = read_mat(&ckpt, &name("lotr_G"))? * shared("R")?;
                let b = shared("L")?;
                if split {
                    let a0 = read_mat(&ckpt, &name("lotr_G0"))? * shared("R0")?;
                    (stack_rows(&a, &a0), stack_cols_negated(&b, &shared("L0")?))
                } else {
                    (a, b)
                }
            }
        };
        tensors.push(write_mat(name("lora_A.weight"), &a));
        tensors.push(write_mat(name("lora_B.weight"), &b));
    }
    if tensors.is_empty() {
        return Err(Error::BadFile {
            path: adapter_dir.join(WEIGHTS_FILE),
            message: "no adapter factors found".into(),
        });
    }
    // Saved modules (a trained head) are PEFT's own `modules_to_save` tensors: copied as they are.
    let saved_modules = saved.modules_to_save.clone().unwrap_or_default();
    for name in ckpt.names() {
        let module = name.strip_prefix(PREFIX).and_then(|n| {
            n.strip_suffix(".weight")
                .or_else(|| n.strip_suffix(".bias"))
        });
        if module.is_some_and(|m| saved_modules.iter().any(|e| selects(e, m))) {
            let (values, shape) = ckpt.read_f32(name)?;
            tensors.push(OutTensor::F32(name.to_string(), shape, values));
        }
    }
    let (r, alpha) = if split {
        let alpha = if cfg.rslora {
            saved.lora_alpha * 2f64.sqrt()
        } else {
            2.0 * saved.lora_alpha
        };
        (2 * saved.r, alpha)
    } else {
        (saved.r, saved.lora_alpha)
    };
    let config = serde_json::json!({
        "peft_type": "LORA",
        "task_type": saved.task_type,
        "r": r,
        "lora_alpha": alpha,
        "lora_dropout": 0.0,
        "use_rslora": cfg.rslora,
        "use_dora": false,
        "bias": "none",
        "fan_in_fan_out": false,
        "init_lora_weights": true,
        "inference_mode": true,
        "modules_to_save": saved.modules_to_save,
        "target_modules": saved.target_modules,
        "base_model_name_or_path": saved.base_model_name_or_path,
    });
    super::peft::write_adapter_folder(out, tensors, &config)
}
