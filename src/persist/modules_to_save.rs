//! `modules_to_save` in HF PEFT's adapter layout: a fully trained (or newly created) module's
//! tensors under `base_model.model.<module>.weight` / `.bias` (HF `[out, in]`), next to the
//! adapter factors, with the module listed in `adapter_config.json`'s `modules_to_save`. This
//! is how PEFT saves a `SEQ_CLS` model's `classifier` / `score` head, so adapters with heads
//! load both ways.

use burn::tensor::backend::Backend;

use crate::adapter::linear::param;
use crate::io::checkpoint::{Checkpoint, OutTensor};
use crate::linalg::layout::{burn_to_hf, hf_to_burn};
use crate::linalg::tensor_to_vec;
use crate::model::inject::saved_linears;
use crate::model::{PeftLinear, PeftModel};
use crate::{Error, Result};

/// The prefix PEFT gives every tensor of an adapter file.
pub const PREFIX: &str = "base_model.model.";

/// The weights (and biases) of the linear layers `entries` select, under PEFT's names.
pub fn module_tensors<B: Backend, M: PeftModel<B>>(
    model: &M,
    entries: &[String],
) -> Result<Vec<OutTensor>> {
    let saved = saved_linears(model, entries)?;
    let mut out = Vec::new();
    for (name, slot) in model.linears() {
        if !saved.contains(&name) {
            continue;
        }
        let PeftLinear::Plain(linear) = slot else {
            return Err(Error::invalid(
                "adapter.modules_to_save",
                &name,
                "this layer carries an adapter: a module is either adapted or saved whole",
            ));
        };
        let weight = burn_to_hf(linear.weight.val());
        out.push(OutTensor::F32(
            format!("{PREFIX}{name}.weight"),
            weight.dims().to_vec(),
            tensor_to_vec(weight),
        ));
        if let Some(bias) = &linear.bias {
            let bias = bias.val();
            out.push(OutTensor::F32(
                format!("{PREFIX}{name}.bias"),
                bias.dims().to_vec(),
                tensor_to_vec(bias),
            ));
        }
    }
    Ok(out)
}

/// Replaces the weight and bias of every plain linear layer of `model` whose
/// `base_model.model.<name>.weight` / `.bias` is in `ckpt` (shapes checked). Returns the names
/// of the layers restored; `trainable(name)` says whether a restored layer trains. A tensor
/// for a layer that carries an adapter, or a bias for a layer without one, is an error naming
/// the tensor.
pub fn restore_modules<B: Backend, M: PeftModel<B>>(
    model: &mut M,
    ckpt: &Checkpoint,
    trainable: impl Fn(&str) -> bool,
) -> Result<Vec<String>> {
    let mut restored = Vec::new();
    for (name, slot) in model.linears_mut() {
        let (weight_name, bias_name) = (
            format!("{PREFIX}{name}.weight"),
            format!("{PREFIX}{name}.bias"),
        );
        if !ckpt.contains(&weight_name) && !ckpt.contains(&bias_name) {
            continue;
        }
        let bad = |tensor: &str, message: &str| Error::BadFile {
            path: ckpt.path_of(tensor),
            message: format!("tensor `{tensor}`: {message}"),
        };
        let PeftLinear::Plain(linear) = &*slot else {
            return Err(bad(
                &weight_name,
                "replaces a layer that also carries an adapter",
            ));
        };
        let [in_features, out_features] = slot.dims();
        let device = linear.weight.device();
        let train = trainable(&name);
        let mut linear = linear.clone();
        if ckpt.contains(&weight_name) {
            let weight = ckpt.tensor::<B, 2>(&weight_name, [out_features, in_features], &device)?;
            linear.weight = param(hf_to_burn(weight), train);
        } else {
            linear.weight = linear.weight.set_require_grad(train);
        }
        match (ckpt.contains(&bias_name), &linear.bias) {
            (true, Some(_)) => {
                let bias = ckpt.tensor::<B, 1>(&bias_name, [out_features], &device)?;
                linear.bias = Some(param(bias, train));
            }
            (true, None) => return Err(bad(&bias_name, "this layer of the model has no bias")),
            (false, Some(bias)) => linear.bias = Some(bias.clone().set_require_grad(train)),
            (false, None) => {}
        }
        *slot = PeftLinear::Plain(linear);
        restored.push(name);
    }
    Ok(restored)
}
