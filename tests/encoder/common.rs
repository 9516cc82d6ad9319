//! The encoder fixtures, their references and the parity checks, generic over the backend so
//! that `tests/encoder.rs` (CPU) and `tests/gpu.rs` (device backends) share them.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Int, Tensor};
use burn_peft::io::checkpoint::Checkpoint;
use burn_peft::model::encoder::EncoderClassifier;

pub const BERT: &str = "tiny-bert-cls";
pub const ROBERTA: &str = "tiny-roberta-cls";
/// PEFT's LoRA for `ROBERTA` with its trained head (`modules_to_save`).
pub const ROBERTA_LORA: &str = "tiny-roberta-cls-lora";
/// The fixtures' parity target (f32).
pub const TOLERANCE: f32 = 1e-4;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Inputs and logits transformers (or PEFT) computed for a fixture: both rows, the second
/// right-padded by 3.
pub struct Reference<Bk: Backend> {
    pub input_ids: Tensor<Bk, 2, Int>,
    pub attention_mask: Tensor<Bk, 2, Int>,
    pub logits: Tensor<Bk, 2>,
}

impl<Bk: Backend> Reference<Bk> {
    pub fn open(name: &str, device: &Bk::Device) -> Self {
        let ckpt = Checkpoint::open_files(&[fixture(name).join("reference.safetensors")]).unwrap();
        let shape = ckpt.shape("logits").unwrap().to_vec();
        Self {
            input_ids: ckpt.int_tensor("input_ids", device).unwrap(),
            attention_mask: ckpt.int_tensor("attention_mask", device).unwrap(),
            logits: ckpt.tensor("logits", [shape[0], shape[1]], device).unwrap(),
        }
    }

    /// `model`'s logits on the reference inputs.
    pub fn logits_of(&self, model: &EncoderClassifier<Bk>) -> Tensor<Bk, 2> {
        model.forward(self.input_ids.clone(), self.attention_mask.clone(), None)
    }
}

/// Fixture `name`, every checkpoint tensor used.
pub fn load_on<Bk: Backend>(name: &str, device: &Bk::Device) -> EncoderClassifier<Bk> {
    let (model, report) = EncoderClassifier::<Bk>::load(&fixture(name), device).unwrap();
    assert!(
        report.unused.is_empty(),
        "{name}: unused {:?}",
        report.unused
    );
    model
}

pub fn max_abs_diff<Bk: Backend>(a: Tensor<Bk, 2>, b: Tensor<Bk, 2>) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b).abs().max().into_scalar().elem()
}

pub fn assert_close<Bk: Backend>(what: &str, a: Tensor<Bk, 2>, b: Tensor<Bk, 2>) -> f32 {
    let diff = max_abs_diff(a, b);
    assert!(diff < TOLERANCE, "{what}: max |Δlogits| = {diff:e}");
    diff
}

/// The fixtures' logits are ~1e-2 (random weights of std 0.02), so the absolute target is only
/// 1 % of the signal: a missing padding mask shifts them by ~4e-5 and passes it. Parity is also
/// held to 1e-5 of the largest logit (measured: ~4e-7).
pub fn assert_parity<Bk: Backend>(what: &str, a: Tensor<Bk, 2>, b: Tensor<Bk, 2>) -> f32 {
    let scale: f32 = b.clone().abs().max().into_scalar().elem();
    let diff = assert_close(what, a, b);
    assert!(
        diff <= 1e-5 * scale,
        "{what}: max |Δlogits| = {diff:e} for logits up to {scale:e}"
    );
    diff
}
