//! Loading whatever a path holds: an HF folder of any supported architecture, or a llama2.c
//! `.bin`. An adapter folder goes on top with [`crate::persist::apply`].

use std::path::Path;

use burn::tensor::FloatDType;
use burn::tensor::backend::Backend;

use super::config::HfConfig;
use super::decoder::Decoder;
use super::encoder::{EncoderClassifier, HeadInit};
use super::precision::Precision;
use super::{LoadReport, llama2c};
use crate::{Error, Result};

/// A loaded model of any supported family. (Loaded once per command, so the size difference
/// between variants costs nothing.)
#[allow(clippy::large_enum_variant)]
pub enum AnyModel<B: Backend> {
    Decoder(Decoder<B>),
    Encoder(EncoderClassifier<B>),
}

/// Loads an HF model folder or a llama2.c `.bin` file in its own dtype.
pub fn load_model<B: Backend>(
    path: &Path,
    device: &B::Device,
) -> Result<(AnyModel<B>, LoadReport)> {
    load_model_as(path, Precision::Auto, device)
}

/// Loads an HF model folder or a llama2.c `.bin` file with its frozen base in `precision`.
pub fn load_model_as<B: Backend>(
    path: &Path,
    precision: Precision,
    device: &B::Device,
) -> Result<(AnyModel<B>, LoadReport)> {
    if path.is_file() {
        if path.extension().is_some_and(|e| e == "bin") {
            let dtype = precision.resolve_on::<B>(FloatDType::F32, device);
            let report = LoadReport {
                dtype,
                ..LoadReport::default()
            };
            return Ok((
                AnyModel::Decoder(llama2c::load_as(path, dtype, device)?),
                report,
            ));
        }
        return Err(Error::BadFile {
            path: path.to_path_buf(),
            message: "expected an HF model folder or a llama2.c .bin file".into(),
        });
    }
    let hf = HfConfig::read(path)?;
    if hf.model_type.is_decoder() {
        let (model, report) = Decoder::load_as(path, precision, device)?;
        return Ok((AnyModel::Decoder(model), report));
    }
    let (model, report) =
        EncoderClassifier::load_as(path, HeadInit::Checkpoint, precision, device)?;
    Ok((AnyModel::Encoder(model), report))
}

impl<B: Backend> AnyModel<B> {
    pub fn decoder(self) -> Option<Decoder<B>> {
        match self {
            AnyModel::Decoder(m) => Some(m),
            AnyModel::Encoder(_) => None,
        }
    }
}
