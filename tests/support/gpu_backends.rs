//! The device backends `tests/gpu.rs` runs on: wgpu (`--features wgpu`; Vulkan, Metal, or
//! Mesa's llvmpipe on a machine without a GPU) and CUDA (`--features cuda`), both fused
//! (burn-fusion), as `--device wgpu` and `--device cuda` run them.

/// Instantiates generic test functions on each compiled device backend, as `wgpu::NAME` and
/// `cuda::NAME`: the same functions `support/cpu_backends.rs` runs on the CPU backends.
/// Each function is `fn NAME<B: Backend>(device: &B::Device)`.
#[allow(unused_macros)]
macro_rules! backend_tests {
    ($($name:ident),+ $(,)?) => {
        #[cfg(feature = "wgpu")]
        mod wgpu {
            $(
                #[test]
                fn $name() {
                    super::$name::<burn_peft::backend::WgpuFused>(&Default::default());
                }
            )+
        }
        #[cfg(feature = "cuda")]
        mod cuda {
            $(
                #[test]
                fn $name() {
                    super::$name::<burn_peft::backend::CudaFused>(&Default::default());
                }
            )+
        }
    };
}
