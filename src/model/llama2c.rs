//! Karpathy's llama2.c checkpoint format (`.bin`), as the shipped stories260K original uses.
//!
//! Layout: seven little-endian i32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
//! seq_len; a negative vocab_size means an untied classifier follows), then f32 arrays:
//! token_embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1 (gate), w2 (down), w3 (up), rms_final,
//! two legacy RoPE tables, and the classifier when untied. Matrices are `[out, in]`.
//! llama2.c's RoPE rotates adjacent channel pairs; HF rotates halves, so q/k rows are permuted
//! on load (the same permutation HF's conversion script applies). The result is an HF-named
//! in-memory checkpoint that [`Decoder::from_checkpoint`] builds from.

use std::path::Path;

use burn::tensor::FloatDType;
use burn::tensor::backend::Backend;

use super::decoder::{Decoder, DecoderConfig};
use crate::io::checkpoint::{Checkpoint, OutTensor, serialize};
use crate::{Error, Result};

/// Loads a llama2.c `.bin` checkpoint as a Llama decoder (BOS 1, EOS 2, as llama2.c's
/// sentencepiece vocabularies use).
pub fn load<B: Backend>(path: &Path, device: &B::Device) -> Result<Decoder<B>> {
    load_as(path, FloatDType::F32, device)
}

/// [`load`] with the weights (stored f32 in the file) in `dtype`.
pub fn load_as<B: Backend>(
    path: &Path,
    dtype: FloatDType,
    device: &B::Device,
) -> Result<Decoder<B>> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        cause: source,
    })?;
    let bad = |message: String| Error::BadFile {
        path: path.to_path_buf(),
        message,
    };
    let Header {
        dim,
        hidden,
        layers,
        heads,
        kv_heads,
        vocab,
        seq_len,
        shared,
    } = Header::parse(&bytes, bytes.len(), path)?;
    let head_dim = dim / heads;
    let kv_dim = kv_heads * head_dim;

    let floats: Vec<f32> = bytes[28..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let mut cursor = 0usize;
    let mut take = |n: usize, what: &str| -> Result<Vec<f32>> {
        let end = cursor + n;
        let slice = floats.get(cursor..end).ok_or_else(|| {
            bad(format!(
                "truncated: `{what}` needs {n} floats at offset {cursor}, the file has {}",
                floats.len()
            ))
        })?;
        cursor = end;
        Ok(slice.to_vec())
    };

    let mut tensors = Vec::new();
    let mut push = |name: String, shape: Vec<usize>, values: Vec<f32>| {
        tensors.push(OutTensor::F32(name, shape, values))
    };
    push(
        "model.embed_tokens.weight".into(),
        vec![vocab, dim],
        take(vocab * dim, "token_embedding")?,
    );
    let per_layer = |all: Vec<f32>, l: usize, n: usize| all[l * n..(l + 1) * n].to_vec();
    let rms_att = take(layers * dim, "rms_att")?;
    let wq = take(layers * dim * dim, "wq")?;
    let wk = take(layers * kv_dim * dim, "wk")?;
    let wv = take(layers * kv_dim * dim, "wv")?;
    let wo = take(layers * dim * dim, "wo")?;
    let rms_ffn = take(layers * dim, "rms_ffn")?;
    let w1 = take(layers * hidden * dim, "w1")?;
    let w2 = take(layers * dim * hidden, "w2")?;
    let w3 = take(layers * hidden * dim, "w3")?;
    let rms_final = take(dim, "rms_final")?;
    let _rope_tables = take(seq_len * head_dim, "freq_cis")?;
    let classifier = if shared {
        None
    } else {
        Some(take(vocab * dim, "wcls")?)
    };
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        push(
            format!("{p}.input_layernorm.weight"),
            vec![dim],
            per_layer(rms_att.clone(), l, dim),
        );
        let q = per_layer(wq.clone(), l, dim * dim);
        push(
            format!("{p}.self_attn.q_proj.weight"),
            vec![dim, dim],
            permute_rotary(&q, heads, head_dim, dim),
        );
        let k = per_layer(wk.clone(), l, kv_dim * dim);
        push(
            format!("{p}.self_attn.k_proj.weight"),
            vec![kv_dim, dim],
            permute_rotary(&k, kv_heads, head_dim, dim),
        );
        push(
            format!("{p}.self_attn.v_proj.weight"),
            vec![kv_dim, dim],
            per_layer(wv.clone(), l, kv_dim * dim),
        );
        push(
            format!("{p}.self_attn.o_proj.weight"),
            vec![dim, dim],
            per_layer(wo.clone(), l, dim * dim),
        );
        push(
            format!("{p}.post_attention_layernorm.weight"),
            vec![dim],
            per_layer(rms_ffn.clone(), l, dim),
        );
        push(
            format!("{p}.mlp.gate_proj.weight"),
            vec![hidden, dim],
            per_layer(w1.clone(), l, hidden * dim),
        );
        push(
            format!("{p}.mlp.down_proj.weight"),
            vec![dim, hidden],
            per_layer(w2.clone(), l, dim * hidden),
        );
        push(
            format!("{p}.mlp.up_proj.weight"),
            vec![hidden, dim],
            per_layer(w3.clone(), l, hidden * dim),
        );
    }
    push("model.norm.weight".into(), vec![dim], rms_final);
    if let Some(classifier) = classifier {
        push("lm_head.weight".into(), vec![vocab, dim], classifier);
    }

    let config = DecoderConfig::llama(vocab, dim, hidden, layers, heads, kv_heads, seq_len, shared);
    let ckpt = Checkpoint::from_bytes(path, serialize(path, tensors, None)?)?.with_dtype(dtype);
    Decoder::from_checkpoint(config, &ckpt, device)
}

