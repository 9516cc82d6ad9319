//! RWKV6 ("Finch"), as BlinkDL's `rwkv` package computes it (the implementation the SORSA
//! reference evaluates its RWKV6 runs with), under the HF names of the RWKV/v6-Finch-*-HF
//! checkpoints (`rwkv.blocks.{i}.attention.*`, `feed_forward.*`, `pre_ln` on block 0).
//!
//! Per block: LayerNorm; token shift (`x_{t-1} - x_t`, the previous token's normalised input
//! carried in the state between calls); the data-dependent lerp (`time_maa_*` plus a rank-32
//! correction through `time_maa_w1/w2`); receptance, key, value and a SiLU gate; the
//! data-dependent decay `w = exp(-exp(time_decay + tanh(x_w W1) W2))`; the WKV recurrence per
//! head ([`super::wkv`]) with the bonus `time_faaaa`; GroupNorm over heads (`ln_x`, eps
//! `1e-5 · head_size_divisor²`); then the channel mix `σ(receptance(x_r)) ⊙ value(relu(key(x_k))²)`.
//!
//! Padding (mask 0) is kept out of the recurrence: a padded position's normalised input is 0
//! (so the next token's shift sees an empty past), its key 0 and its decay 1 (the state passes
//! it unchanged). Left-padded prompts therefore start from the empty state exactly, and
//! right-padded training rows never let padding reach a real token.
//!
//! `rescale_every` in config.json is an fp16 inference trick of HF's port (halving the residual
//! stream every few layers); BlinkDL's package does not apply it in fp32/bf16, nor do we.

use std::path::Path;

use burn::module::{Module, Param};
use burn::nn::Embedding;
use burn::tensor::activation::{relu, sigmoid, silu};
use burn::tensor::{FloatDType, Int, Tensor, backend::Backend, module::embedding};
use serde::Deserialize;

use super::config::{GenerationConfig, HfConfig, TokenIds};
use super::inject::adapted_layers;
use super::linear::{PeftLinear, frozen};
use super::precision::Precision;
use super::wkv::{WkvInputs, to_f32, wkv6};
use super::{LoadReport, PeftModel};
use crate::adapter::{AdaptedLinear, HasAdapters, SharedFactors};
use crate::io::checkpoint::{Checkpoint, OutTensor};
use crate::{Error, Result};

/// The data-dependent lerp's five targets, in `time_maa_w2`'s order.
const MIX_TARGETS: [&str; 5] = ["w", "k", "v", "r", "g"];

/// Everything the model needs from `config.json` and the checkpoint's shapes.
#[derive(Debug, Clone)]
pub struct Rwkv6Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    /// Width of the time mix (`heads × head_size`).
    pub attention_hidden_size: usize,
    pub head_size: usize,
    pub head_size_divisor: f64,
    /// Width of the channel mix's key.
    pub intermediate_size: usize,
    pub layer_norm_epsilon: f64,
    /// Rank of the lerp's correction (`time_maa_w1` is `[hidden, 5 · mix_rank]`).
    pub mix_rank: usize,
    /// Rank of the decay's correction (`time_decay_w1` is `[hidden, decay_rank]`).
    pub decay_rank: usize,
    pub eos_token_ids: Vec<u32>,
    pub pad_token_id: Option<u32>,
}

#[derive(Deserialize)]
struct HfRwkv6Config {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    attention_hidden_size: Option<usize>,
    #[serde(default = "default_head_size")]
    head_size: usize,
    #[serde(default = "default_head_size_divisor")]
    head_size_divisor: f64,
    intermediate_size: Option<usize>,
    #[serde(default = "default_layer_norm_epsilon")]
    layer_norm_epsilon: f64,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default)]
    eos_token_id: TokenIds,
    #[serde(default)]
    pad_token_id: TokenIds,
}

fn default_head_size() -> usize {
    64
}
fn default_head_size_divisor() -> f64 {
    8.0
}
fn default_layer_norm_epsilon() -> f64 {
    1e-5
}

impl Rwkv6Config {
    /// The released Finch models' lerp and decay ranks (32, 64), as [`Self::from_hf`] assumes
    /// until the checkpoint's shapes say otherwise.
    pub const MIX_RANK: usize = 32;
    pub const DECAY_RANK: usize = 64;

