use std::path::PathBuf;

use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Int, Tensor};
use burn_peft::io::checkpoint::Checkpoint;

/// The shipped CPU backend (burn-flex); tests that are cheap run on both CPU backends through
/// `backend_tests!`.
pub type B = burn_peft::backend::Cpu;

pub fn device() -> burn::tensor::Device<B> {
    Default::default()
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
        self.ints_on::<B>(name, &device())
    }

    pub fn ints_on<Bk: Backend>(&self, name: &str, device: &Bk::Device) -> Tensor<Bk, 2, Int> {
        self.ckpt.int_tensor::<Bk, 2>(name, device).unwrap()
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

    pub fn floats_on<Bk: Backend, const D: usize>(
        &self,
        name: &str,
        device: &Bk::Device,
    ) -> Tensor<Bk, D> {
        let shape: [usize; D] = self.ckpt.shape(name).unwrap().try_into().unwrap();
        self.ckpt.tensor::<Bk, D>(name, shape, device).unwrap()
    }
}

pub fn max_abs_diff<Bk: Backend, const D: usize>(a: Tensor<Bk, D>, b: Tensor<Bk, D>) -> f64 {
    (a - b).abs().max().into_scalar().elem()
}

/// tiny-llama's weights as a Mistral with a 4-token sliding window
/// (`tests/fixtures/tiny-mistral-sliding`), assembled once per test process in a temporary
/// folder.
pub fn sliding_window_model() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("burn-peft-tiny-mistral-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(
            fixture("tiny-mistral-sliding").join("config.json"),
            dir.join("config.json"),
        )
        .unwrap();
        std::fs::copy(
            fixture("tiny-llama").join("model.safetensors"),
            dir.join("model.safetensors"),
        )
        .unwrap();
        dir
    })
    .clone()
}
