//! Models: HF checkpoints of Llama-family decoders and BERT/RoBERTa encoders, built with
//! [`PeftLinear`] slots so adapters can be injected into any linear layer.

pub mod any;
pub mod config;
pub mod decoder;
pub mod encoder;
pub mod generate;
pub mod inject;
pub mod linear;
pub mod llama2c;
pub mod loss;
pub mod norm;
pub mod precision;
pub mod rope;
pub mod tokenizer;

pub use config::{HfConfig, ModelType};
pub use inject::{Injection, inject_adapters, merge_adapters};
pub use linear::PeftLinear;
pub use precision::Precision;

use burn::module::Module;
use burn::tensor::FloatDType;
use burn::tensor::backend::Backend;

use crate::adapter::{SharedFactors, Targets};
use crate::io::checkpoint::Checkpoint;

/// A model whose linear layers can carry adapters.
pub trait PeftModel<B: Backend>: Module<B> {
    /// Every linear layer with its full HF module name (`model.layers.0.self_attn.q_proj`), in
    /// model order.
    fn linears(&self) -> Vec<(String, &PeftLinear<B>)>;
    /// The same, mutable.
    fn linears_mut(&mut self) -> Vec<(String, &mut PeftLinear<B>)>;
    /// Factors shared between layers (LoTR).
    fn shared(&self) -> &SharedFactors<B>;
    fn shared_mut(&mut self) -> &mut SharedFactors<B>;
    /// Output heads, which `all-linear` leaves out.
    fn is_head(&self, name: &str) -> bool;
    /// Targets when the config names none (PEFT's per-architecture defaults).
    fn default_targets(&self) -> Targets;
}

/// What loading a checkpoint found besides the tensors the model used.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Tensors in the checkpoint the architecture does not use (HF's "unexpected keys").
    pub unused: Vec<String>,
    /// The dtype the frozen base was loaded in.
    pub dtype: FloatDType,
}

impl Default for LoadReport {
    fn default() -> Self {
        Self {
            unused: Vec::new(),
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
        }
    }

    /// Prints the unused tensors (if any) on stderr, as transformers warns about them.
    pub fn warn(&self) {
        if !self.unused.is_empty() {
            eprintln!(
                "warning: {} unused tensors in the checkpoint: {}",
                self.unused.len(),
                self.unused.join(", ")
            );
        }
    }
}
