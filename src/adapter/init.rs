//! Building adapters from a config: the methods' initialisations (METHODS.md) and the exact
//! residual split.
//!
//! All random draws and SVDs run on the host (seeded, backend-independent); the residual
//! `W_res = W − ΔW₀` is computed on the device from the adapter itself, so
//! `W_res + ΔW₀ = W` holds to rounding whichever SVD engine produced the factors.

use burn::module::{Module, Param};
use burn::nn::{DropoutConfig, Linear};
use burn::tensor::{Tensor, backend::Backend};
use faer::Mat;

use super::config::{AdapterConfig, Init, Method};
use super::linear::{AdaptedLinear, Adapter, SharedFactors, add_in_f32, param};
use super::lotr::{LotrCore, LotrFactors};
use super::low_rank::LowRank;
use super::sorsa::Sorsa;
use crate::linalg::{self, TruncatedSvd, gaussian, mat_to_tensor, tensor_to_mat, truncated_svd};
use crate::{Error, Result};

/// Initialises adapters for successive layers from one config. Each layer draws from its own
/// seed, derived from `config.seed` and the layer's position in the adaptation order, so layers
/// of equal shape do not get identical random factors and a run is reproducible.
pub struct AdapterInit {
    config: AdapterConfig,
    layers_done: u64,
}

impl AdapterInit {
    pub fn new(config: AdapterConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            config,
            layers_done: 0,
        })
    }

    pub fn config(&self) -> &AdapterConfig {
        &self.config
    }

    fn next_seed(&mut self) -> u64 {
        let seed = splitmix64(self.config.seed ^ splitmix64(self.layers_done));
        self.layers_done += 1;
        seed
    }

    /// Adapts one layer. LoTR adapts groups: use [`adapt_group`](Self::adapt_group).
    pub fn adapt<B: Backend>(&mut self, base: Linear<B>) -> Result<AdaptedLinear<B>> {
        let cfg = &self.config;
        if cfg.method == Method::Lotr {
            return Err(Error::invalid(
                "adapter.method",
                "lotr",
                "LoTR shares factors across a group of layers; adapt them with adapt_group",
            ));
        }
        let [in_features, out_features] = base.weight.dims();
        cfg.validate_for_shape(out_features, in_features)?;
        let seed = self.next_seed();
        let cfg = &self.config;
        let device = base.weight.device();
        let scale = cfg.scale();
        let dropout = DropoutConfig::new(cfg.dropout).init();
        let rank = cfg.rank;
        let principal = |w: &Linear<B>| -> Result<TruncatedSvd> {
            let options = linalg::SvdOptions {
                seed,
                ..cfg.svd_options()
            };
            truncated_svd(tensor_to_mat(&w.weight.val()).as_ref(), rank, &options)
        };

        let (adapter, split) = match cfg.method {
            Method::Lora => {
                let a = kaiming_uniform(in_features, rank, seed);
                let low_rank = LowRank {
                    a: trainable(mat_to_tensor(a.as_ref(), &device)),
                    b: trainable(Tensor::zeros([rank, out_features], &device)),
                    scale,
                    dropout,
                };
                (Adapter::Lora(low_rank), false)
            }
            Method::Pissa => {
                let svd = principal(&base)?;
                // A = diag(√(σ/scale)) V_rᵀ, B = U_r diag(√(σ/scale)) in HF layout.
                let root: Vec<f32> = svd.s.iter().map(|&s| (s / scale as f32).sqrt()).collect();
                let a = scale_columns(&svd.u, &root);
                let b = scale_columns(&svd.v, &root).transpose().to_owned();
                let low_rank = LowRank {
                    a: trainable(mat_to_tensor(a.as_ref(), &device)),
                    b: trainable(mat_to_tensor(b.as_ref(), &device)),
                    scale,
                    dropout,
                };
                (Adapter::Pissa(low_rank), true)
            }
            Method::Sorsa => {
                let svd = principal(&base)?;
                let sorsa = Sorsa {
                    a: trainable(mat_to_tensor(svd.u.as_ref(), &device)),
                    s: trainable(linalg::vec_to_tensor(svd.s.clone(), &device)),
                    b: trainable(mat_to_tensor(svd.v.transpose(), &device)),
                    scale,
                    dropout,
                };
                (Adapter::Sorsa(sorsa), true)
            }
            Method::LoraFa => {
                let init = cfg.resolved_init().expect("lora_fa has a default init");
                let (a, b, split) = match init {
                    Init::Kaiming => {
                        let a = linalg::orthonormalize_columns(
                            kaiming_uniform(in_features, rank, seed).as_ref(),
                        );
                        (a, Mat::zeros(rank, out_features), false)
                    }
                    Init::Svd => {
                        let svd = principal(&base)?;
                        (svd.u, Mat::zeros(rank, out_features), false)
                    }
                    Init::SvdSplit => {
                        let svd = principal(&base)?;
                        let sigma: Vec<f32> = svd.s.iter().map(|&s| s / scale as f32).collect();
                        let b = scale_columns(&svd.v, &sigma).transpose().to_owned();
                        (svd.u, b, true)
                    }
                    Init::Normal => unreachable!("validated: lora_fa has no normal init"),
                };
                let low_rank = LowRank {
                    a: frozen(mat_to_tensor(a.as_ref(), &device)),
                    b: trainable(mat_to_tensor(b.as_ref(), &device)),
                    scale,
                    dropout,
                };
                (Adapter::LoraFa(low_rank), split)
            }
            Method::Lotr => unreachable!("handled above"),
        };
        let shared = SharedFactors::default();
        Ok(finish(base, adapter, split, &shared))
    }

    /// Adapts a group of layers. For LoTR the group shares one pair of factors, appended to
    /// `shared`; for every other method each layer is adapted on its own.
    pub fn adapt_group<B: Backend>(
        &mut self,
        bases: Vec<Linear<B>>,
        shared: &mut SharedFactors<B>,
    ) -> Result<Vec<AdaptedLinear<B>>> {
        if self.config.method != Method::Lotr {
            return bases.into_iter().map(|base| self.adapt(base)).collect();
        }
        let Some(first) = bases.first() else {
            return Ok(Vec::new());
        };
        let [in_features, out_features] = first.weight.dims();
        for (index, base) in bases.iter().enumerate() {
            let dims = base.weight.dims();
            if dims != [in_features, out_features] {
                // Report in the user's (HF) [out, in] convention.
                return Err(Error::Shape {
                    what: format!("LoTR group: layer {index} weight [out, in]"),
                    expected: vec![out_features, in_features],
                    found: vec![dims[1], dims[0]],
                });
            }
        }
        self.config.validate_for_shape(out_features, in_features)?;
        let seed = self.next_seed();
        let cfg = &self.config;
        let device = first.weight.device();
        let rank = cfg.rank;
        let scale = cfg.scale();

        let (r, l, cores, split) = match cfg.resolved_init().expect("lotr has a default init") {
            Init::Normal => {
                let mut rng = gaussian::rng(seed);
                let r = gaussian::standard_normal(&mut rng, in_features, rank);
                let l = gaussian::standard_normal(&mut rng, rank, out_features);
                let cores = vec![Mat::zeros(rank, rank); bases.len()];
                (r, l, cores, false)
            }
            Init::Svd => {
                let weights: Vec<Mat<f32>> = bases
                    .iter()
                    .map(|b| tensor_to_mat(&b.weight.val()))
                    .collect();
                let options = linalg::SvdOptions {
                    seed,
                    ..cfg.svd_options()
                };
                let (r, l_out) = tucker2_factors(&weights, rank, &options)?;
                // core_s = Rᵀ-map projection of W_s: (Rᵀ)ᵀ W_s (Lᵀ)ᵀ / scale in Burn layout.
                let cores = weights
                    .iter()
                    .map(|w| (r.transpose() * w * &l_out) * faer::Scale(1.0 / scale as f32))
                    .collect();
                (r, l_out.transpose().to_owned(), cores, true)
            }
            other => unreachable!("validated: lotr has no {other:?} init"),
        };

        let group = shared.lotr.len();
        shared.lotr.push(LotrFactors {
            r: trainable(mat_to_tensor(r.as_ref(), &device)),
            l: trainable(mat_to_tensor(l.as_ref(), &device)),
        });
        Ok(bases
            .into_iter()
            .zip(cores)
            .map(|(base, core)| {
                let adapter = Adapter::Lotr(LotrCore {
                    core: trainable(mat_to_tensor(core.as_ref(), &device)),
                    group,
                    scale,
                });
                finish(base, adapter, split, shared)
            })
            .collect())
    }
}