    /// A config of the Finch family's shape (heads of 64, channel mix 3.5 × hidden) for
    /// benchmarks and tests.
    pub fn finch(
        vocab_size: usize,
        hidden_size: usize,
        num_layers: usize,
        head_size: usize,
    ) -> Self {
        Self {
            vocab_size,
            hidden_size,
            num_layers,
            attention_hidden_size: hidden_size,
            head_size,
            head_size_divisor: 8.0,
            intermediate_size: (hidden_size * 7 / 2) / 32 * 32,
            layer_norm_epsilon: 1e-5,
            mix_rank: Self::MIX_RANK,
            decay_rank: Self::DECAY_RANK,
            eos_token_ids: vec![0],
            pad_token_id: Some(0),
        }
    }

    /// Reads config.json (and generation_config.json's token ids).
    pub fn from_hf(hf: &HfConfig, generation: &GenerationConfig) -> Result<Self> {
        let c: HfRwkv6Config = hf.parse()?;
        let bad = |field: &str, message: String| Error::BadFile {
            path: hf.path.clone(),
            message: format!("`{field}`: {message}"),
        };
        let attention = c.attention_hidden_size.unwrap_or(c.hidden_size);
        if c.head_size == 0 || !attention.is_multiple_of(c.head_size) {
            return Err(bad(
                "head_size",
                format!(
                    "{} does not divide attention_hidden_size {attention}",
                    c.head_size
                ),
            ));
        }
        if c.tie_word_embeddings {
            return Err(bad(
                "tie_word_embeddings",
                "RWKV6 checkpoints have their own head; tied embeddings are not supported".into(),
            ));
        }
        let eos = generation.eos_token_id.clone().or(c.eos_token_id).all();
        Ok(Self {
            vocab_size: c.vocab_size,
            hidden_size: c.hidden_size,
            num_layers: c.num_hidden_layers,
            attention_hidden_size: attention,
            head_size: c.head_size,
            head_size_divisor: c.head_size_divisor,
            intermediate_size: c
                .intermediate_size
                .unwrap_or((c.hidden_size * 7 / 2) / 32 * 32),
            layer_norm_epsilon: c.layer_norm_epsilon,
            mix_rank: Self::MIX_RANK,
            decay_rank: Self::DECAY_RANK,
            eos_token_ids: if eos.is_empty() { vec![0] } else { eos },
            pad_token_id: generation.pad_token_id.clone().or(c.pad_token_id).first(),
        })
    }

    pub fn heads(&self) -> usize {
        self.attention_hidden_size / self.head_size
    }

    /// GroupNorm's epsilon (`1e-5 · head_size_divisor²`, as the package computes it).
    pub fn group_norm_eps(&self) -> f64 {
        1e-5 * self.head_size_divisor * self.head_size_divisor
    }

    /// The parameters of one block.
    pub fn block_parameters(&self) -> usize {
        let (c, a, f) = (
            self.hidden_size,
            self.attention_hidden_size,
            self.intermediate_size,
        );
        let norms = 2 * 2 * c;
        let time_mix = 6 * c
            + c * 5 * self.mix_rank
            + 5 * self.mix_rank * c
            + a
            + c * self.decay_rank
            + self.decay_rank * a
            + a
            + 4 * a * c
            + c * a
            + 2 * a;
        let channel_mix = 2 * c + f * c + c * c + c * f;
        norms + time_mix + channel_mix
    }
}

/// LayerNorm with its statistics in f32 (the package runs bf16 models' norms in f32 too).
#[derive(Module, Debug)]
pub struct LayerNorm<B: Backend> {
    pub weight: Param<Tensor<B, 1>>,
    pub bias: Param<Tensor<B, 1>>,
    pub eps: f64,
}

impl<B: Backend> LayerNorm<B> {
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let dtype = FloatDType::from(x.dtype());
        let x = to_f32(x);
        let mean = x.clone().mean_dim(D - 1);
        let centred = x - mean;
        let variance = centred.clone().square().mean_dim(D - 1);
        let normed = centred / (variance + self.eps).sqrt();
        let affine = normed * to_f32(self.weight.val()).unsqueeze::<D>()
            + to_f32(self.bias.val()).unsqueeze::<D>();
        affine.cast(dtype)
    }
}

