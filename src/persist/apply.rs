//! Applying an adapter folder to a loaded model of any family ([`AnyModel`]): one written by
//! burn-peft (any method) or a plain HF PEFT LoRA adapter, with a classification head that the
//! adapter carries and the base checkpoint lacks.

use std::path::Path;

use burn::tensor::backend::Backend;

use super::modules_to_save::PREFIX;
use super::{adapter, peft};
use crate::io::checkpoint::Checkpoint;
use crate::model::LoadReport;
use crate::model::any::{AnyModel, load_model_as};
use crate::model::encoder::{EncoderClassifier, HeadInit};
use crate::model::precision::Precision;
use crate::model::source::ModelSource;
use crate::{Error, Result};

/// Loads a model and applies the adapter folder `adapter` ([`AnyModel::with_adapter`]). A
/// classification head that the base checkpoint lacks (a head trained on a pretrained body such
/// as `roberta-base`) is taken from the adapter, which must then carry all of it.
pub fn load_with_adapter<B: Backend>(
    path: &Path,
    adapter: &Path,
    device: &B::Device,
) -> Result<(AnyModel<B>, LoadReport)> {
    load_with_adapter_as(path, adapter, Precision::Auto, device)
}

/// [`load_with_adapter`] with the frozen base in `precision`.
pub fn load_with_adapter_as<B: Backend>(
    path: &Path,
    adapter: &Path,
    precision: Precision,
    device: &B::Device,
) -> Result<(AnyModel<B>, LoadReport)> {
    let weights = adapter.join(peft::WEIGHTS_FILE);
    let saved = Checkpoint::open_files(std::slice::from_ref(&weights))?;
    let head_labels = HEAD_OUTPUTS.iter().find_map(|name| {
        saved
            .shape(&format!("{PREFIX}{name}.weight"))
            .and_then(|shape| shape.first().copied())
    });
    let is_encoder = ModelSource::resolve(path)?.is_encoder();
    let (model, mut report) = match head_labels {
        Some(num_labels) if is_encoder => {
            let head = HeadInit::IfMissing {
                num_labels,
                seed: 0,
            };
            let (model, report) = EncoderClassifier::load_as(path, head, precision, device)?;
            (AnyModel::Encoder(model), report)
        }
        _ => load_model_as(path, precision, device)?,
    };
    // Nothing newly initialised may remain: the adapter replaces all of it.
    if let Some(missing) = report
        .initialized
        .iter()
        .find(|t| !saved.contains(&format!("{PREFIX}{t}")))
    {
        return Err(Error::BadFile {
            path: weights,
            message: format!(
                "the base model {} has no `{missing}` and this adapter does not carry it",
                path.display()
            ),
        });
    }
    report.initialized.clear();
    Ok((model.with_adapter(adapter)?, report))
}

/// Output layers of classification heads, whose first dimension is the number of labels.
const HEAD_OUTPUTS: [&str; 3] = ["classifier.out_proj", "classifier", "score"];

impl<B: Backend> AnyModel<B> {
    /// Applies the adapter folder `dir`: one written by burn-peft (any method), or a plain
    /// HF PEFT LoRA adapter. A decoder gets the adapter's `score` head when it has none.
    pub fn with_adapter(self, dir: &Path) -> Result<Self> {
        let ours = adapter::is_burn_peft_adapter(dir)?;
        let score_labels = Checkpoint::open_files(&[dir.join(peft::WEIGHTS_FILE)])?
            .shape(&format!("{PREFIX}score.weight"))
            .and_then(|shape| shape.first().copied());
        let model = match (self, score_labels) {
            (AnyModel::Decoder(m), Some(labels)) if m.score.is_none() => {
                // The adapter replaces these values.
                AnyModel::Decoder(m.with_score_head(labels, 0))
            }
            (model, _) => model,
        };
        Ok(match model {
            AnyModel::Decoder(m) if ours => {
                AnyModel::Decoder(adapter::load_adapter(m, dir, false)?.0)
            }
            AnyModel::Encoder(m) if ours => {
                AnyModel::Encoder(adapter::load_adapter(m, dir, false)?.0)
            }
            AnyModel::Rwkv6(m) if ours => AnyModel::Rwkv6(adapter::load_adapter(m, dir, false)?.0),
            AnyModel::Decoder(m) => AnyModel::Decoder(peft::load_peft_lora(m, dir)?),
            AnyModel::Encoder(m) => AnyModel::Encoder(peft::load_peft_lora(m, dir)?),
            AnyModel::Rwkv6(m) => AnyModel::Rwkv6(peft::load_peft_lora(m, dir)?),
        })
    }
}
