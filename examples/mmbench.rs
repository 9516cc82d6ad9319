use burn::tensor::{Distribution, FloatDType, Tensor};
use burn_peft::backend::Cpu;
use std::time::Instant;
fn main() {
    let d = Default::default();
    for (m, k, n) in [
        (1024, 1024, 1024),
        (1024, 1024, 2752),
        (1024, 2752, 1024),
        (2048, 2048, 2048),
    ] {
        let a = Tensor::<Cpu, 2>::random([m, k], Distribution::Default, &d);
        let b = Tensor::<Cpu, 2>::random([k, n], Distribution::Default, &d);
        for dt in [FloatDType::F32, FloatDType::BF16] {
            let (a, b) = (a.clone().cast(dt), b.clone().cast(dt));
            let _ = a.clone().matmul(b.clone()).into_data();
            let t = Instant::now();
            for _ in 0..5 {
                let _ = a.clone().matmul(b.clone()).into_data();
            }
            let s = t.elapsed().as_secs_f64() / 5.0;
            println!(
                "{m}x{k}x{n} {dt:?}: {:.3} s {:.1} GFLOP/s",
                s,
                2.0 * (m as f64 * k as f64 * n as f64) / s / 1e9
            );
            let bt = b.clone().transpose();
            let t = Instant::now();
            for _ in 0..5 {
                let _ = a.clone().matmul(bt.clone().transpose()).into_data();
            }
            let s = t.elapsed().as_secs_f64() / 5.0;
            println!(
                "   transposed rhs: {:.3} s {:.1} GFLOP/s",
                s,
                2.0 * (m as f64 * k as f64 * n as f64) / s / 1e9
            );
        }
    }
}
