//! Turning a loaded base model into a PEFT model: adapters on the target linears (LoTR groups
//! formed from targets of equal shape), and `modules_to_save` made trainable.

use burn::nn::Linear;
use burn::tensor::FloatDType;
use burn::tensor::backend::Backend;

use super::PeftModel;
use super::linear::PeftLinear;
use crate::adapter::{AdapterConfig, AdapterInit, HasAdapters, Method, SharedFactors};
use crate::{Error, Result};

/// What injection did.
#[derive(Debug, Clone, Default)]
pub struct Injection {
    /// Full names of the adapted linears, in model order.
    pub adapted: Vec<String>,
}

/// Adds the configured adapter to every target linear of `model` and unfreezes
/// `modules_to_save`. Errors when the targets match nothing.
pub fn inject_adapters<B: Backend, M: PeftModel<B>>(
    mut model: M,
    config: &AdapterConfig,
) -> Result<(M, Injection)> {
    let targets = config
        .targets
        .clone()
        .unwrap_or_else(|| model.default_targets());
    let matcher = targets.compile()?;
    let mut init = AdapterInit::new(config.clone())?;
    // Modules trained fully are not adapted (as PEFT leaves `modules_to_save` out of targets).
    let saved = saved_linears(&model, &config.modules_to_save)?;

    let targeted: Vec<bool> = model
        .linears()
        .iter()
        .map(|(name, _)| matcher.matches(name, model.is_head(name)) && !saved.contains(name))
        .collect();
    let mut shared = std::mem::take(model.shared_mut());
    let mut slots: Vec<(String, &mut PeftLinear<B>)> = model
        .linears_mut()
        .into_iter()
        .zip(targeted)
        .filter(|(_, targeted)| *targeted)
        .map(|(slot, _)| slot)
        .collect();
    if slots.is_empty() {
        let names: Vec<String> = model_linear_names(&model);
        return Err(Error::invalid(
            "adapter.targets",
            format!("{targets:?}"),
            format!(
                "matches no linear layer; this model's linears are: {}",
                names.join(", ")
            ),
        ));
    }
    if let Some((name, _)) = slots
        .iter()
        .find(|(_, slot)| matches!(slot, PeftLinear::Adapted(_)))
    {
        return Err(Error::invalid(
            "adapter.targets",
            name,
            "this layer already carries an adapter",
        ));
    }

    let adapted: Vec<String> = slots.iter().map(|(name, _)| name.clone()).collect();
    let total = slots.len();
    // A live progress line only for a person watching (SVD inits of large models take minutes).
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && (total > 8 || config.method != Method::Lora);
    if config.method == Method::Lotr {
        // One LoTR group per distinct weight shape, in order of first appearance.
        let mut shapes: Vec<[usize; 2]> = Vec::new();
        for (_, slot) in &slots {
            if !shapes.contains(&slot.dims()) {
                shapes.push(slot.dims());
            }
        }
        for shape in shapes {
            let members: Vec<&mut (String, &mut PeftLinear<B>)> = slots
                .iter_mut()
                .filter(|(_, s)| s.dims() == shape)
                .collect();
            let bases = members.iter().map(|(_, s)| s.base().clone()).collect();
            let layers = init.adapt_group(bases, &mut shared)?;
            for ((_, slot), layer) in members.into_iter().zip(layers) {
                **slot = PeftLinear::Adapted(layer);
            }
        }
    } else {
        for (index, (name, slot)) in slots.iter_mut().enumerate() {
            if progress {
                eprint!(
                    "\rinitialising {} adapters: {}/{total} {name}\x1b[K",
                    config.method,
                    index + 1
                );
            }
            let layer = init
                .adapt(slot.base().clone())
                .map_err(|e| e.in_layer(name))?;
            **slot = PeftLinear::Adapted(layer);
        }
        if progress {
            eprintln!();
        }
    }
    drop(slots);
    *model.shared_mut() = shared;
    let model = unfreeze_modules(model, &config.modules_to_save)?;
    Ok((model, Injection { adapted }))
}