/// The time mix (`attention`): token shift, data-dependent lerp and decay, WKV, GroupNorm, gate.
#[derive(Module, Debug)]
pub struct TimeMix<B: Backend> {
    /// `time_maa_{x, w, k, v, r, g}`, each `[hidden]`.
    pub time_maa: Vec<Param<Tensor<B, 1>>>,
    /// `[hidden, 5 · mix_rank]`.
    pub time_maa_w1: Param<Tensor<B, 2>>,
    /// `[5, mix_rank, hidden]`.
    pub time_maa_w2: Param<Tensor<B, 3>>,
    /// `[attention]`.
    pub time_decay: Param<Tensor<B, 1>>,
    pub time_decay_w1: Param<Tensor<B, 2>>,
    pub time_decay_w2: Param<Tensor<B, 2>>,
    /// The bonus `u`, `[heads, head_size]`.
    pub time_faaaa: Param<Tensor<B, 2>>,
    pub receptance: PeftLinear<B>,
    pub key: PeftLinear<B>,
    pub value: PeftLinear<B>,
    pub gate: PeftLinear<B>,
    pub output: PeftLinear<B>,
    /// GroupNorm's affine parameters (`[attention]`, eps `1e-5 · divisor²`).
    pub ln_x: LayerNorm<B>,
    pub heads: usize,
    pub head_size: usize,
}

/// The channel mix (`feed_forward`).
#[derive(Module, Debug)]
pub struct ChannelMix<B: Backend> {
    pub time_maa_k: Param<Tensor<B, 1>>,
    pub time_maa_r: Param<Tensor<B, 1>>,
    pub key: PeftLinear<B>,
    pub receptance: PeftLinear<B>,
    pub value: PeftLinear<B>,
}

#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    /// Block 0's LayerNorm of the embeddings.
    pub pre_ln: Option<LayerNorm<B>>,
    pub ln1: LayerNorm<B>,
    pub ln2: LayerNorm<B>,
    pub attention: TimeMix<B>,
    pub feed_forward: ChannelMix<B>,
}

/// What one block carries from one call to the next.
#[derive(Clone, Debug)]
pub struct BlockState<B: Backend> {
    /// The last token's normalised input to the time mix, `[batch, hidden]`.
    pub attention_shift: Tensor<B, 2>,
    /// The WKV state, `[batch, heads, head_size, head_size]` (f32).
    pub wkv: Tensor<B, 4>,
    /// The last token's normalised input to the channel mix, `[batch, hidden]`.
    pub feed_forward_shift: Tensor<B, 2>,
}

/// The recurrent state of every block after a sequence: what generation continues from.
#[derive(Clone, Debug)]
pub struct Rwkv6State<B: Backend> {
    pub blocks: Vec<BlockState<B>>,
}

/// `x_{t-1} - x_t` along the sequence (the first step's `x_{-1}` from `previous`, zeros when
/// there is none), and the last step's `x` for the next call.
fn token_shift<B: Backend>(
    x: Tensor<B, 3>,
    previous: Option<Tensor<B, 2>>,
) -> (Tensor<B, 3>, Tensor<B, 2>) {
    let [b, t, c] = x.dims();
    let previous = match previous {
        Some(p) => p.cast(FloatDType::from(x.dtype())),
        None => Tensor::<B, 2>::zeros([b, c], &x.device()).cast(FloatDType::from(x.dtype())),
    }
    .unsqueeze_dim::<3>(1);
    let shifted = if t > 1 {
        Tensor::cat(vec![previous, x.clone().slice([0..b, 0..t - 1, 0..c])], 1)
    } else {
        previous
    };
    let last = x.clone().slice([0..b, t - 1..t, 0..c]).reshape([b, c]);
    (shifted - x, last)
}

/// `[hidden]` as `[1, 1, hidden]`.
fn row<B: Backend>(p: &Param<Tensor<B, 1>>) -> Tensor<B, 3> {
    p.val().unsqueeze::<3>()
}

