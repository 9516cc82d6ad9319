//! Loading whatever a model path holds ([`ModelSource`]): an HF folder of any supported
//! architecture or a llama2.c checkpoint. An adapter folder goes on top with
//! [`crate::persist::apply`].

use std::path::Path;

use burn::tensor::FloatDType;
use burn::tensor::backend::Backend;

use super::config::ModelType;
use super::decoder::Decoder;
use super::encoder::{EncoderClassifier, HeadInit};
use super::precision::Precision;
use super::rwkv6::Rwkv6;
use super::source::ModelSource;
use super::{LoadReport, llama2c};
use crate::Result;

/// A loaded model of any supported family. (Loaded once per command, so the size difference
/// between variants costs nothing.)
#[allow(clippy::large_enum_variant)]
pub enum AnyModel<B: Backend> {
    Decoder(Decoder<B>),
    Encoder(EncoderClassifier<B>),
    Rwkv6(Rwkv6<B>),
}

/// Loads what `path` names ([`ModelSource::resolve`]: an HF model folder, a llama2.c `.bin`
/// file or a folder holding one) in its own dtype.
pub fn load_model<B: Backend>(
    path: &Path,
    device: &B::Device,
) -> Result<(AnyModel<B>, LoadReport)> {
    load_model_as(path, Precision::Auto, device)
}

/// [`load_model`] with the frozen base in `precision`.
pub fn load_model_as<B: Backend>(
    path: &Path,
    precision: Precision,
    device: &B::Device,
) -> Result<(AnyModel<B>, LoadReport)> {
    Ok(match ModelSource::resolve(path)? {
        ModelSource::Llama2c(file) => {
            let dtype = precision.resolve_on::<B>(FloatDType::F32, device);
            let model = llama2c::load_as(&file, dtype, device)?;
            let report = LoadReport {
                dtype,
                ..LoadReport::default()
            };
            (AnyModel::Decoder(model), report)
        }
        ModelSource::RwkvPth(file) => {
            let (model, report) = super::rwkv6_pth::load_as(&file, precision, device)?;
            (AnyModel::Rwkv6(model), report)
        }
        ModelSource::Hf { dir, config } if config.model_type.is_decoder() => {
            let (model, report) = Decoder::load_as(&dir, precision, device)?;
            (AnyModel::Decoder(model), report)
        }
        ModelSource::Hf { dir, config } if config.model_type == ModelType::Rwkv6 => {
            let (model, report) = Rwkv6::load_as(&dir, precision, device)?;
            (AnyModel::Rwkv6(model), report)
        }
        ModelSource::Hf { dir, .. } => {
            let (model, report) =
                EncoderClassifier::load_as(&dir, HeadInit::Checkpoint, precision, device)?;
            (AnyModel::Encoder(model), report)
        }
    })
}

impl<B: Backend> AnyModel<B> {
    pub fn decoder(self) -> Option<Decoder<B>> {
        match self {
            AnyModel::Decoder(m) => Some(m),
            _ => None,
        }
    }

    /// The model's architecture, as config.json names it.
    pub fn architecture(&self) -> String {
        match self {
            AnyModel::Decoder(m) => format!("{:?}", m.config.model_type).to_lowercase(),
            AnyModel::Encoder(m) => format!("{:?}", m.config.model_type).to_lowercase(),
            AnyModel::Rwkv6(_) => "rwkv6".into(),
        }
    }
}
