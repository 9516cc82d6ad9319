//! Per-layer spectral shift of a model carrying adapters against the base it was trained from.

use std::collections::HashMap;

use burn::tensor::backend::Backend;

use super::spectral::spectral_shift;
use crate::linalg::tensor_to_mat;
use crate::model::{PeftLinear, PeftModel};
use crate::{Error, Result};

/// ΔΣ and ΔD of one adapted linear layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerShift {
    /// Block index (`model.layers.N.…`, `rwkv.blocks.N.…`); `None` for layers outside the blocks.
    pub layer: Option<usize>,
    /// Full HF module name, e.g. `model.layers.0.self_attn.q_proj`.
    pub module: String,
    pub delta_sigma: f64,
    pub delta_d: f64,
}

/// For every adapted layer of `trained`, ΔΣ and ΔD of its merged weight `W_t` against the same
/// layer's weight in `base` (`W_0`, a model without adapters). Both are read in Burn's `[in, out]`
/// layout: the transpose swaps u and v but leaves σ and ΔD unchanged.
pub fn layer_shifts<B: Backend, M: PeftModel<B>>(base: &M, trained: &M) -> Result<Vec<LayerShift>> {
    let originals: HashMap<String, &PeftLinear<B>> = base.linears().into_iter().collect();
    let shared = trained.shared();
    let mut shifts = Vec::new();
    for (name, slot) in trained.linears() {
        let PeftLinear::Adapted(adapted) = slot else {
            continue;
        };
        let original = originals.get(&name).ok_or_else(|| {
            Error::invalid(
                "base",
                &name,
                "the base model has no such linear layer: adapter trained on another architecture?",
            )
        })?;
        // W_0 is the *original* weight, not the residual base a splitting method keeps.
        let w0 = tensor_to_mat(&original.base().weight.val());
        let wt = tensor_to_mat(&adapted.merged_weight(shared));
        let (delta_sigma, delta_d) = spectral_shift(w0.as_ref(), wt.as_ref())
            .map_err(|e| Error::invalid("layer", &name, e.to_string()))?;
        shifts.push(LayerShift {
            layer: block_index(&name),
            module: name,
            delta_sigma,
            delta_d,
        });
    }
    if shifts.is_empty() {
        return Err(Error::invalid(
            "adapter",
            "(none)",
            "the model carries no adapted layer to analyse",
        ));
    }
    Ok(shifts)
}

/// `N` in `….layers.N.…` (Llama's `model.layers.N`, BERT's `encoder.layer.N`, RWKV6's
/// `rwkv.blocks.N`).
fn block_index(name: &str) -> Option<usize> {
    let parts: Vec<&str> = name.split('.').collect();
    parts
        .windows(2)
        .find(|w| matches!(w[0], "layers" | "layer" | "blocks"))
        .and_then(|w| w[1].parse().ok())
}
