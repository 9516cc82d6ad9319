//! Saving and loading trained adapters in HF PEFT's folder layout: `adapter_config.json` and
//! `adapter_model.safetensors` with tensors named `base_model.model.<module>.<factor>`, all in
//! HF's `[out, in]` convention.
//!
//! - `lora`, `lora_fa`: `peft_type = "LORA"` with `lora_A`/`lora_B`; loads in HF PEFT as is.
//! - `pissa`, `lora_fa` svd-split: `lora_A`/`lora_B` plus the initial `lora_A0`/`lora_B0`, from
//!   which the residual base `W − scale·B₀A₀` is rebuilt without re-running the SVD.
//! - `sorsa`: `sorsa_A` `[r, in]`, `sorsa_S` `[r]`, `sorsa_B` `[out, r]` and the initial
//!   `sorsa_A0`/`sorsa_S0`/`sorsa_B0`.
//! - `lotr`: per group `lotr.<g>.L` `[out, r]`, `lotr.<g>.R` `[r, in]` (+ `L0`/`R0` for svd
//!   init), per layer `<module>.lotr_G` `[r, r]` (+ `lotr_G0`) and its group in the config.
//! - `modules_to_save` (a trained head, or one the base checkpoint lacks): the module's tensors
//!   `<module>.weight` / `.bias` as PEFT saves them ([`super::modules_to_save`]).
//!
//! The burn-peft `AdapterConfig` travels in the config's `burn_peft` field.

use std::collections::BTreeMap;
use std::path::Path;

use burn::nn::DropoutConfig;
use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

use super::modules_to_save::{module_tensors, restore_modules};
use super::peft::{CONFIG_FILE, WEIGHTS_FILE};
use crate::adapter::linear::{add_in_f32, param};
use crate::adapter::lotr::{LotrCore, LotrFactors};
use crate::adapter::low_rank::LowRank;
use crate::adapter::sorsa::Sorsa;
use crate::adapter::{AdaptedLinear, Adapter, AdapterConfig, Init, Method, SharedFactors};
use crate::io::checkpoint::{Checkpoint, OutTensor};
use crate::io::read_json;
use crate::linalg::layout::{burn_to_hf, hf_to_burn};
use crate::linalg::tensor_to_vec;
use crate::model::inject::{saved_linears, selects};
use crate::model::{PeftLinear, PeftModel};
use crate::{Error, Result};

const PREFIX: &str = "base_model.model.";

/// `adapter_config.json` as burn-peft writes it: PEFT's fields plus ours.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedAdapterConfig {
    pub peft_type: String,
    pub task_type: String,
    pub r: usize,
    pub lora_alpha: f64,
    pub lora_dropout: f64,
    pub use_rslora: bool,
    pub target_modules: Vec<String>,
    #[serde(default)]
    pub base_model_name_or_path: String,
    /// PEFT's list of modules saved whole (trained heads, and heads the base lacks); `null`
    /// when there are none.
    #[serde(default)]
    pub modules_to_save: Option<Vec<String>>,
    /// The burn-peft configuration the adapter was built with.
    pub burn_peft: AdapterConfig,
    /// LoTR: each adapted module's group index.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lotr_groups: BTreeMap<String, usize>,
}

/// The adapters of a model right after initialisation: the factors that define each layer's
/// residual base, saved next to the trained ones.
#[derive(Debug, Clone)]
pub struct InitialAdapters<B: Backend> {
    pub layers: Vec<(String, Adapter<B>)>,
    pub shared: SharedFactors<B>,
    /// Modules the base checkpoint lacks, created with the adapters (a new task head): saved
    /// with the adapter, trained or not, so that it reloads onto the same base.
    pub new_modules: Vec<String>,
}

impl<B: Backend> InitialAdapters<B> {
    /// Snapshot of `model`'s adapters (call right after injection).
    pub fn of<M: PeftModel<B>>(model: &M) -> Self {
        let layers = model
            .linears()
            .into_iter()
            .filter_map(|(name, slot)| match slot {
                PeftLinear::Adapted(a) => Some((name, a.adapter.clone())),
                PeftLinear::Plain(_) => None,
            })
            .collect();
        Self {
            layers,
            shared: model.shared().clone(),
            new_modules: Vec::new(),
        }
    }
}

fn peft_type(method: Method, config: &AdapterConfig) -> &'static str {
    match method {
        Method::Lora => "LORA",
        Method::LoraFa if config.resolved_init() != Some(Init::SvdSplit) => "LORA",
        Method::LoraFa | Method::Pissa => "PISSA",
        Method::Sorsa => "SORSA",
        Method::Lotr => "LOTR",
    }
}

