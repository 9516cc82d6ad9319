//! Activation checkpointing by per-layer recomputation (`[model] gradient_checkpointing`), as
//! transformers' `gradient_checkpointing_enable` does it: the forward pass keeps only each
//! decoder layer's input; the backward pass runs the layers last to first, recomputing each
//! layer's forward with its graph, back-propagating the gradient that arrives at its output,
//! and freeing that graph before the next layer. Peak activation memory is one layer's graph plus
//! one hidden state per layer, for about one extra forward pass.
//!
//! Burn has no user-level "checkpoint this function" op, so the backward pass is driven here:
//! a layer's input becomes a fresh leaf, and `sum(layer(x) ⊙ g)` is differentiated, whose
//! gradient with respect to `x` and to the layer's parameters is exactly the vector-Jacobian
//! product with the upstream gradient `g`. The backend's random stream is reseeded per layer
//! (from the micro-batch's seed) in both passes, so adapter dropout draws the same masks when a
//! layer is recomputed.
//!
//! Like Megatron-LM's `--recompute-num-layers`, the recomputation can stop short of the top:
//! with `recomputed < layers`, the first `recomputed` layers are recomputed and the others keep
//! their graph from the forward pass, trading memory (one layer's graph each) for time (one
//! layer's forward each).

use burn::module::{AutodiffModule, Module};
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor};

use crate::adapter::HasAdapters;
use crate::model::decoder::{Decoder, arange_positions};
use crate::model::loss::causal_lm_loss;

/// The causal-LM loss of a right-padded batch divided by `divisor` (the gradient-accumulation
/// steps), and its gradients, with per-layer recomputation. `seed` fixes the dropout masks of
/// this micro-batch; the first `recomputed` layers (all when it is at least their number) are
/// recomputed, the others keep their graph. Returns the (divided) loss, `[1]`, on the device
/// (read with the step's other scalars, not here).
pub fn causal_lm_gradients<B: AutodiffBackend>(
    model: &Decoder<B>,
    input_ids: Tensor<B, 2, Int>,
    attention_mask: Tensor<B, 2, Int>,
    labels: Tensor<B, 2, Int>,
    divisor: f64,
    seed: u64,
    recomputed: usize,
) -> (Tensor<B::InnerBackend, 1>, GradientsParams) {
    let device = input_ids.device();
    let positions = arange_positions::<B>(input_ids.dims(), &device);
    let mut accumulator = GradientsAccumulator::<Decoder<B>>::new();

    // Forward without a graph, keeping layer inputs. Without adapter dropout it runs on the
    // inner backend: no autodiff bookkeeping, and the lean ops take their plain (inference)
    // path instead of building surrogates nobody differentiates. Dropout draws masks only under
    // autodiff, so a model with dropout runs the same modules with gradients off instead.
    let dropout = model
        .adapted_layers()
        .iter()
        .any(|l| l.adapter.dropout() > 0.0);
    let (mut inputs, mut x) = if dropout {
        let untracked = model.clone().no_grad();
        layer_inputs(
            &untracked,
            input_ids.clone(),
            attention_mask.clone(),
            positions.clone(),
            seed,
            recomputed,
        )
    } else {
        let (inputs, x) = layer_inputs(
            &model.valid(),
            input_ids.clone().inner(),
            attention_mask.clone().inner(),
            positions.clone().inner(),
            seed,
            recomputed,
        );
        let inputs = inputs.into_iter().map(Tensor::from_inner).collect();
        (inputs, Tensor::from_inner(x))
    };
    let context = model.layer_context(Some(attention_mask), positions, 0, x.dtype());

    // The layers above the recomputed ones, each with its graph from a leaf input of its own.
    let mut kept = Vec::new();
    for (index, layer) in model.layers.iter().enumerate().skip(inputs.len()) {
        B::seed(&device, layer_seed(seed, index));
        let input = x.require_grad();
        let output = layer.forward(input.clone(), &context, index, None, &model.shared);
        x = output.clone().detach();
        kept.push((input, output));
    }

    // Head and loss, with their graph.
    let top = x.require_grad();
    let logits = model.lm_logits(model.norm.forward(top.clone()));
    let loss = causal_lm_loss(logits, labels).div_scalar(divisor);
    let loss_value = loss.clone().inner();
    let grads = loss.backward();
    let mut upstream = top
        .grad(&grads)
        .expect("the head's input is a tracked leaf");
    accumulator.accumulate(model, GradientsParams::from_grads(grads, model));

    // Layers, last to first: the kept graphs, then the recomputed layers (recompute,
    // back-propagate `upstream`, free the graph).
    let recomputed_layers = model.layers.iter().enumerate().take(inputs.len()).rev();
    let kept = kept.into_iter().rev();
    let recomputed = recomputed_layers.map(|(index, layer)| {
        let input = inputs.pop().expect("one input per layer").require_grad();
        B::seed(&device, layer_seed(seed, index));
        let output = layer.forward(input.clone(), &context, index, None, &model.shared);
        (input, output)
    });
    for (input, output) in kept.chain(recomputed) {
        let grads = (output * Tensor::from_inner(upstream)).sum().backward();
        upstream = input
            .grad(&grads)
            .expect("the layer's input is a tracked leaf");
        accumulator.accumulate(model, GradientsParams::from_grads(grads, model));
    }

    // A trained embedding (`modules_to_save = ["embed_tokens"]`) gets its gradient too.
    if model.embed_tokens.weight.is_require_grad() {
        let embedded = model.embed(input_ids);
        let grads = (embedded * Tensor::from_inner(upstream)).sum().backward();
        accumulator.accumulate(model, GradientsParams::from_grads(grads, model));
    }
    (loss_value, accumulator.grads())
}

/// The input of each of the first `count` layers and the output of the last of them, without a
/// graph. Each layer's dropout stream is seeded as in the recomputation.
fn layer_inputs<C: Backend>(
    model: &Decoder<C>,
    input_ids: Tensor<C, 2, Int>,
    attention_mask: Tensor<C, 2, Int>,
    positions: Tensor<C, 2, Int>,
    seed: u64,
    count: usize,
) -> (Vec<Tensor<C, 3>>, Tensor<C, 3>) {
    let device = input_ids.device();
    let mut x = model.embed(input_ids);
    let context = model.layer_context(Some(attention_mask), positions, 0, x.dtype());
    let mut inputs = Vec::with_capacity(count.min(model.layers.len()));
    for (index, layer) in model.layers.iter().enumerate().take(count) {
        C::seed(&device, layer_seed(seed, index));
        inputs.push(x.clone());
        x = layer.forward(x, &context, index, None, &model.shared);
    }
    (inputs, x)
}

/// The dropout seed of layer `index` in a micro-batch seeded `seed` (SplitMix64 mixing, so
/// neighbouring layers and micro-batches get unrelated streams).
fn layer_seed(seed: u64, index: usize) -> u64 {
    let mut x = seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}
