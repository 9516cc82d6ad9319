//! The only module that names concrete Burn backends. Everything else is generic over
//! `B: Backend` (inference) or `B: AutodiffBackend` (training), and the CLI reaches a backend
//! through [`run_on`].

use std::fmt;
use std::str::FromStr;

use burn::tensor::backend::AutodiffBackend;

use crate::{Error, Result};

/// CPU backend (always compiled, the default): burn-flex, gemm-based, with AVX-512 kernels
/// dispatched at run time on x86_64.
pub type Cpu = burn::backend::Flex;
/// The legacy ndarray CPU backend, kept for comparison: the library and the tests use it
/// always; `--device ndarray` needs `--features ndarray`, because its kernels are generic over
/// the element type and so compile into the binary itself (66 s more of a cold build's serial
/// tail, at opt-level 1, for a backend the shipped `cpu` device supersedes).
pub type Ndarray = burn::backend::NdArray<f32>;
/// CUDA backend (`--features cuda`).
#[cfg(feature = "cuda")]
pub type Cuda = burn::backend::Cuda<f32>;
/// wgpu backend: Vulkan, Metal, DX12 (`--features wgpu`).
#[cfg(feature = "wgpu")]
pub type Wgpu = burn::backend::Wgpu<f32>;

/// Wraps a backend with automatic differentiation for training.
pub type Train<B> = burn::backend::Autodiff<B>;
/// Automatic differentiation with Burn's BalancedCheckpointing strategy (memory-bound ops are
/// recomputed in the backward pass instead of kept); `bench train --checkpointing balanced`.
pub type TrainBalanced<B> = burn::backend::Autodiff<
    B,
    burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing,
>;

/// A device the user can pick with `--device`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceKind {
    #[default]
    Cpu,
    Ndarray,
    Wgpu,
    Cuda,
}

impl DeviceKind {
    /// Devices compiled into this binary.
    pub fn available() -> Vec<DeviceKind> {
        let mut kinds = vec![DeviceKind::Cpu];
        if cfg!(feature = "ndarray") {
            kinds.push(DeviceKind::Ndarray);
        }
        if cfg!(feature = "wgpu") {
            kinds.push(DeviceKind::Wgpu);
        }
        if cfg!(feature = "cuda") {
            kinds.push(DeviceKind::Cuda);
        }
        kinds
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Ndarray => "ndarray",
            DeviceKind::Wgpu => "wgpu",
            DeviceKind::Cuda => "cuda",
        })
    }
}

impl FromStr for DeviceKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let kind = match s.to_ascii_lowercase().as_str() {
            "cpu" | "flex" => DeviceKind::Cpu,
            "ndarray" => DeviceKind::Ndarray,
            "wgpu" | "vulkan" | "metal" => DeviceKind::Wgpu,
            "cuda" | "gpu" => DeviceKind::Cuda,
            _ => {
                return Err(Error::invalid(
                    "device",
                    s,
                    "expected one of cpu (flex), ndarray, wgpu, cuda",
                ));
            }
        };
        if !DeviceKind::available().contains(&kind) {
            return Err(Error::invalid(
                "device",
                s,
                format!(
                    "this binary was built without the `{kind}` feature; rebuild with \
                     `cargo build --release --features {kind}`"
                ),
            ));
        }
        Ok(kind)
    }
}

/// A job generic over the training backend, so the CLI can pick the backend at run time.
pub trait BackendJob {
    type Output;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output;
}

/// Runs `job` on the backend and device `kind` names.
pub fn run_on<J: BackendJob>(kind: DeviceKind, job: J) -> J::Output {
    match kind {
        #[cfg(feature = "wgpu")]
        DeviceKind::Wgpu => job.run::<Train<Wgpu>>(Default::default()),
        #[cfg(feature = "cuda")]
        DeviceKind::Cuda => job.run::<Train<Cuda>>(Default::default()),
        #[cfg(feature = "ndarray")]
        DeviceKind::Ndarray => job.run::<Train<Ndarray>>(Default::default()),
        // `FromStr` refuses kinds that are not compiled in.
        _ => job.run::<Train<Cpu>>(Default::default()),
    }
}

/// Runs `job` on the CPU device with the BalancedCheckpointing autodiff strategy (only the
/// memory benchmark uses it, so no other backend is compiled with it).
pub fn run_balanced<J: BackendJob>(job: J) -> J::Output {
    job.run::<TrainBalanced<Cpu>>(Default::default())
}
