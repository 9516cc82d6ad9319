//! Shared helpers: the test backend, random layers and comparisons.

use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Tensor, TensorData};
use burn_peft::adapter::{AdapterConfig, Init, Method};
use burn_peft::linalg::{SvdMode, gaussian, layout};

/// The CPU backend of the enclosing module (`flex` or `ndarray`, see `tests/foundation.rs`).
pub type Inner = super::Inner;
pub type B = burn_peft::backend::Train<Inner>;

pub fn device() -> burn::tensor::Device<Inner> {
    Default::default()
}

/// A host matrix as an HF-layout tensor.
pub fn tensor_from_mat(m: &faer::Mat<f32>) -> Tensor<B, 2> {
    burn_peft::linalg::mat_to_tensor(m.as_ref(), &device())
}

/// A random HF-layout weight `[out, in]` with entries ~ N(0, 1/in).
pub fn random_weight(out_f: usize, in_f: usize, seed: u64) -> faer::Mat<f32> {
    let mut rng = gaussian::rng(seed);
    let g = gaussian::standard_normal(&mut rng, out_f, in_f);
    g * faer::Scale(1.0 / (in_f as f32).sqrt())
}

/// A `[out, in]` weight of rank `k`.
pub fn rank_deficient_weight(out_f: usize, in_f: usize, k: usize, seed: u64) -> faer::Mat<f32> {
    let mut rng = gaussian::rng(seed);
    let u = gaussian::standard_normal(&mut rng, out_f, k);
    let v = gaussian::standard_normal(&mut rng, k, in_f);
    (u * v) * faer::Scale(1.0 / (in_f as f32))
}

/// A linear layer from an HF-layout weight, with a random bias.
pub fn linear(weight: &faer::Mat<f32>, seed: u64) -> Linear<B> {
    let mut rng = gaussian::rng(seed ^ 0xB1A5);
    let bias = gaussian::standard_normal(&mut rng, 1, weight.nrows());
    let bias: Vec<f32> = (0..weight.nrows()).map(|j| bias[(0, j)]).collect();
    let len = bias.len();
    layout::linear_from_hf(
        tensor_from_mat(weight),
        Some(Tensor::from_data(TensorData::new(bias, [len]), &device())),
    )
}

/// The three weights the issue names: [64, 48], [48, 64] and a rank-deficient [64, 48].
pub fn test_weights() -> Vec<(&'static str, faer::Mat<f32>)> {
    vec![
        ("[64, 48]", random_weight(64, 48, 1)),
        ("[48, 64]", random_weight(48, 64, 2)),
        ("rank-5 [64, 48]", rank_deficient_weight(64, 48, 5, 3)),
    ]
}

/// Random inputs `[batch, in]`.
pub fn inputs(batch: usize, in_f: usize, seed: u64) -> Tensor<B, 2> {
    let mut rng = gaussian::rng(seed);
    tensor_from_mat(&gaussian::standard_normal(&mut rng, batch, in_f))
}

/// Every method/init combination, with both SVD engines where an SVD runs.
pub fn all_configs(rank: usize) -> Vec<AdapterConfig> {
    let mut configs = vec![
        AdapterConfig::new(Method::Lora, rank),
        AdapterConfig::new(Method::LoraFa, rank).with_init(Init::Kaiming),
        AdapterConfig::new(Method::Lotr, rank).with_init(Init::Normal),
    ];
    for svd in [SvdMode::Exact, SvdMode::Randomized] {
        configs.push(AdapterConfig::new(Method::Pissa, rank).with_svd(svd));
        configs.push(AdapterConfig::new(Method::Sorsa, rank).with_svd(svd));
        configs.push(
            AdapterConfig::new(Method::LoraFa, rank)
                .with_init(Init::Svd)
                .with_svd(svd),
        );
        configs.push(
            AdapterConfig::new(Method::LoraFa, rank)
                .with_init(Init::SvdSplit)
                .with_svd(svd),
        );
        configs.push(
            AdapterConfig::new(Method::Lotr, rank)
                .with_init(Init::Svd)
                .with_svd(svd),
        );
    }
    configs
}

pub fn describe(cfg: &AdapterConfig) -> String {
    format!(
        "{} init={:?} svd={:?}",
        cfg.method,
        cfg.resolved_init(),
        cfg.svd
    )
}

/// `max |a − b| / max |b|`.
pub fn max_rel_diff<Bk: Backend, const D: usize>(a: Tensor<Bk, D>, b: Tensor<Bk, D>) -> f64 {
    let diff: f64 = (a - b.clone()).abs().max().into_scalar().elem();
    let size: f64 = b.abs().max().into_scalar().elem();
    diff / size.max(f64::MIN_POSITIVE)
}

pub fn to_vec<Bk: Backend, const D: usize>(t: Tensor<Bk, D>) -> Vec<f32> {
    burn_peft::linalg::tensor_to_vec(t)
}