/// The seven header fields, checked against each other and against the file's length.
struct Header {
    dim: usize,
    hidden: usize,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    vocab: usize,
    seq_len: usize,
    /// The classifier is the token embedding (a positive vocab_size in the file).
    shared: bool,
}

impl Header {
    /// Parses the header at the start of `bytes` (at least its 28 bytes) of a `file_len`-byte
    /// file; errors name `path`.
    fn parse(bytes: &[u8], file_len: usize, path: &Path) -> Result<Self> {
        let bad = |message: String| Error::BadFile {
            path: path.to_path_buf(),
            message,
        };
        if bytes.len() < 28 {
            return Err(bad("shorter than the 28-byte llama2.c header".into()));
        }
        let header: Vec<i32> = bytes[..28]
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let [dim, hidden, layers, heads, kv_heads, vocab, seq_len] = header[..] else {
            unreachable!("seven header fields")
        };
        let shared = vocab > 0;
        let as_size = |v: i32, what: &str| -> Result<usize> {
            usize::try_from(v.unsigned_abs())
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| bad(format!("header field {what} = {v} is not a positive size")))
        };
        let (dim, hidden, layers, heads, kv_heads, vocab, seq_len) = (
            as_size(dim, "dim")?,
            as_size(hidden, "hidden_dim")?,
            as_size(layers, "n_layers")?,
            as_size(heads, "n_heads")?,
            as_size(kv_heads, "n_kv_heads")?,
            as_size(vocab, "vocab_size")?,
            as_size(seq_len, "seq_len")?,
        );
        if dim % heads != 0 || heads % kv_heads != 0 || (dim / heads) % 2 != 0 {
            return Err(bad(format!(
                "inconsistent heads: dim {dim}, n_heads {heads}, n_kv_heads {kv_heads}"
            )));
        }
        let head_dim = dim / heads;
        let kv_dim = kv_heads * head_dim;

        // Every size the header implies, checked before any is used: a crafted header can make
        // `layers·dim·dim` overflow, or ask for more floats than the file holds.
        let float_count = (|| {
            let per_layer = [
                dim,                                      // rms_att
                dim.checked_mul(dim)?,                    // wq
                kv_dim.checked_mul(dim)?.checked_mul(2)?, // wk, wv
                dim.checked_mul(dim)?,                    // wo
                dim,                                      // rms_ffn
                hidden.checked_mul(dim)?.checked_mul(3)?, // w1, w2, w3
            ];
            let layer = per_layer
                .iter()
                .try_fold(0usize, |a, &n| a.checked_add(n))?;
            let embeddings = vocab
                .checked_mul(dim)?
                .checked_mul(if shared { 1 } else { 2 })?;
            layers
                .checked_mul(layer)?
                .checked_add(embeddings)?
                .checked_add(dim)? // rms_final
                .checked_add(seq_len.checked_mul(head_dim)?) // freq_cis
        })();
        let available = (file_len - 28) / 4;
        match float_count {
            None => {
                return Err(bad(format!(
                    "header sizes overflow (dim {dim}, hidden_dim {hidden}, n_layers {layers}, \
                     vocab_size {vocab}, seq_len {seq_len}): is the header corrupt?"
                )));
            }
            Some(n) if n > available => {
                return Err(bad(format!(
                    "truncated: the header describes {n} floats, the file holds {available}"
                )));
            }
            Some(_) => {}
        }
        Ok(Self {
            dim,
            hidden,
            layers,
            heads,
            kv_heads,
            vocab,
            seq_len,
            shared,
        })
    }
}

/// Whether `path` is a llama2.c checkpoint: a header whose sizes are consistent and fit in the
/// file (a llama2.c tokenizer `.bin`, such as `tok512.bin`, is not).
pub fn is_checkpoint(path: &Path) -> bool {
    use std::io::Read;
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let Ok(len) = file.metadata().map(|m| m.len()) else {
        return false;
    };
    let mut header = [0u8; 28];
    file.read_exact(&mut header).is_ok()
        && usize::try_from(len).is_ok_and(|len| Header::parse(&header, len, path).is_ok())
}

/// Rows of a q/k weight from adjacent-pair to rotate-half order, per head:
/// new row `j·(d/2) + i` = old row `2i + j`.
fn permute_rotary(weight: &[f32], heads: usize, head_dim: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; weight.len()];
    let half = head_dim / 2;
    for h in 0..heads {
        for i in 0..half {
            for j in 0..2 {
                let old = h * head_dim + 2 * i + j;
                let new = h * head_dim + j * half + i;
                out[new * cols..(new + 1) * cols]
                    .copy_from_slice(&weight[old * cols..(old + 1) * cols]);
            }
        }
    }
    out
}
