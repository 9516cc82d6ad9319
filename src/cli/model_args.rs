//! Arguments shared by the commands that load a model.

use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::tensor::backend::Backend;
use burn_peft::backend::DeviceKind;
use burn_peft::model::Precision;
use burn_peft::model::any::{AnyModel, load_model_as};
use burn_peft::model::tokenizer::TextTokenizer;
use burn_peft::persist::load_with_adapter_as;

#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// HF model folder (config.json + safetensors), llama2.c .bin file, or a folder holding
    /// one llama2.c .bin.
    #[arg(long)]
    pub model: PathBuf,
    /// Adapter folder to apply (adapter_config.json + adapter_model.safetensors), with the
    /// trained head it carries (modules_to_save).
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// Device: cpu (burn-flex), ndarray, wgpu (or wgpu:discrete[:N], wgpu:integrated[:N],
    /// wgpu:cpu, …) or cuda[:N], those compiled in.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceKind,
    /// dtype of the frozen base: auto (the checkpoint's), bf16, f16 or f32. Adapters stay f32;
    /// a device without the dtype (ndarray: no bf16/f16) uses f32 and says so.
    #[arg(long, default_value = "auto")]
    pub precision: Precision,
}

impl ModelArgs {
    /// Loads the model and applies the adapter (with the head it carries, when the base has
    /// none), warning about unused checkpoint tensors.
    pub fn load<B: Backend>(&self, device: &B::Device) -> anyhow::Result<AnyModel<B>> {
        let (model, report) = match &self.adapter {
            Some(dir) => load_with_adapter_as::<B>(&self.model, dir, self.precision, device)
                .with_context(|| {
                    format!(
                        "loading {} with adapter {}",
                        self.model.display(),
                        dir.display()
                    )
                })?,
            None => load_model_as::<B>(&self.model, self.precision, device)
                .with_context(|| format!("loading {}", self.model.display()))?,
        };
        report.warn();
        Ok(model)
    }

    /// The tokenizer: `explicit`, else `tokenizer.json` in the model folder (for a `.bin`, next
    /// to it or in its `hf/` subfolder): [`TextTokenizer::for_model`].
    pub fn tokenizer(&self, explicit: Option<&Path>) -> anyhow::Result<TextTokenizer> {
        Ok(TextTokenizer::for_model(&self.model, explicit)?)
    }
}