fn model_linear_names<B: Backend, M: PeftModel<B>>(model: &M) -> Vec<String> {
    let mut short: Vec<String> = model
        .linears()
        .into_iter()
        .map(|(name, _)| name.rsplit('.').next().unwrap_or(&name).to_string())
        .collect();
    short.sort();
    short.dedup();
    short
}

/// Whether the linear layer `name` lies in a module named by a `modules_to_save` entry, with
/// PEFT's matching: a module whose full name equals `entry` or ends with `.entry`, and every
/// linear inside it (`classifier` selects `classifier.dense` and `classifier.out_proj`;
/// `classifier.out_proj` only that one).
pub fn selects(entry: &str, name: &str) -> bool {
    let suffix = format!(".{entry}");
    name.match_indices('.')
        .map(|(i, _)| &name[..i])
        .chain([name])
        .any(|module| module == entry || module.ends_with(&suffix))
}

/// The linear layers `entries` (`adapter.modules_to_save`) select, in model order. Only linear
/// layers (heads, projections) can be saved modules; an entry that selects none is an error
/// naming it and the model's heads.
pub fn saved_linears<B: Backend, M: PeftModel<B>>(
    model: &M,
    entries: &[String],
) -> Result<Vec<String>> {
    let linears = model.linears();
    if let Some(missing) = entries
        .iter()
        .find(|e| !linears.iter().any(|(name, _)| selects(e, name)))
    {
        let heads: Vec<&str> = linears
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| model.is_head(name))
            .collect();
        return Err(Error::invalid(
            "adapter.modules_to_save",
            missing,
            format!(
                "selects no linear layer of this model (modules to save are linear layers or \
                 modules of them; this model's heads: {})",
                if heads.is_empty() {
                    "none".to_string()
                } else {
                    heads.join(", ")
                }
            ),
        ));
    }
    Ok(linears
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| entries.iter().any(|e| selects(e, name)))
        .collect())
}

/// Makes the weight and bias of every linear layer `entries` select trainable (PEFT's
/// `modules_to_save`). A selected layer that carries an adapter is an error: a module is either
/// adapted or trained fully.
pub fn unfreeze_modules<B: Backend, M: PeftModel<B>>(
    mut model: M,
    entries: &[String],
) -> Result<M> {
    let saved = saved_linears(&model, entries)?;
    for (name, slot) in model.linears_mut() {
        if !saved.contains(&name) {
            continue;
        }
        let PeftLinear::Plain(linear) = slot else {
            return Err(Error::invalid(
                "adapter.modules_to_save",
                &name,
                "this layer also carries an adapter: a module is either adapted or trained fully",
            ));
        };
        // Trained weights, their gradients and optimizer state are f32 whatever the base
        // precision.
        *slot = PeftLinear::Plain(Linear {
            weight: linear
                .weight
                .clone()
                .map(|t| t.cast(FloatDType::F32))
                .set_require_grad(true),
            bias: linear
                .bias
                .clone()
                .map(|b| b.map(|t| t.cast(FloatDType::F32)).set_require_grad(true)),
        });
    }
    Ok(model)
}

/// The adapted layers of a model, for [`HasAdapters`] implementations.
pub fn adapted_layers<B: Backend>(
    linears: Vec<(String, &PeftLinear<B>)>,
) -> Vec<&crate::adapter::AdaptedLinear<B>> {
    linears
        .into_iter()
        .filter_map(|(_, slot)| match slot {
            PeftLinear::Adapted(a) => Some(a),
            PeftLinear::Plain(_) => None,
        })
        .collect()
}

/// Folds every adapter into its base: the model becomes a plain one with no adapter cost.
pub fn merge_adapters<B: Backend, M: PeftModel<B> + HasAdapters<B>>(mut model: M) -> M {
    let shared = std::mem::take(model.shared_mut());
    for (_, slot) in model.linears_mut() {
        if let PeftLinear::Adapted(adapted) = slot {
            let merged = adapted.clone().merge(&shared);
            *slot = PeftLinear::Plain(merged);
        }
    }
    let _: SharedFactors<B> = shared;
    model
}