impl<B: Backend> TimeMix<B> {
    /// `xx` the block's normalised (and masked) input, `sx` its token shift, `mask`
    /// `[batch, seq, 1]` in f32 (1 = real token).
    fn forward(
        &self,
        xx: Tensor<B, 3>,
        sx: Tensor<B, 3>,
        mask: Option<&Tensor<B, 3>>,
        state: Option<Tensor<B, 4>>,
        shared: &SharedFactors<B>,
    ) -> (Tensor<B, 3>, Tensor<B, 4>) {
        let [b, t, c] = xx.dims();
        let (h, n) = (self.heads, self.head_size);
        let a = h * n;
        let rank = self.time_maa_w2.dims()[1];
        // The lerp's five corrections at once: tanh(xxx W1) as [5, b·t, rank] times W2.
        let xxx = xx.clone() + sx.clone() * row(&self.time_maa[0]);
        let corrections = xxx
            .reshape([b * t, c])
            .matmul(self.time_maa_w1.val())
            .tanh()
            .reshape([b * t, 5, rank])
            .swap_dims(0, 1)
            .matmul(self.time_maa_w2.val()); // [5, b·t, c]
        let mixed = |i: usize| {
            let correction = corrections
                .clone()
                .slice([i..i + 1, 0..b * t, 0..c])
                .reshape([b, t, c]);
            xx.clone() + sx.clone() * (row(&self.time_maa[i + 1]) + correction)
        };
        let (wx, kx, vx, rx, gx) = (mixed(0), mixed(1), mixed(2), mixed(3), mixed(4));
        let r = self.receptance.forward(rx, shared);
        let k = self.key.forward(kx, shared);
        let v = self.value.forward(vx, shared);
        let g = silu(self.gate.forward(gx, shared));
        let w = wx
            .reshape([b * t, c])
            .matmul(self.time_decay_w1.val())
            .tanh()
            .matmul(self.time_decay_w2.val())
            .reshape([b, t, a])
            + row(&self.time_decay);
        let mut lw = to_f32(w).exp().neg();
        let mut k = to_f32(k);
        if let Some(mask) = mask {
            k = k * mask.clone();
            lw = lw * mask.clone();
        }
        let heads = |x: Tensor<B, 3>| to_f32(x).reshape([b, t, h, n]).swap_dims(1, 2);
        let (y, state) = wkv6(
            WkvInputs {
                r: heads(r),
                k: heads(k),
                v: heads(v),
                lw: heads(lw),
                u: to_f32(self.time_faaaa.val()),
            },
            state,
        );
        // GroupNorm: one group per head.
        let y = y.swap_dims(1, 2); // [b, t, h, n]
        let mean = y.clone().mean_dim(3);
        let centred = y - mean;
        let variance = centred.clone().square().mean_dim(3);
        let normed = (centred / (variance + self.ln_x.eps).sqrt()).reshape([b, t, a]);
        let normed = normed * to_f32(self.ln_x.weight.val()).unsqueeze::<3>()
            + to_f32(self.ln_x.bias.val()).unsqueeze::<3>();
        let dtype = FloatDType::from(g.dtype());
        (self.output.forward(normed.cast(dtype) * g, shared), state)
    }
}

impl<B: Backend> ChannelMix<B> {
    fn forward(
        &self,
        xx: Tensor<B, 3>,
        sx: Tensor<B, 3>,
        shared: &SharedFactors<B>,
    ) -> Tensor<B, 3> {
        let kx = xx.clone() + sx.clone() * row(&self.time_maa_k);
        let rx = xx + sx * row(&self.time_maa_r);
        let r = sigmoid(self.receptance.forward(rx, shared));
        let k = relu(self.key.forward(kx, shared)).square();
        r * self.value.forward(k, shared)
    }
}

impl<B: Backend> Block<B> {
    /// The block on `x` (`[batch, seq, hidden]`) continuing from `state`; `mask` is
    /// `[batch, seq, 1]` in f32 (1 = real token).
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        mask: Option<&Tensor<B, 3>>,
        state: Option<BlockState<B>>,
        shared: &SharedFactors<B>,
    ) -> (Tensor<B, 3>, BlockState<B>) {
        let x = match &self.pre_ln {
            Some(norm) => norm.forward(x),
            None => x,
        };
        let masked = |xx: Tensor<B, 3>| match mask {
            Some(mask) => {
                let dtype = FloatDType::from(xx.dtype());
                xx * mask.clone().cast(dtype)
            }
            None => xx,
        };
        let (att_shift, wkv, ffn_shift) = match state {
            Some(s) => (
                Some(s.attention_shift),
                Some(s.wkv),
                Some(s.feed_forward_shift),
            ),
            None => (None, None, None),
        };
        let xx = masked(self.ln1.forward(x.clone()));
        let (sx, attention_shift) = token_shift(xx.clone(), att_shift);
        let (y, wkv) = self.attention.forward(xx, sx, mask, wkv, shared);
        let x = x + y;
        let xx = masked(self.ln2.forward(x.clone()));
        let (sx, feed_forward_shift) = token_shift(xx.clone(), ffn_shift);
        let x = x + self.feed_forward.forward(xx, sx, shared);
        (
            x,
            BlockState {
                attention_shift,
                wkv,
                feed_forward_shift,
            },
        )
    }
}

/// An RWKV6 language model (`Rwkv6ForCausalLM`).
#[derive(Module, Debug)]
pub struct Rwkv6<B: Backend> {
    pub embeddings: Embedding<B>,
    pub blocks: Vec<Block<B>>,
    pub ln_out: LayerNorm<B>,
    pub head: PeftLinear<B>,
    pub shared: SharedFactors<B>,
    #[module(skip)]
    pub config: Rwkv6Config,
}