/// Freezes the base and, for splitting inits, replaces its weight by `W − ΔW₀`.
fn finish<B: Backend>(
    base: Linear<B>,
    adapter: Adapter<B>,
    split: bool,
    shared: &SharedFactors<B>,
) -> AdaptedLinear<B> {
    let base = if split {
        let weight = base.weight.val();
        let dtype = weight.dtype();
        let residual = add_in_f32(weight, adapter.delta_weight(shared).neg(), dtype);
        Linear {
            weight: param(residual, false),
            bias: base.bias,
        }
    } else {
        base
    };
    AdaptedLinear {
        base: base.no_grad(),
        adapter,
    }
}

/// Leading `rank` left singular vectors of the mode-in and mode-out unfoldings of the stacked
/// group (Tucker-2). Returns `Rᵀ: [in, r]` and `L: [out, r]`.
fn tucker2_factors(
    weights: &[Mat<f32>],
    rank: usize,
    options: &linalg::SvdOptions,
) -> Result<(Mat<f32>, Mat<f32>)> {
    let (in_features, out_features) = (weights[0].nrows(), weights[0].ncols());
    let n = weights.len();
    // Mode-in unfolding [in, N·out] and mode-out unfolding [out, N·in] (Burn-layout weights).
    let mode_in = Mat::from_fn(in_features, n * out_features, |i, j| {
        weights[j / out_features][(i, j % out_features)]
    });
    let mode_out = Mat::from_fn(out_features, n * in_features, |o, j| {
        weights[j / in_features][(j % in_features, o)]
    });
    let r = truncated_svd(mode_in.as_ref(), rank, options)?.u;
    let l = truncated_svd(mode_out.as_ref(), rank, options)?.u;
    Ok((r, l))
}

/// PyTorch's `kaiming_uniform_(a = √5)` for a `[r, in]` weight, drawn as the `[in, r]` map:
/// bound = gain·√(3 / fan_in) with gain = √(2 / (1 + 5)), i.e. `1/√in`.
fn kaiming_uniform(in_features: usize, rank: usize, seed: u64) -> Mat<f32> {
    let bound = 1.0 / (in_features as f32).sqrt();
    gaussian::uniform(&mut gaussian::rng(seed), in_features, rank, bound)
}

fn scale_columns(m: &Mat<f32>, factors: &[f32]) -> Mat<f32> {
    Mat::from_fn(m.nrows(), m.ncols(), |i, j| m[(i, j)] * factors[j])
}

fn trainable<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Param<Tensor<B, D>> {
    param(tensor, true)
}

fn frozen<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Param<Tensor<B, D>> {
    param(tensor, false)
}

/// SplitMix64 finaliser: decorrelates consecutive seeds.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}
