//! Which examples each micro-batch of a run holds, and how many steps the run takes.
//!
//! Epoch `e` visits the training examples in a permutation seeded by `run.seed + e`, cut into
//! micro-batches of `batch_size`; `grad_accumulation` consecutive micro-batches make one
//! optimizer step. The order is a function of (seed, micro-batch index) alone, so a resumed run
//! sees exactly the batches an uninterrupted run would have seen.

use std::cell::RefCell;

use super::recipe::Recipe;
use crate::data::permutation;

/// How long a run is, in optimizer steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLength {
    pub steps_per_epoch: usize,
    pub total_steps: usize,
    /// Epochs the run touches (the last may be partial).
    pub epochs: usize,
}

impl RunLength {
    /// `optim.max_steps` when set, else `optim.epochs` over `examples` training examples.
    pub fn of(recipe: &Recipe, examples: usize) -> Self {
        let o = &recipe.optim;
        let steps_per_epoch = examples.div_ceil(o.batch_size * o.grad_accumulation);
        let total_steps = if o.max_steps > 0 {
            o.max_steps
        } else {
            o.epochs * steps_per_epoch
        };
        Self {
            steps_per_epoch,
            total_steps,
            epochs: total_steps.div_ceil(steps_per_epoch.max(1)),
        }
    }
}

/// The seeded order of a run's micro-batches.
#[derive(Debug)]
pub struct DataOrder {
    examples: usize,
    batch_size: usize,
    batches_per_epoch: usize,
    seed: u64,
    /// The current epoch's permutation, drawn once per epoch (not once per micro-batch).
    current: RefCell<Option<(usize, Vec<usize>)>>,
}

impl DataOrder {
    /// The order of `examples` examples in micro-batches of `batch_size`, seeded by `seed`.
    pub fn new(examples: usize, batch_size: usize, seed: u64) -> Self {
        Self {
            examples,
            batch_size,
            batches_per_epoch: examples.div_ceil(batch_size),
            seed,
            current: RefCell::new(None),
        }
    }

    /// The epoch of micro-batch `micro` and the indices of its examples.
    pub fn micro_batch(&self, micro: usize) -> (usize, Vec<usize>) {
        let epoch = micro / self.batches_per_epoch;
        let pos = micro % self.batches_per_epoch;
        let mut current = self.current.borrow_mut();
        if current.as_ref().is_none_or(|(e, _)| *e != epoch) {
            let order = permutation(self.examples, self.seed.wrapping_add(epoch as u64));
            *current = Some((epoch, order));
        }
        let order = &current.as_ref().expect("just filled").1;
        let end = ((pos + 1) * self.batch_size).min(order.len());
        (epoch, order[pos * self.batch_size..end].to_vec())
    }
}