impl<B: Backend> Rwkv6<B> {
    /// Loads an HF RWKV6 folder with its frozen base in `precision`.
    pub fn load_as(
        dir: &Path,
        precision: Precision,
        device: &B::Device,
    ) -> Result<(Self, LoadReport)> {
        let hf = HfConfig::read(dir)?;
        let config = Rwkv6Config::from_hf(&hf, &GenerationConfig::read(dir)?)?;
        let ckpt = super::precision::open_weights::<B>(dir, &hf, precision, device)?;
        let model = Self::from_checkpoint(config, &ckpt, device)?;
        Ok((model, LoadReport::of(&ckpt)))
    }

    /// Builds the model from HF-named tensors (the ranks of the lerp and decay corrections
    /// from their shapes).
    pub fn from_checkpoint(
        mut config: Rwkv6Config,
        ckpt: &Checkpoint,
        device: &B::Device,
    ) -> Result<Self> {
        let width = |name: &str, index: usize| -> Result<usize> {
            let shape = ckpt.shape(name).ok_or_else(|| Error::BadFile {
                path: ckpt.path_of(name),
                message: format!("missing tensor `{name}`"),
            })?;
            shape.get(index).copied().ok_or_else(|| Error::BadFile {
                path: ckpt.path_of(name),
                message: format!("`{name}` has shape {shape:?}"),
            })
        };
        let maa_width = width("rwkv.blocks.0.attention.time_maa_w1", 1)?;
        if maa_width % 5 != 0 {
            return Err(Error::BadFile {
                path: ckpt.path_of("rwkv.blocks.0.attention.time_maa_w1"),
                message: format!("`time_maa_w1` has {maa_width} columns, not 5 × a rank"),
            });
        }
        config.mix_rank = maa_width / 5;
        config.decay_rank = width("rwkv.blocks.0.attention.time_decay_w1", 1)?;
        let c = &config;
        let (hidden, a, f, v) = (
            c.hidden_size,
            c.attention_hidden_size,
            c.intermediate_size,
            c.vocab_size,
        );
        let (heads, n) = (c.heads(), c.head_size);
        let vector = |name: String, len: usize| -> Result<Param<Tensor<B, 1>>> {
            Ok(frozen(ckpt.tensor::<B, 1>(&name, [len], device)?))
        };
        // `time_*` vectors are stored `[1, 1, len]`.
        let lerp = |name: String, len: usize| -> Result<Param<Tensor<B, 1>>> {
            Ok(frozen(
                ckpt.tensor::<B, 3>(&name, [1, 1, len], device)?
                    .reshape([len]),
            ))
        };
        let norm = |name: &str, len: usize, eps: f64| -> Result<LayerNorm<B>> {
            Ok(LayerNorm {
                weight: vector(format!("{name}.weight"), len)?,
                bias: vector(format!("{name}.bias"), len)?,
                eps,
            })
        };
        let linear =
            |name: String, i: usize, o: usize| PeftLinear::load(ckpt, &name, i, o, false, device);
        let eps = c.layer_norm_epsilon;
        let mut blocks = Vec::with_capacity(c.num_layers);
        for l in 0..c.num_layers {
            let p = format!("rwkv.blocks.{l}");
            let at = format!("{p}.attention");
            let ff = format!("{p}.feed_forward");
            let mut time_maa = vec![lerp(format!("{at}.time_maa_x"), hidden)?];
            for target in MIX_TARGETS {
                time_maa.push(lerp(format!("{at}.time_maa_{target}"), hidden)?);
            }
            blocks.push(Block {
                pre_ln: if l == 0 {
                    Some(norm(&format!("{p}.pre_ln"), hidden, eps)?)
                } else {
                    None
                },
                ln1: norm(&format!("{p}.ln1"), hidden, eps)?,
                ln2: norm(&format!("{p}.ln2"), hidden, eps)?,
                attention: TimeMix {
                    time_maa,
                    time_maa_w1: frozen(ckpt.tensor::<B, 2>(
                        &format!("{at}.time_maa_w1"),
                        [hidden, 5 * c.mix_rank],
                        device,
                    )?),
                    time_maa_w2: frozen(ckpt.tensor::<B, 3>(
                        &format!("{at}.time_maa_w2"),
                        [5, c.mix_rank, hidden],
                        device,
                    )?),
                    time_decay: lerp(format!("{at}.time_decay"), a)?,
                    time_decay_w1: frozen(ckpt.tensor::<B, 2>(
                        &format!("{at}.time_decay_w1"),
                        [hidden, c.decay_rank],
                        device,
                    )?),
                    time_decay_w2: frozen(ckpt.tensor::<B, 2>(
                        &format!("{at}.time_decay_w2"),
                        [c.decay_rank, a],
                        device,
                    )?),
                    time_faaaa: frozen(ckpt.tensor::<B, 2>(
                        &format!("{at}.time_faaaa"),
                        [heads, n],
                        device,
                    )?),
                    receptance: linear(format!("{at}.receptance"), hidden, a)?,
                    key: linear(format!("{at}.key"), hidden, a)?,
                    value: linear(format!("{at}.value"), hidden, a)?,
                    gate: linear(format!("{at}.gate"), hidden, a)?,
                    output: linear(format!("{at}.output"), a, hidden)?,
                    ln_x: norm(&format!("{at}.ln_x"), a, c.group_norm_eps())?,
                    heads,
                    head_size: n,
                },
                feed_forward: ChannelMix {
                    time_maa_k: lerp(format!("{ff}.time_maa_k"), hidden)?,
                    time_maa_r: lerp(format!("{ff}.time_maa_r"), hidden)?,
                    key: linear(format!("{ff}.key"), hidden, f)?,
                    receptance: linear(format!("{ff}.receptance"), hidden, hidden)?,
                    value: linear(format!("{ff}.value"), f, hidden)?,
                },
            });
        }
        Ok(Self {
            embeddings: Embedding {
                weight: frozen(ckpt.tensor::<B, 2>(
                    "rwkv.embeddings.weight",
                    [v, hidden],
                    device,
                )?),
            },
            blocks,
            ln_out: norm("rwkv.ln_out", hidden, eps)?,
            head: linear("head".into(), hidden, v)?,
            shared: SharedFactors::default(),
            config,
        })
    }

