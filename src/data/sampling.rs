//! Deterministic order: seeded permutations, a shuffled view of a dataset and a held-out split.
//!
//! The permutation is a Fisher–Yates shuffle written here, fed by the raw 64-bit stream of
//! rand 0.9's `StdRng` (ChaCha12) seeded with `seed_from_u64`. Using the raw stream instead of
//! `SliceRandom::shuffle` or `random_range` keeps a seed's order independent of how rand maps
//! random bits to ranges, which has changed between rand releases. A value in `0..n` is taken as
//! the high half of `u64 × n` (Lemire's method without rejection): the bias, below `n / 2⁶⁴`, is
//! irrelevant for data order.

use burn::data::dataset::Dataset;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use crate::{Error, Result};

/// A permutation of `0..len` that depends only on `len` and `seed`.
pub fn permutation(len: usize, seed: u64) -> Vec<usize> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..len).collect();
    for i in (1..len).rev() {
        let j = ((u128::from(rng.next_u64()) * (i as u128 + 1)) >> 64) as usize;
        order.swap(i, j);
    }
    order
}

/// `items` reordered by [`permutation`]`(items.len(), seed)`.
pub fn shuffle<T>(items: Vec<T>, seed: u64) -> Vec<T> {
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    permutation(slots.len(), seed)
        .into_iter()
        .filter_map(|i| slots[i].take())
        .collect()
}

/// A seeded subset of `limit` of the `items` (all of them when `limit` is 0 or not below their
/// number), in their original order: a recipe's `data.limit`. The subset depends only on the
/// number of items, `limit` and `seed`.
pub fn seeded_subset<T>(items: Vec<T>, limit: usize, seed: u64) -> Vec<T> {
    if limit == 0 || limit >= items.len() {
        return items;
    }
    let mut keep: Vec<usize> = permutation(items.len(), seed ^ 0x5EED)
        .into_iter()
        .take(limit)
        .collect();
    keep.sort_unstable();
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    keep.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// How many rows to hold out for evaluation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HeldOut {
    /// This fraction of the rows, rounded up (as `datasets`' `train_test_split(test_size=f)`).
    Fraction(f64),
    /// Exactly this many rows.
    Count(usize),
}

impl HeldOut {
    /// The number of held-out rows out of `len`; at least one row must stay for training.
    pub fn rows(self, len: usize) -> Result<usize> {
        let rows = match self {
            HeldOut::Fraction(f) if !(0.0..1.0).contains(&f) => {
                return Err(Error::invalid(
                    "held_out",
                    f,
                    "a fraction must be in [0, 1)",
                ));
            }
            HeldOut::Fraction(f) => (f * len as f64).ceil() as usize,
            HeldOut::Count(n) => n,
        };
        if rows >= len {
            return Err(Error::invalid(
                "held_out",
                rows,
                format!("holding out {rows} of {len} rows leaves none to train on"),
            ));
        }
        Ok(rows)
    }
}

/// Splits `items` into (train, held out). The held-out rows are the first ones of
/// [`permutation`]`(len, seed)`; both parts keep the original file order, so the split is a pure
/// selection and training order is chosen separately.
pub fn split_held_out<T>(items: Vec<T>, held_out: HeldOut, seed: u64) -> Result<(Vec<T>, Vec<T>)> {
    let rows = held_out.rows(items.len())?;
    let mut is_held_out = vec![false; items.len()];
    for i in permutation(items.len(), seed).into_iter().take(rows) {
        is_held_out[i] = true;
    }
    let (held, train): (Vec<_>, Vec<_>) = items
        .into_iter()
        .zip(is_held_out)
        .partition(|(_, held)| *held);
    let strip = |pairs: Vec<(T, bool)>| pairs.into_iter().map(|(item, _)| item).collect();
    Ok((strip(train), strip(held)))
}

/// A view of `dataset` in a seeded order. Reshuffle each epoch with a new seed (e.g.
/// `seed + epoch`).
pub struct SeededShuffle<D> {
    dataset: D,
    order: Vec<usize>,
}

impl<D> SeededShuffle<D> {
    pub fn new<I>(dataset: D, seed: u64) -> Self
    where
        D: Dataset<I>,
    {
        let order = permutation(dataset.len(), seed);
        Self { dataset, order }
    }

    /// The wrapped dataset.
    pub fn into_inner(self) -> D {
        self.dataset
    }
}

impl<D, I> Dataset<I> for SeededShuffle<D>
where
    D: Dataset<I>,
{
    fn get(&self, index: usize) -> Option<I> {
        self.order.get(index).and_then(|&i| self.dataset.get(i))
    }

    fn len(&self) -> usize {
        self.order.len()
    }
}
