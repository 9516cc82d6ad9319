//! Data parallelism in the loop: every rank holds the whole model and its adapters, trains its
//! part of every optimizer step and, before the step rule (clipping, the regularizer, AdamW),
//! the ranks sum what they computed: the trainable gradients, the loss, the token count and
//! whether any of them was asked to stop. The base is never communicated.
//!
//! The math is the single process's. When the ranks divide the step's micro-batches, each rank
//! trains whole micro-batches ([`deal`]); otherwise every micro-batch is split across the ranks
//! and each rank divides its loss by the micro-batch's whole weight (its targets for a causal
//! LM, its examples for a classifier), not by its own, so the sum over ranks is the
//! token-weighted loss of the whole micro-batch and its gradient the one a single process
//! computes. Every rank then applies the same update to the same values: the replicas stay
//! identical (rank 0 hands its state to all at the start, so also across machines whose SVDs
//! might differ in the last bit).

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};

use super::run_folder::RunFolder;
use crate::Result;
use crate::distributed::{CommStats, ProcessGroup};

/// One micro-batch as this rank trains it.
pub struct MicroBatch<Batch> {
    /// This rank's part of it (`None`: it holds nothing of it that counts in the loss).
    pub batch: Option<Batch>,
    /// The micro-batch's dropout seed.
    pub seed: u64,
    /// This rank's part of the micro-batch's loss weight (1 in a single process).
    pub share: f64,
}

impl<Batch> MicroBatch<Batch> {
    /// A whole micro-batch (a single process).
    pub fn whole(batch: Batch, seed: u64) -> Self {
        Self {
            batch: Some(batch),
            seed,
            share: 1.0,
        }
    }
}

/// This process's place among the replicas, and the exchange of their step results.
pub struct DataParallel {
    group: ProcessGroup,
}

/// A step's sums over all ranks.
pub struct ReducedStep<B: AutodiffBackend> {
    pub grads: GradientsParams,
    pub loss: Tensor<B::InnerBackend, 1>,
    pub tokens: usize,
    pub stop: bool,
}

impl DataParallel {
    pub fn new(group: ProcessGroup) -> Self {
        Self { group }
    }

    /// One process: nothing is exchanged.
    pub fn single() -> Self {
        Self::new(ProcessGroup::single())
    }

    pub fn rank(&self) -> usize {
        self.group.rank()
    }

    pub fn world(&self) -> usize {
        self.group.world()
    }

    /// Rank 0, the one that writes the run folder.
    pub fn is_root(&self) -> bool {
        self.group.is_root()
    }

    pub fn stats(&self) -> CommStats {
        self.group.stats()
    }

    /// This rank's part of a micro-batch's examples ([`shard`]).
    pub fn shard<'a>(&self, indices: &'a [usize]) -> &'a [usize] {
        shard(indices, self.rank(), self.world())
    }

    /// Sums the step's trainable gradients of `model`, `loss`, `tokens` and `stop` over all
    /// ranks: one host read and one upload of the gradients per step.
    pub fn reduce_step<B, M>(
        &mut self,
        model: &M,
        grads: GradientsParams,
        loss: Option<Tensor<B::InnerBackend, 1>>,
        tokens: usize,
        stop: bool,
    ) -> Result<ReducedStep<B>>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
    {
        let device = &model.devices()[0];
        let mut flatten = Flatten::<B> {
            grads: &grads,
            parts: Vec::new(),
            present: Vec::new(),
            device: device.clone(),
        };
        model.visit(&mut flatten);
        let Flatten {
            mut parts, present, ..
        } = flatten;
        parts.push(loss.unwrap_or_else(|| Tensor::zeros([1], device)));
        let values: usize = parts.iter().map(|p| p.dims()[0]).sum();
        let mut host: Vec<f32> = Tensor::cat(parts, 0).into_data().iter::<f32>().collect();
        host.extend_from_slice(&present);
        host.push(tokens as f32);
        host.push(f32::from(u8::from(stop)));
        self.group.all_reduce_sum(&mut host)?;

        let flat = Tensor::<B::InnerBackend, 1>::from_data(
            TensorData::new(host[..values].to_vec(), [values]),
            device,
        );
        let mut unflatten = Unflatten::<B> {
            flat: flat.clone(),
            offset: 0,
            index: 0,
            present: &host[values..values + present.len()],
            grads: GradientsParams::new(),
        };
        model.visit(&mut unflatten);
        let tail = &host[values + present.len()..];
        Ok(ReducedStep {
            grads: unflatten.grads,
            loss: flat.narrow(0, values - 1, 1),
            tokens: tail[0].round() as usize,
            stop: tail[1] > 0.0,
        })
    }

    /// Hands rank 0's state (trainable tensors, optimizer state, step) to every rank, through
    /// the checkpoint format, so that all start identical: a fresh run whatever each machine's
    /// initialisation gave, a resumed one from the checkpoint only rank 0 has.
    pub fn share_state<B, M, O>(
        &mut self,
        model: M,
        optimizer: O,
        step: usize,
        device: &B::Device,
    ) -> Result<(M, O, usize)>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
        O: Optimizer<M, B>,
    {
        if self.world() == 1 {
            return Ok((model, optimizer, step));
        }
        let scratch = Scratch::new()?;
        let folder = RunFolder::at(&scratch.0);
        let packed = if self.is_root() {
            folder
                .write_checkpoint(step, &model, &optimizer)?
                .to_bytes()?
        } else {
            Vec::new()
        };
        let packed = self.group.broadcast(packed)?;
        if self.is_root() {
            return Ok((model, optimizer, step));
        }
        folder
            .import_checkpoint(&packed, "the state rank 0 sent")?
            .restore(model, optimizer, device)
    }
}

