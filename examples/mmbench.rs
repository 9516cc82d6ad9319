//! f32/bf16 matrix products on the CPU device, in GFLOP/s: `burn_peft::kernel::matmul` (what
//! the models run; `gemm` writing straight into its output) and, beside it, burn-flex's own
//! `Tensor::matmul` (the same `gemm` call plus a copy of every output). `benches/side_by_side.sh`
//! reads the `F32:` lines, the ones the models run.
use burn::tensor::{Distribution, FloatDType, Tensor};
use burn_peft::backend::Cpu;
use burn_peft::kernel::matmul::matmul;
use std::time::Instant;

fn main() {
    let d = Default::default();
    let reps = 5;
    for (m, k, n) in [
        (1024, 1024, 1024),
        (1024, 1024, 2752),
        (1024, 2752, 1024),
        (2048, 2048, 2048),
    ] {
        let a = Tensor::<Cpu, 2>::random([m, k], Distribution::Default, &d);
        let b = Tensor::<Cpu, 2>::random([k, n], Distribution::Default, &d);
        let gflops = |f: &dyn Fn() -> Tensor<Cpu, 2>| {
            let _ = f().into_data();
            let t = Instant::now();
            for _ in 0..reps {
                let _ = f().into_data();
            }
            let s = t.elapsed().as_secs_f64() / reps as f64;
            (s, 2.0 * (m as f64 * k as f64 * n as f64) / s / 1e9)
        };
        for dt in [FloatDType::F32, FloatDType::BF16] {
            let (a, b) = (a.clone().cast(dt), b.clone().cast(dt));
            let (s, g) = gflops(&|| matmul(a.clone(), b.clone()));
            println!("{m}x{k}x{n} {dt:?}: {s:.3} s {g:.1} GFLOP/s");
            let bt = b.clone().transpose();
            let (s, g) = gflops(&|| matmul(a.clone(), bt.clone().transpose()));
            println!("   transposed rhs: {s:.3} s {g:.1} GFLOP/s");
            let (s, g) = gflops(&|| a.clone().matmul(b.clone()));
            println!("   burn-flex's Tensor::matmul: {s:.3} s {g:.1} GFLOP/s");
        }
    }
}
