//! The CPU backends tests run on: burn-flex (`backend::Cpu`, the shipped `cpu` device) and the
//! legacy ndarray (`backend::Ndarray`, `--device ndarray`). The device backends get the same
//! test functions through `support/gpu_backends.rs` in `tests/gpu.rs`.

/// Instantiates generic test functions on both CPU backends, as `flex::NAME` and
/// `ndarray::NAME`. Each function is `fn NAME<B: Backend>(device: &B::Device)`.
/// Invoke it once per test module.
#[allow(unused_macros)]
macro_rules! backend_tests {
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
    };
}
