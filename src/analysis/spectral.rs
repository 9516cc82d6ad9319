//! SORSA's spectral shift between a pre-trained weight `W_0` and a trained `W_t` (METHODS.md,
//! "Spectral analysis"): how far the singular values move (ΔΣ) and how far the singular
//! directions rotate (ΔD).

use faer::MatRef;

use crate::linalg::svd::exact_svd;
use crate::{Error, Result};

/// `(ΔΣ, ΔD)` of `wt` against `w0`, both from full thin SVDs with `n = min(rows, cols)`:
/// - `ΔΣ = (1/n) Σ_i |σ_i(W_t) − σ_i(W_0)|`
/// - `ΔD = 1 − (1/2n) Σ_i (|⟨u_i(W_t), u_i(W_0)⟩| + |⟨v_i(W_t), v_i(W_0)⟩|)`
///
/// Vectors are matched by index (both SVDs sort σ descending); the absolute value removes the
/// sign ambiguity of each singular pair. Sums run in f64 so that the mean over thousands of
/// triplets does not lose the small shifts a few training steps produce.
pub fn spectral_shift(w0: MatRef<'_, f32>, wt: MatRef<'_, f32>) -> Result<(f64, f64)> {
    if w0.nrows() != wt.nrows() || w0.ncols() != wt.ncols() {
        return Err(Error::Shape {
            what: "trained weight against its pre-trained weight".into(),
            expected: vec![w0.nrows(), w0.ncols()],
            found: vec![wt.nrows(), wt.ncols()],
        });
    }
    let n = w0.nrows().min(w0.ncols());
    if n == 0 {
        return Err(Error::invalid(
            "weight",
            format!("{}x{}", w0.nrows(), w0.ncols()),
            "has no singular values",
        ));
    }
    let before = exact_svd(w0)?;
    let after = exact_svd(wt)?;
    let delta_sigma: f64 = before
        .s
        .iter()
        .zip(&after.s)
        .map(|(a, b)| (f64::from(*a) - f64::from(*b)).abs())
        .sum();
    let alignment: f64 = (0..n)
        .map(|i| {
            let u = dot(before.u.col(i), after.u.col(i)).abs();
            let v = dot(before.v.col(i), after.v.col(i)).abs();
            u + v
        })
        .sum();
    let n = n as f64;
    Ok((delta_sigma / n, 1.0 - alignment / (2.0 * n)))
}

fn dot(a: faer::ColRef<'_, f32>, b: faer::ColRef<'_, f32>) -> f64 {
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum()
}