/// Whether the method's base is a residual that loading must rebuild.
fn splits(config: &AdapterConfig) -> bool {
    match config.method {
        Method::Pissa | Method::Sorsa => true,
        Method::LoraFa => config.resolved_init() == Some(Init::SvdSplit),
        Method::Lotr => config.resolved_init() == Some(Init::Svd),
        Method::Lora => false,
    }
}

fn f32_tensor<B: Backend, const D: usize>(name: String, t: Tensor<B, D>) -> OutTensor {
    OutTensor::F32(name, t.dims().to_vec(), tensor_to_vec(t))
}

/// Writes `model`'s adapters (and `initial`, for splitting methods) to `dir`.
pub fn save_adapter<B: Backend, M: PeftModel<B>>(
    model: &M,
    config: &AdapterConfig,
    initial: &InitialAdapters<B>,
    base_model: &str,
    dir: &Path,
) -> Result<()> {
    let mut tensors = Vec::new();
    let mut targets = Vec::new();
    let mut lotr_groups = BTreeMap::new();
    let with_initial = splits(config);
    let initial_of = |name: &str| {
        initial
            .layers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a)
    };
    for (name, slot) in model.linears() {
        let PeftLinear::Adapted(layer) = slot else {
            continue;
        };
        targets.push(name.rsplit('.').next().unwrap_or(&name).to_string());
        let key = |factor: &str| format!("{PREFIX}{name}.{factor}");
        let mut push_adapter = |adapter: &Adapter<B>, suffix: &str| match adapter {
            Adapter::Lora(m) | Adapter::Pissa(m) | Adapter::LoraFa(m) => {
                tensors.push(f32_tensor(
                    key(&format!("lora_A{suffix}.weight")),
                    burn_to_hf(m.a.val()),
                ));
                tensors.push(f32_tensor(
                    key(&format!("lora_B{suffix}.weight")),
                    burn_to_hf(m.b.val()),
                ));
            }
            Adapter::Sorsa(m) => {
                tensors.push(f32_tensor(
                    key(&format!("sorsa_A{suffix}.weight")),
                    burn_to_hf(m.a.val()),
                ));
                tensors.push(f32_tensor(key(&format!("sorsa_S{suffix}")), m.s.val()));
                tensors.push(f32_tensor(
                    key(&format!("sorsa_B{suffix}.weight")),
                    burn_to_hf(m.b.val()),
                ));
            }
            Adapter::Lotr(m) => {
                tensors.push(f32_tensor(
                    key(&format!("lotr_G{suffix}")),
                    m.core.val().transpose(),
                ));
            }
        };
        push_adapter(&layer.adapter, "");
        if let Adapter::Lotr(core) = &layer.adapter {
            lotr_groups.insert(name.clone(), core.group);
        }
        if with_initial {
            let first = initial_of(&name)
                .ok_or_else(|| Error::invalid("adapter", &name, "no initial factors recorded"))?;
            push_adapter(first, "0");
        }
    }
    if targets.is_empty() {
        return Err(Error::invalid(
            "adapter",
            "none",
            "the model carries no adapter to save",
        ));
    }
    for (g, group) in model.shared().lotr.iter().enumerate() {
        tensors.push(f32_tensor(
            format!("{PREFIX}lotr.{g}.L"),
            group.l.val().transpose(),
        ));
        tensors.push(f32_tensor(
            format!("{PREFIX}lotr.{g}.R"),
            group.r.val().transpose(),
        ));
        if with_initial {
            let first = &initial.shared.lotr[g];
            tensors.push(f32_tensor(
                format!("{PREFIX}lotr.{g}.L0"),
                first.l.val().transpose(),
            ));
            tensors.push(f32_tensor(
                format!("{PREFIX}lotr.{g}.R0"),
                first.r.val().transpose(),
            ));
        }
    }
    targets.sort();
    targets.dedup();
    // Trained modules, and new ones no entry covers yet.
    let mut modules = config.modules_to_save.clone();
    modules.extend(
        initial
            .new_modules
            .iter()
            .filter(|m| !modules.iter().any(|e| selects(e, m)))
            .cloned()
            .collect::<Vec<_>>(),
    );
    tensors.extend(module_tensors(model, &modules)?);
    // A model with a head other than the LM head is a sequence classifier (PEFT's SEQ_CLS).
    let classifier = model
        .linears()
        .iter()
        .any(|(name, _)| model.is_head(name) && name != "lm_head");
    let saved = SavedAdapterConfig {
        peft_type: peft_type(config.method, config).into(),
        task_type: if classifier { "SEQ_CLS" } else { "CAUSAL_LM" }.into(),
        r: config.rank,
        lora_alpha: config.alpha(),
        lora_dropout: config.dropout,
        use_rslora: config.rslora,
        target_modules: targets,
        base_model_name_or_path: base_model.into(),
        modules_to_save: (!modules.is_empty()).then_some(modules),
        burn_peft: config.clone(),
        lotr_groups,
    };
    super::peft::write_adapter_folder(dir, tensors, &saved)
}