/// What rank `rank` of `world` trains of micro-batch `micro` (of `per_step` in an optimizer
/// step), whose examples are `indices`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deal<'a> {
    /// All of it: the micro-batches of a step are dealt round whole when the ranks divide their
    /// number (the 7B recipes' 2 × 64), so each is computed as one process computes it.
    Whole,
    /// None of it (another rank's whole micro-batch).
    Nothing,
    /// This contiguous part of its examples (each micro-batch split across all ranks).
    Share(&'a [usize]),
}

/// Deals micro-batch `micro` of `per_step` to rank `rank` of `world` ([`Deal`]).
pub fn deal(
    micro: usize,
    per_step: usize,
    indices: &[usize],
    rank: usize,
    world: usize,
) -> Deal<'_> {
    if world == 1 {
        Deal::Whole
    } else if per_step.is_multiple_of(world) {
        if micro % world == rank {
            Deal::Whole
        } else {
            Deal::Nothing
        }
    } else {
        Deal::Share(shard(indices, rank, world))
    }
}

/// Rank `rank`'s contiguous part of `indices` among `world` ranks (sizes differ by at most
/// one; a rank may get none).
pub fn shard(indices: &[usize], rank: usize, world: usize) -> &[usize] {
    let (base, extra) = (indices.len() / world, indices.len() % world);
    let start = rank * base + rank.min(extra);
    &indices[start..start + base + usize::from(rank < extra)]
}

/// A private temporary folder, removed when dropped.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new() -> Result<Self> {
        // Unique per process and per replica (the replicas of `run.devices` share a process).
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("burn-peft-state-{}-{n}", std::process::id()));
        // A folder left by an earlier process of the same id must not lend its checkpoint.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|cause| crate::Error::Io {
            path: dir.clone(),
            cause,
        })?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every trainable parameter's gradient, flattened in module order (zeros where a parameter has
/// none, marked absent so that the sum does not invent a gradient no rank computed).
struct Flatten<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    parts: Vec<Tensor<B::InnerBackend, 1>>,
    present: Vec<f32>,
    device: B::Device,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Flatten<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if !param.is_require_grad() {
            return;
        }
        let count = param.shape().num_elements();
        match self.grads.get::<B::InnerBackend, D>(param.id) {
            Some(grad) => {
                self.parts.push(grad.reshape([count]));
                self.present.push(1.0);
            }
            None => {
                self.parts.push(Tensor::zeros([count], &self.device));
                self.present.push(0.0);
            }
        }
    }
}

/// The summed gradients back under their parameters, in the same order.
struct Unflatten<'a, B: AutodiffBackend> {
    flat: Tensor<B::InnerBackend, 1>,
    offset: usize,
    index: usize,
    present: &'a [f32],
    grads: GradientsParams,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Unflatten<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if !param.is_require_grad() {
            return;
        }
        let shape = param.shape();
        let count = shape.num_elements();
        if self.present[self.index] > 0.0 {
            let grad = self
                .flat
                .clone()
                .narrow(0, self.offset, count)
                .reshape(shape);
            self.grads.register::<B::InnerBackend, D>(param.id, grad);
        }
        self.offset += count;
        self.index += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_batches_are_dealt_whole_when_the_ranks_divide_them() {
        let indices = [1, 2, 3, 4];
        let owners = |per_step: usize, world: usize| -> Vec<Vec<Deal<'_>>> {
            (0..per_step)
                .map(|m| {
                    (0..world)
                        .map(|r| deal(m, per_step, &indices, r, world))
                        .collect()
                })
                .collect()
        };
        // 4 micro-batches on 2 ranks: rank 0 takes 0 and 2, rank 1 takes 1 and 3.
        for (m, deals) in owners(4, 2).iter().enumerate() {
            let whole: Vec<usize> = (0..2).filter(|&r| deals[r] == Deal::Whole).collect();
            assert_eq!(whole, vec![m % 2]);
        }
        // 3 on 2: every micro-batch is split.
        assert_eq!(owners(3, 2)[1][1], Deal::Share(&[3, 4]));
        assert_eq!(deal(0, 1, &indices, 0, 1), Deal::Whole);
    }

    #[test]
    fn shards_cover_a_micro_batch_once() {
        let indices: Vec<usize> = (10..17).collect();
        assert_eq!(DataParallel::single().shard(&indices), &indices[..]);
        for world in 1..10 {
            let parts: Vec<&[usize]> = (0..world).map(|r| shard(&indices, r, world)).collect();
            assert_eq!(parts.concat(), indices, "world {world}");
            let sizes: Vec<usize> = parts.iter().map(|p| p.len()).collect();
            assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
        }
    }
}
