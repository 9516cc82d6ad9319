//! Orthonormalisation by thin QR.

use faer::{Mat, MatRef};

/// Returns `Q` of the thin QR factorisation of `m` (`[rows, cols]`, `rows >= cols`): a matrix with
/// orthonormal columns spanning the same space. Columns are sign-fixed so that `R` has a
/// non-negative diagonal, which makes the result unique and reproducible.
pub fn orthonormalize_columns(m: MatRef<'_, f32>) -> Mat<f32> {
    let qr = m.qr();
    let mut q = qr.compute_thin_Q();
    let r = qr.thin_R();
    for j in 0..q.ncols() {
        if r[(j, j)] < 0.0 {
            for i in 0..q.nrows() {
                q[(i, j)] = -q[(i, j)];
            }
        }
    }
    q
}