    /// A model with random weights of the released models' scales (as the fixture's `make.py`
    /// draws them) for benchmarks and tests.
    pub fn random_as(
        config: Rwkv6Config,
        seed: u64,
        dtype: FloatDType,
        device: &B::Device,
    ) -> Result<Self> {
        let mut rng = crate::linalg::gaussian::rng(seed);
        let mut normal = |len: usize, scale: f32, offset: f32| -> Vec<f32> {
            let m = crate::linalg::gaussian::standard_normal(&mut rng, 1, len);
            (0..len).map(|j| offset + scale * m[(0, j)]).collect()
        };
        let c = &config;
        let (hidden, a, f, v) = (
            c.hidden_size,
            c.attention_hidden_size,
            c.intermediate_size,
            c.vocab_size,
        );
        let mut tensors = Vec::new();
        let mut push = |name: String, shape: Vec<usize>, values: Vec<f32>| {
            tensors.push(OutTensor::f32_as(name, shape, &values, dtype));
        };
        push(
            "rwkv.embeddings.weight".into(),
            vec![v, hidden],
            normal(v * hidden, 0.5, 0.0),
        );
        let mut norms = vec![
            "rwkv.ln_out".to_string(),
            "rwkv.blocks.0.pre_ln".to_string(),
        ];
        for l in 0..c.num_layers {
            let p = format!("rwkv.blocks.{l}");
            let (at, ff) = (format!("{p}.attention"), format!("{p}.feed_forward"));
            norms.push(format!("{p}.ln1"));
            norms.push(format!("{p}.ln2"));
            let linear = |o: usize, i: usize| (vec![o, i], 1.0 / (i as f32).sqrt());
            for (name, (shape, scale)) in [
                (format!("{at}.receptance"), linear(a, hidden)),
                (format!("{at}.key"), linear(a, hidden)),
                (format!("{at}.value"), linear(a, hidden)),
                (format!("{at}.gate"), linear(a, hidden)),
                (format!("{at}.output"), linear(hidden, a)),
                (format!("{ff}.key"), linear(f, hidden)),
                (format!("{ff}.receptance"), linear(hidden, hidden)),
                (format!("{ff}.value"), linear(hidden, f)),
            ] {
                let len = shape.iter().product();
                push(format!("{name}.weight"), shape, normal(len, scale, 0.0));
            }
            for name in ["x", "w", "k", "v", "r", "g"] {
                push(
                    format!("{at}.time_maa_{name}"),
                    vec![1, 1, hidden],
                    normal(hidden, 0.05, 0.5),
                );
            }
            for name in ["k", "r"] {
                push(
                    format!("{ff}.time_maa_{name}"),
                    vec![1, 1, hidden],
                    normal(hidden, 0.05, 0.5),
                );
            }
            let r5 = 5 * c.mix_rank;
            push(
                format!("{at}.time_maa_w1"),
                vec![hidden, r5],
                normal(hidden * r5, 0.1, 0.0),
            );
            push(
                format!("{at}.time_maa_w2"),
                vec![5, c.mix_rank, hidden],
                normal(r5 * hidden, 0.1, 0.0),
            );
            let decay: Vec<f32> = (0..a)
                .map(|i| -6.0 + 5.0 * (i as f32 / (a.max(2) - 1) as f32).powf(0.7))
                .collect();
            push(format!("{at}.time_decay"), vec![1, 1, a], decay);
            push(
                format!("{at}.time_decay_w1"),
                vec![hidden, c.decay_rank],
                normal(hidden * c.decay_rank, 0.1, 0.0),
            );
            push(
                format!("{at}.time_decay_w2"),
                vec![c.decay_rank, a],
                normal(c.decay_rank * a, 0.1, 0.0),
            );
            push(
                format!("{at}.time_faaaa"),
                vec![c.heads(), c.head_size],
                normal(a, 0.1, 0.5),
            );
            norms.push(format!("{at}.ln_x"));
        }
        push(
            "head.weight".into(),
            vec![v, hidden],
            normal(v * hidden, 1.0 / (hidden as f32).sqrt(), 0.0),
        );
        for name in norms {
            let len = if name.ends_with("ln_x") { a } else { hidden };
            push(format!("{name}.weight"), vec![len], vec![1.0; len]);
            push(format!("{name}.bias"), vec![len], vec![0.0; len]);
        }
        let origin = Path::new("<random>");
        let bytes = crate::io::checkpoint::serialize(origin, tensors, None)?;
        let ckpt = Checkpoint::from_bytes(origin, bytes)?.with_dtype(dtype);
        Self::from_checkpoint(config, &ckpt, device)
    }

