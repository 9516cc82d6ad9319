//! The backends tests run on: burn-flex (`backend::Cpu`, the shipped `cpu` device), the legacy
//! ndarray (`backend::Ndarray`, `--device ndarray`) and, in a build with `--features wgpu`,
//! wgpu (`backend::Wgpu`; on a machine without a GPU, Mesa's llvmpipe).

/// Instantiates generic test functions on both CPU backends, as `flex::NAME` and
/// `ndarray::NAME` (and `wgpu::NAME` with `--features wgpu`). Each function is
/// `fn NAME<B: Backend>(device: &B::Device)`; after `autodiff:` they are
/// `fn NAME<B: AutodiffBackend>(device: &B::Device)` and run on `Train<Cpu>` / `Train<Ndarray>`
/// (/ `Train<Wgpu>`). Invoke it once per test module.
#[allow(unused_macros)]
macro_rules! cpu_backend_tests {
    (autodiff: $($name:ident),+ $(,)?) => {
        mod flex {
            $(
                #[test]
                fn $name() {
                    super::$name::<burn_peft::backend::Train<burn_peft::backend::Cpu>>(
                        &Default::default(),
                    );
                }
            )+
        }
        mod ndarray {
            $(
                #[test]
                fn $name() {
                    super::$name::<burn_peft::backend::Train<burn_peft::backend::Ndarray>>(
                        &Default::default(),
                    );
                }
            )+
        }
        #[cfg(feature = "wgpu")]
        mod wgpu {
            $(
                #[test]
                fn $name() {
                    super::$name::<burn_peft::backend::Train<burn_peft::backend::Wgpu>>(
                        &Default::default(),
                    );
                }
            )+
        }
    };
    ($($name:ident),+ $(,)?) => {
        mod flex {
            $(
                #[test]
                fn $name() {
                    super::$name::<burn_peft::backend::Cpu>(&Default::default());
                }
            )+
        }
        mod ndarray {
            $(
                #[test]
                fn $name() {
                    super::$name::<burn_peft::backend::Ndarray>(&Default::default());
                }
            )+
        }
        #[cfg(feature = "wgpu")]
        mod wgpu {
            $(
                #[test]
                fn $name() {
                    super::$name::<burn_peft::backend::Wgpu>(&Default::default());
                }
            )+
        }
    };
}
