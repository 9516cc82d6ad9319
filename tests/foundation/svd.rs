//! Randomized SVD accuracy (issue test 7) and exact SVD sanity.

use burn_peft::linalg::{SvdOptions, gaussian, orthonormalize_columns, svd};

/// `U diag(σ) Vᵀ` with random orthonormal U, V.
fn with_spectrum(rows: usize, cols: usize, sigma: &[f32], seed: u64) -> faer::Mat<f32> {
    let n = sigma.len();
    let mut rng = gaussian::rng(seed);
    let u = orthonormalize_columns(gaussian::standard_normal(&mut rng, rows, n).as_ref());
    let v = orthonormalize_columns(gaussian::standard_normal(&mut rng, cols, n).as_ref());
    let us = faer::Mat::from_fn(rows, n, |i, j| u[(i, j)] * sigma[j]);
    us * v.transpose()
}

#[test]
fn randomized_svd_recovers_a_decaying_spectrum_within_one_percent() {
    let sigma: Vec<f32> = (0..200).map(|i| 0.9f32.powi(i)).collect();
    let w = with_spectrum(400, 300, &sigma, 5);
    let approx = svd::truncated_svd(w.as_ref(), 16, &SvdOptions::randomized()).unwrap();
    for (i, (got, want)) in approx.s.iter().zip(&sigma).enumerate() {
        let rel = (got - want).abs() / want;
        assert!(rel < 0.01, "σ_{i}: {got} vs {want} (rel {rel:e})");
    }
    // The vectors span the same top space: ‖U_rᵀ W V_r‖ reproduces σ.
    let projected = approx.u.transpose() * &w * &approx.v;
    for i in 0..16 {
        let rel = (projected[(i, i)] - sigma[i]).abs() / sigma[i];
        assert!(rel < 0.01, "projected σ_{i} off by {rel:e}");
    }
}

#[test]
fn randomized_svd_on_a_power_law_spectrum_within_one_percent() {
    // Trained weights' spectra decay slowly (roughly a power law); this is the case the default
    // oversampling and power iterations are chosen for.
    let sigma: Vec<f32> = (0..256).map(|i| ((i + 1) as f32).powf(-0.5)).collect();
    let w = with_spectrum(512, 256, &sigma, 6);
    for rank in [8, 32] {
        let approx = svd::truncated_svd(w.as_ref(), rank, &SvdOptions::randomized()).unwrap();
        let worst = approx
            .s
            .iter()
            .zip(&sigma)
            .map(|(g, w)| (g - w).abs() / w)
            .fold(0.0f32, f32::max);
        assert!(
            worst < 0.01,
            "rank {rank}: worst relative σ error {worst:e}"
        );
    }
}

#[test]
fn truncated_svd_rejects_a_rank_beyond_the_matrix() {
    let w = faer::Mat::<f32>::identity(6, 4);
    let err = svd::truncated_svd(w.as_ref(), 5, &SvdOptions::exact()).unwrap_err();
    assert!(err.to_string().contains("rank"), "{err}");
}
