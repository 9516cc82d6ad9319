//! The key/value cache of incremental decoding: per layer, one preallocated
//! `[batch, kv_heads, capacity, head_dim]` buffer for keys and one for values, written in place
//! (`slice_assign` on a uniquely owned buffer writes into it on burn-flex) instead of a `cat`
//! that copies the whole past at every token.

use burn::tensor::{Tensor, backend::Backend};

/// Keys and values of past positions, per layer.
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    layers: Vec<Option<(Tensor<B, 4>, Tensor<B, 4>)>>,
    len: usize,
    capacity: usize,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache for `num_layers` layers that holds `capacity` positions before it has to
    /// grow (prompt length + new tokens avoids any regrowth).
    pub fn new(num_layers: usize, capacity: usize) -> Self {
        Self {
            layers: vec![None; num_layers],
            len: 0,
            capacity: capacity.max(1),
        }
    }

    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes layer `layer`'s keys and values `[batch, kv_heads, seq, head_dim]` for the
    /// positions after the cached ones and returns all of them (`[.., len + seq, ..]`).
    pub(crate) fn append(
        &mut self,
        layer: usize,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let [b, h, s, d] = k.dims();
        let end = self.len + s;
        if end > self.capacity {
            self.capacity = end.max(2 * self.capacity);
        }
        let capacity = self.capacity;
        let write = |buffer: Option<Tensor<B, 4>>, new: Tensor<B, 4>| {
            let buffer = match buffer {
                Some(buffer) if buffer.dims()[2] == capacity => buffer,
                Some(buffer) => {
                    // Outgrown: move the filled part into a larger buffer (amortised doubling).
                    let grown = Tensor::zeros([b, h, capacity, d], (&new.device(), new.dtype()));
                    let filled = buffer.slice([0..b, 0..h, 0..self.len, 0..d]);
                    grown.slice_assign([0..b, 0..h, 0..self.len, 0..d], filled)
                }
                None => Tensor::zeros([b, h, capacity, d], (&new.device(), new.dtype())),
            };
            buffer.slice_assign([0..b, 0..h, self.len..end, 0..d], new)
        };
        let slot = &mut self.layers[layer];
        let (old_k, old_v) = match slot.take() {
            Some((k, v)) => (Some(k), Some(v)),
            None => (None, None),
        };
        let (keys, values) = (write(old_k, k), write(old_v, v));
        let filled = |t: &Tensor<B, 4>| t.clone().slice([0..b, 0..h, 0..end, 0..d]);
        let out = (filled(&keys), filled(&values));
        *slot = Some((keys, values));
        out
    }

    /// Marks `seq` more positions as cached, once every layer has appended them.
    pub(crate) fn advance(&mut self, seq: usize) {
        self.len += seq;
    }
}