/// Whether `dir` holds an adapter written by burn-peft (else: a plain PEFT LoRA adapter).
pub fn is_burn_peft_adapter(dir: &Path) -> Result<bool> {
    let json: serde_json::Value = read_json(&dir.join(CONFIG_FILE))?;
    Ok(json.get("burn_peft").is_some())
}

impl SavedAdapterConfig {
    /// Reads `dir/adapter_config.json` written by [`save_adapter`]; returns it with its path.
    pub fn read(dir: &Path) -> Result<(Self, std::path::PathBuf)> {
        let path = dir.join(CONFIG_FILE);
        let config = read_json(&path).map_err(|e| match e {
            Error::BadFile { path, message } => Error::BadFile {
                path,
                message: format!("not a burn-peft adapter config: {message}"),
            },
            other => other,
        })?;
        Ok((config, path))
    }
}

/// Applies an adapter folder written by [`save_adapter`] to the ORIGINAL base `model`: residual
/// bases are rebuilt from the saved initial factors.
pub fn load_adapter<B: Backend, M: PeftModel<B>>(
    mut model: M,
    dir: &Path,
    trainable: bool,
) -> Result<(M, SavedAdapterConfig, InitialAdapters<B>)> {
    let (saved, config_path) = SavedAdapterConfig::read(dir)?;
    let cfg = &saved.burn_peft;
    cfg.validate().map_err(|e| Error::BadFile {
        path: config_path.clone(),
        message: e.to_string(),
    })?;
    let weights = dir.join(WEIGHTS_FILE);
    let ckpt = Checkpoint::open_files(std::slice::from_ref(&weights))?;
    let (r, scale, split) = (cfg.rank, cfg.scale(), splits(cfg));
    let dropout = DropoutConfig::new(cfg.dropout).init();

    // Shared LoTR factors first: layers refer to them by group.
    let mut shared = SharedFactors::<B>::default();
    let mut initial_shared = SharedFactors::<B>::default();
    if cfg.method == Method::Lotr {
        let groups = saved
            .lotr_groups
            .values()
            .copied()
            .max()
            .map_or(0, |g| g + 1);
        let device = model
            .linears()
            .first()
            .map(|(_, s)| s.base().weight.device())
            .ok_or_else(|| Error::invalid("model", "", "no linear layers"))?;
        for g in 0..groups {
            let name = |f: &str| format!("{PREFIX}lotr.{g}.{f}");
            let read = |f: &str| -> Result<LotrFactors<B>> {
                let l_shape = ckpt
                    .shape(&name(&format!("L{f}")))
                    .map(<[usize]>::to_vec)
                    .unwrap_or_default();
                let r_shape = ckpt
                    .shape(&name(&format!("R{f}")))
                    .map(<[usize]>::to_vec)
                    .unwrap_or_default();
                let (out_f, in_f) = (
                    l_shape.first().copied().unwrap_or(0),
                    r_shape.get(1).copied().unwrap_or(0),
                );
                let l = ckpt.tensor::<B, 2>(&name(&format!("L{f}")), [out_f, r], &device)?;
                let rr = ckpt.tensor::<B, 2>(&name(&format!("R{f}")), [r, in_f], &device)?;
                Ok(LotrFactors {
                    l: param(l.transpose(), trainable),
                    r: param(rr.transpose(), trainable),
                })
            };
            shared.lotr.push(read("")?);
            if split {
                initial_shared.lotr.push(read("0")?);
            }
        }
    }

    let mut applied = 0;
    let mut initial_layers = Vec::new();
    for (name, slot) in model.linears_mut() {
        let key = |f: &str| format!("{PREFIX}{name}.{f}");
        let has_any = ["lora_A.weight", "sorsa_A.weight", "lotr_G"]
            .iter()
            .any(|f| ckpt.contains(&key(f)));
        if !has_any {
            continue;
        }
        if let PeftLinear::Adapted(_) = slot {
            return Err(Error::invalid(
                "adapter",
                &name,
                "this layer already carries an adapter",
            ));
        }
        let [in_f, out_f] = slot.dims();
        let device = slot.base().weight.device();
        let read2 = |f: &str, shape: [usize; 2]| ckpt.tensor::<B, 2>(&key(f), shape, &device);
        let build = |suffix: &str, train: bool| -> Result<Adapter<B>> {
            Ok(match cfg.method {
                Method::Lora | Method::Pissa | Method::LoraFa => {
                    let a = hf_to_burn(read2(&format!("lora_A{suffix}.weight"), [r, in_f])?);
                    let b = hf_to_burn(read2(&format!("lora_B{suffix}.weight"), [out_f, r])?);
                    let frozen_a = cfg.method == Method::LoraFa;
                    let low = LowRank {
                        a: param(a, train && !frozen_a),
                        b: param(b, train),
                        scale,
                        dropout: dropout.clone(),
                    };
                    match cfg.method {
                        Method::Lora => Adapter::Lora(low),
                        Method::Pissa => Adapter::Pissa(low),
                        _ => Adapter::LoraFa(low),
                    }
                }
                Method::Sorsa => Adapter::Sorsa(Sorsa {
                    a: param(
                        hf_to_burn(read2(&format!("sorsa_A{suffix}.weight"), [r, in_f])?),
                        train,
                    ),
                    s: param(
                        ckpt.tensor::<B, 1>(&key(&format!("sorsa_S{suffix}")), [r], &device)?,
                        train,
                    ),
                    b: param(
                        hf_to_burn(read2(&format!("sorsa_B{suffix}.weight"), [out_f, r])?),
                        train,
                    ),
                    scale,
                    dropout: dropout.clone(),
                }),
                Method::Lotr => Adapter::Lotr(LotrCore {
                    core: param(
                        read2(&format!("lotr_G{suffix}"), [r, r])?.transpose(),
                        train,
                    ),
                    group: *saved.lotr_groups.get(&name).ok_or_else(|| Error::BadFile {
                        path: config_path.clone(),
                        message: format!("`lotr_groups` has no entry for `{name}`"),
                    })?,
                    scale,
                }),
            })
        };
        let adapter = build("", trainable)?;
        let mut base = slot.base().clone();
        if split {
            let first = build("0", false)?;
            let weight = base.weight.val();
            let dtype = weight.dtype();
            base.weight = param(
                add_in_f32(weight, first.delta_weight(&initial_shared).neg(), dtype),
                false,
            );
            initial_layers.push((name.clone(), first));
        }
        *slot = PeftLinear::Adapted(AdaptedLinear { base, adapter });
        applied += 1;
    }
    if applied == 0 {
        return Err(Error::BadFile {
            path: weights,
            message: "no adapter tensor matches a linear layer of this model: is it for another base model?".into(),
        });
    }
    // Saved modules: the trained ones train on (when `trainable`), new frozen ones stay frozen.
    let trained = |name: &str| trainable && cfg.modules_to_save.iter().any(|e| selects(e, name));
    let restored = restore_modules(&mut model, &ckpt, trained)?;
    // Every listed module must be in the file (adapters written before burn-peft saved heads
    // list them in `burn_peft` only, and are refused rather than scored with the base head).
    for entry in saved
        .modules_to_save
        .iter()
        .flatten()
        .chain(&cfg.modules_to_save)
    {
        let selected =
            saved_linears(&model, std::slice::from_ref(entry)).map_err(|_| Error::BadFile {
                path: config_path.clone(),
                message: format!(
                    "`modules_to_save` names `{entry}`, which this model does not have: is the \
                     adapter for another base model?"
                ),
            })?;
        if let Some(missing) = selected.iter().find(|n| !restored.contains(n)) {
            return Err(Error::BadFile {
                path: weights,
                message: format!(
                    "`modules_to_save` names `{entry}` but the file has no `{PREFIX}{missing}.weight`"
                ),
            });
        }
    }
    // Every saved factor must have been used: leftovers mean a different model.
    if let Some(unused) = ckpt
        .unused()
        .into_iter()
        .find(|n| !n.ends_with('0') && !n.ends_with("0.weight"))
    {
        return Err(Error::BadFile {
            path: weights,
            message: format!(
                "tensor `{unused}` matches no layer of this model: is the adapter for another base model?"
            ),
        });
    }
    *model.shared_mut() = shared;
    let initial = InitialAdapters {
        layers: initial_layers,
        shared: initial_shared,
        new_modules: Vec::new(),
    };
    Ok((model, saved, initial))
}
