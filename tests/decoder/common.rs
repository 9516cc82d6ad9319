use std::path::PathBuf;

use burn::backend::ndarray::NdArrayDevice;
use burn::tensor::{ElementConversion, Int, Tensor};
use burn_peft::io::checkpoint::Checkpoint;

pub type B = burn::backend::NdArray<f32>;

pub fn device() -> NdArrayDevice {
    NdArrayDevice::Cpu
}

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The fixture's `reference.safetensors`.
pub struct Reference {
    pub ckpt: Checkpoint,
}

impl Reference {
    pub fn open(name: &str) -> Self {
        Self {
            ckpt: Checkpoint::open_files(&[fixture(name).join("reference.safetensors")]).unwrap(),
        }
    }

    pub fn ints(&self, name: &str) -> Tensor<B, 2, Int> {
        self.ckpt.int_tensor::<B, 2>(name, &device()).unwrap()
    }

    pub fn ids(&self, name: &str) -> Vec<u32> {
        self.ckpt
            .read_i64(name)
            .unwrap()
            .0
            .into_iter()
            .map(|v| v as u32)
            .collect()
    }

    pub fn floats<const D: usize>(&self, name: &str) -> Tensor<B, D> {
        let shape: [usize; D] = self.ckpt.shape(name).unwrap().try_into().unwrap();
        self.ckpt.tensor::<B, D>(name, shape, &device()).unwrap()
    }
}

pub fn max_abs_diff<const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> f64 {
    (a - b).abs().max().into_scalar().elem()
}
