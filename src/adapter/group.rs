//! A set of adapted layers that read the same input, with the factors they share: the smallest
//! complete PEFT module (the CLI demo and tests use it; models embed `SharedFactors` the same way).

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Tensor, backend::Backend};

use super::{AdaptedLinear, AdapterInit, HasAdapters, SharedFactors};
use crate::Result;

#[derive(Module, Debug)]
pub struct AdaptedGroup<B: Backend> {
    pub layers: Vec<AdaptedLinear<B>>,
    pub shared: SharedFactors<B>,
}

impl<B: Backend> AdaptedGroup<B> {
    /// Adapts `bases` as one group (one shared factor pair for LoTR).
    pub fn new(bases: Vec<Linear<B>>, init: &mut AdapterInit) -> Result<Self> {
        let mut shared = SharedFactors::default();
        let layers = init.adapt_group(bases, &mut shared)?;
        Ok(Self { layers, shared })
    }

    /// Each layer applied to `x`.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Vec<Tensor<B, D>> {
        self.layers
            .iter()
            .map(|layer| layer.forward(x.clone(), &self.shared))
            .collect()
    }

    /// The layers merged into plain linears.
    pub fn merge(self) -> Vec<Linear<B>> {
        let shared = self.shared;
        self.layers
            .into_iter()
            .map(|layer| layer.merge(&shared))
            .collect()
    }
}

impl<B: Backend> HasAdapters<B> for AdaptedGroup<B> {
    fn adapted_layers(&self) -> Vec<&AdaptedLinear<B>> {
        self.layers.iter().collect()
    }
}
