//! Seeded host-side random matrices. Initialisation draws on the host so that a seed gives the
//! same adapter on CPU, wgpu and CUDA.

use faer::Mat;
use rand::{Rng, SeedableRng, rngs::StdRng};

/// A seeded generator for initialisers.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Standard normal samples (Box–Muller; two uniforms per pair of normals).
pub fn standard_normal(rng: &mut StdRng, rows: usize, cols: usize) -> Mat<f32> {
    let mut values = Vec::with_capacity(rows * cols + 1);
    while values.len() < rows * cols {
        // 1 - u keeps the logarithm's argument in (0, 1].
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random::<f64>();
        let radius = (-2.0 * u1.ln()).sqrt();
        let angle = std::f64::consts::TAU * u2;
        values.push((radius * angle.cos()) as f32);
        values.push((radius * angle.sin()) as f32);
    }
    Mat::from_fn(rows, cols, |i, j| values[i * cols + j])
}

/// Uniform samples in `[-bound, bound)`.
pub fn uniform(rng: &mut StdRng, rows: usize, cols: usize, bound: f32) -> Mat<f32> {
    Mat::from_fn(rows, cols, |_, _| rng.random_range(-bound..bound))
}