    /// Logits `[batch, seq, vocab]` and the state after the last step, continuing from `state`
    /// (the empty state when `None`). `attention_mask` (`[batch, seq]`, 1 = real token) keeps
    /// padding out of the recurrence.
    pub fn forward_with_state(
        &self,
        input_ids: Tensor<B, 2, Int>,
        attention_mask: Option<Tensor<B, 2, Int>>,
        state: Option<Rwkv6State<B>>,
    ) -> (Tensor<B, 3>, Rwkv6State<B>) {
        let mut x = embedding(self.embeddings.weight.val(), input_ids);
        let mask = attention_mask.map(|m| m.float().cast(FloatDType::F32).unsqueeze_dim::<3>(2));
        let mut previous = state.map(|s| s.blocks.into_iter());
        let mut blocks = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            let prev = previous.as_mut().and_then(Iterator::next);
            let (y, state) = block.forward(x, mask.as_ref(), prev, &self.shared);
            x = y;
            blocks.push(state);
        }
        let logits = self.head.forward(self.ln_out.forward(x), &self.shared);
        (logits, Rwkv6State { blocks })
    }

    /// Logits `[batch, seq, vocab]` of a (right-padded) batch from the empty state.
    pub fn forward(
        &self,
        input_ids: Tensor<B, 2, Int>,
        attention_mask: Option<Tensor<B, 2, Int>>,
    ) -> Tensor<B, 3> {
        self.forward_with_state(input_ids, attention_mask, None).0
    }

    /// Every tensor under its HF name and shape, f32 values (for writing a merged model).
    /// Errors when an adapter is still attached: merge first.
    pub fn hf_tensors(&self) -> Result<Vec<OutTensor>> {
        use crate::linalg::layout::burn_to_hf;
        use crate::linalg::tensor_to_vec;
        fn out<B: Backend, const D: usize>(
            name: String,
            t: Tensor<B, D>,
            shape: Vec<usize>,
        ) -> OutTensor {
            OutTensor::F32(name, shape, tensor_to_vec(to_f32(t)))
        }
        let mut tensors = vec![out(
            "rwkv.embeddings.weight".into(),
            self.embeddings.weight.val(),
            self.embeddings.weight.dims().to_vec(),
        )];
        let norm = |tensors: &mut Vec<OutTensor>, name: String, n: &LayerNorm<B>| {
            let len = n.weight.dims()[0];
            tensors.push(out(format!("{name}.weight"), n.weight.val(), vec![len]));
            tensors.push(out(format!("{name}.bias"), n.bias.val(), vec![len]));
        };
        let lerp = |name: String, p: &Param<Tensor<B, 1>>| {
            let len = p.dims()[0];
            out(name, p.val(), vec![1, 1, len])
        };
        for (l, block) in self.blocks.iter().enumerate() {
            let p = format!("rwkv.blocks.{l}");
            let (at, ff) = (&block.attention, &block.feed_forward);
            if let Some(pre) = &block.pre_ln {
                norm(&mut tensors, format!("{p}.pre_ln"), pre);
            }
            norm(&mut tensors, format!("{p}.ln1"), &block.ln1);
            norm(&mut tensors, format!("{p}.ln2"), &block.ln2);
            norm(&mut tensors, format!("{p}.attention.ln_x"), &at.ln_x);
            for (name, param) in ["x", "w", "k", "v", "r", "g"].iter().zip(&at.time_maa) {
                tensors.push(lerp(format!("{p}.attention.time_maa_{name}"), param));
            }
            tensors.push(lerp(format!("{p}.attention.time_decay"), &at.time_decay));
            for (name, t) in [
                ("time_maa_w1", at.time_maa_w1.val()),
                ("time_decay_w1", at.time_decay_w1.val()),
                ("time_decay_w2", at.time_decay_w2.val()),
                ("time_faaaa", at.time_faaaa.val()),
            ] {
                let shape = t.dims().to_vec();
                tensors.push(out(format!("{p}.attention.{name}"), t, shape));
            }
            let w2 = at.time_maa_w2.val();
            let shape = w2.dims().to_vec();
            tensors.push(out(format!("{p}.attention.time_maa_w2"), w2, shape));
            tensors.push(lerp(format!("{p}.feed_forward.time_maa_k"), &ff.time_maa_k));
            tensors.push(lerp(format!("{p}.feed_forward.time_maa_r"), &ff.time_maa_r));
        }
        norm(&mut tensors, "rwkv.ln_out".into(), &self.ln_out);
        for (name, slot) in self.linears() {
            let PeftLinear::Plain(linear) = slot else {
                return Err(Error::invalid(
                    "model",
                    name,
                    "still carries an adapter; merge it first",
                ));
            };
            let weight = burn_to_hf(linear.weight.val());
            let shape = weight.dims().to_vec();
            tensors.push(out(format!("{name}.weight"), weight, shape));
        }
        Ok(tensors)
    }
}

