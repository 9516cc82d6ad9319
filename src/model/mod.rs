//! Models: HF checkpoints of Llama-family decoders and BERT/RoBERTa encoders, built with
//! [`PeftLinear`] slots so adapters can be injected into any linear layer.

pub mod any;
pub mod attention;
pub mod chat_template;
pub mod config;
pub mod cross_entropy_kernel;
pub mod decoder;
pub mod encoder;
pub mod generate;
pub mod inject;
pub mod kv_cache;
pub mod language_model;
pub mod lean_backward;
pub mod linear;
pub mod llama2c;
pub mod loss;
pub mod norm;
pub mod precision;
pub mod rope;
pub mod rope_kernel;
pub mod rwkv6;
pub mod rwkv6_pth;
pub mod silu_mul_kernel;
pub mod skeleton;
pub mod softmax_kernel;
pub mod source;
pub mod tokenizer;
pub mod wkv;
pub mod wkv_kernel;
pub mod world_tokenizer;

pub use config::{HfConfig, ModelType};
pub use inject::{Injection, inject_adapters, merge_adapters};
pub use language_model::LanguageModel;
pub use linear::PeftLinear;
pub use precision::Precision;

use burn::module::Module;
use burn::tensor::FloatDType;
use burn::tensor::backend::Backend;

use crate::adapter::{SharedFactors, Targets};
use crate::io::checkpoint::Checkpoint;

/// A model whose linear layers can carry adapters.
///
/// burn-peft's decoders and encoders implement it, and so can a Burn model of your own: hold a
/// [`PeftLinear`] wherever a layer may get an adapter and a [`SharedFactors`] field, and list
/// the slots here (see [`crate::peft`]).
pub trait PeftModel<B: Backend>: Module<B> {
    /// Every linear layer with its full module name (HF models: `model.layers.0.self_attn.q_proj`),
    /// in model order. Targets match these names, and saved adapters use them
    /// (`base_model.model.<name>.…`).
    fn linears(&self) -> Vec<(String, &PeftLinear<B>)>;
    /// The same, mutable.
    fn linears_mut(&mut self) -> Vec<(String, &mut PeftLinear<B>)>;
    /// Factors shared between layers (LoTR; empty for the other methods).
    fn shared(&self) -> &SharedFactors<B>;
    /// The same, mutable.
    fn shared_mut(&mut self) -> &mut SharedFactors<B>;
    /// Output heads, which `all-linear` leaves out. Default: none.
    fn is_head(&self, _name: &str) -> bool {
        false
    }
    /// Targets when the config names none (PEFT's per-architecture defaults). Default:
    /// `all-linear`, every slot except the heads (a model of your own holds slots only where it
    /// wants adapters).
    fn default_targets(&self) -> Targets {
        Targets::Pattern(crate::adapter::targets::ALL_LINEAR.to_string())
    }
}

/// What loading a checkpoint found besides the tensors the model used.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Tensors in the checkpoint the architecture does not use (HF's "unexpected keys").
    pub unused: Vec<String>,
    /// Tensors the checkpoint lacks that were newly initialised (a task head on a pretrained
    /// body; transformers' "newly initialized" weights).
    pub initialized: Vec<String>,
    /// The dtype the frozen base was loaded in.
    pub dtype: FloatDType,
}

impl Default for LoadReport {
    fn default() -> Self {
        Self {
            unused: Vec::new(),
            initialized: Vec::new(),
            dtype: FloatDType::F32,
        }
    }
}

impl LoadReport {
    /// The report of a checkpoint every model tensor has been read from.
    pub fn of(ckpt: &Checkpoint) -> Self {
        Self {
            unused: ckpt.unused(),
            dtype: ckpt.target_dtype(),
            ..Self::default()
        }
    }

    /// Prints the unused and the newly initialised tensors (if any) on stderr, as transformers
    /// reports them.
    pub fn warn(&self) {
        if !self.unused.is_empty() {
            eprintln!(
                "warning: {} unused tensors in the checkpoint: {}",
                self.unused.len(),
                self.unused.join(", ")
            );
        }
        if !self.initialized.is_empty() {
            eprintln!(
                "notice: {} tensors are not in the checkpoint and were newly initialised: {}",
                self.initialized.len(),
                self.initialized.join(", ")
            );
        }
    }
}