impl<B: Backend> PeftModel<B> for Rwkv6<B> {
    fn linears(&self) -> Vec<(String, &PeftLinear<B>)> {
        let mut out = Vec::new();
        for (l, block) in self.blocks.iter().enumerate() {
            let (a, f) = (&block.attention, &block.feed_forward);
            for (name, slot) in [
                ("attention.receptance", &a.receptance),
                ("attention.key", &a.key),
                ("attention.value", &a.value),
                ("attention.gate", &a.gate),
                ("attention.output", &a.output),
                ("feed_forward.key", &f.key),
                ("feed_forward.receptance", &f.receptance),
                ("feed_forward.value", &f.value),
            ] {
                out.push((format!("rwkv.blocks.{l}.{name}"), slot));
            }
        }
        out.push(("head".into(), &self.head));
        out
    }

    fn linears_mut(&mut self) -> Vec<(String, &mut PeftLinear<B>)> {
        let mut out = Vec::new();
        for (l, block) in self.blocks.iter_mut().enumerate() {
            let (a, f) = (&mut block.attention, &mut block.feed_forward);
            for (name, slot) in [
                ("attention.receptance", &mut a.receptance),
                ("attention.key", &mut a.key),
                ("attention.value", &mut a.value),
                ("attention.gate", &mut a.gate),
                ("attention.output", &mut a.output),
                ("feed_forward.key", &mut f.key),
                ("feed_forward.receptance", &mut f.receptance),
                ("feed_forward.value", &mut f.value),
            ] {
                out.push((format!("rwkv.blocks.{l}.{name}"), slot));
            }
        }
        out.push(("head".into(), &mut self.head));
        out
    }

    fn shared(&self) -> &SharedFactors<B> {
        &self.shared
    }

    fn shared_mut(&mut self) -> &mut SharedFactors<B> {
        &mut self.shared
    }

    fn is_head(&self, name: &str) -> bool {
        name == "head"
    }
}

impl<B: Backend> HasAdapters<B> for Rwkv6<B> {
    fn adapted_layers(&self) -> Vec<&AdaptedLinear<B>> {
        adapted_layers(self.linears())
    }
}
