//! Row primitives of the loss kernel ([`crate::model::cross_entropy_kernel`]: max, shifted
//! exponentials and their sum, scaling) on the CPU's widest SIMD registers, picked at run time
//! by `pulp` (already in the tree through `gemm` and `faer`).
//!
//! The kernel called `f32::exp` per element: libm's scalar `expf`, 16 times the calls an
//! AVX-512 register needs, and a loop the compiler cannot vectorise around it; the loss over a
//! 32k vocabulary takes 65 M of them a `bench train` step. (Attention's softmax kernel keeps
//! libm's `exp`, so that its values stay the composite's bits.) Here `exp`
//! is Cephes' `expf` (range reduction by `ln 2` in two parts and a degree-5 polynomial, within
//! 2 ulp of the exact value; tested against f64) on whole registers, and sums run lane by lane
//! in a fixed order, so results are the same bits from run to run.

use pulp::{Arch, Simd, WithSimd};

/// Below this, `exp` is taken as 0 (the exact value is under 2.3e-38, negligible beside the
/// 1 of a row's maximum; and `-inf`, a masked score, gives exactly 0).
const EXP_LOWEST: f32 = -86.0;
/// Above this, `exp` is clamped (as `exp(88)`, 1.65e38; `exp` overflows f32 at 88.72).
const EXP_HIGHEST: f32 = 88.0;

/// `e^x` lane by lane (see the module's docs for the method and its accuracy).
#[inline(always)]
fn exp_f32s<S: Simd>(simd: S, x: S::f32s) -> S::f32s {
    // `1.5 · 2^23`: adding it rounds to an integer, which the sum's low mantissa bits hold.
    const ROUNDER: f32 = 12_582_912.0;
    let underflow = simd.less_than_f32s(x, simd.splat_f32s(EXP_LOWEST));
    let x = simd.max_f32s(
        simd.min_f32s(x, simd.splat_f32s(EXP_HIGHEST)),
        simd.splat_f32s(EXP_LOWEST),
    );
    let rounded = simd.mul_add_f32s(
        x,
        simd.splat_f32s(std::f32::consts::LOG2_E),
        simd.splat_f32s(ROUNDER),
    );
    let n = simd.sub_f32s(rounded, simd.splat_f32s(ROUNDER));
    // r = x − n·ln 2, with ln 2 in two parts (Cody and Waite) so the product is exact.
    let r = simd.mul_add_f32s(n, simd.splat_f32s(-0.693_359_4), x);
    let r = simd.mul_add_f32s(n, simd.splat_f32s(2.121_944_4e-4), r);
    let mut p = simd.splat_f32s(1.987_569_1e-4);
    for c in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ] {
        p = simd.mul_add_f32s(p, r, simd.splat_f32s(c));
    }
    let y = simd.mul_add_f32s(
        p,
        simd.mul_f32s(r, r),
        simd.add_f32s(r, simd.splat_f32s(1.0)),
    );
    // y · 2^n: n (the rounded sum's low bits) added to y's exponent field.
    let n_bits = simd.sub_u32s(
        simd.transmute_u32s_f32s(rounded),
        simd.splat_u32s(ROUNDER.to_bits()),
    );
    let scale = simd.wrapping_dyn_shl_u32s(n_bits, simd.splat_u32s(23));
    let y = simd.transmute_f32s_u32s(simd.add_u32s(simd.transmute_u32s_f32s(y), scale));
    simd.select_f32s(underflow, simd.splat_f32s(0.0), y)
}

/// The largest value of a non-empty row (NaNs aside).
pub fn max(row: &[f32]) -> f32 {
    struct Max<'a>(&'a [f32]);
    impl WithSimd for Max<'_> {
        type Output = f32;
        #[inline(always)]
        fn with_simd<S: Simd>(self, simd: S) -> f32 {
            let (head, tail) = S::as_simd_f32s(self.0);
            let mut acc = simd.splat_f32s(f32::NEG_INFINITY);
            for &x in head {
                acc = simd.max_f32s(acc, x);
            }
            tail.iter()
                .copied()
                .fold(simd.reduce_max_f32s(acc), f32::max)
        }
    }
    Arch::new().dispatch(Max(row))
}

/// `out[i] = e^(row[i] − shift)` (`out` may be left out), and their sum.
fn exp_shifted_impl(row: &[f32], shift: f32, out: Option<&mut [f32]>) -> f32 {
    struct ExpShifted<'a> {
        row: &'a [f32],
        shift: f32,
        out: Option<&'a mut [f32]>,
    }
    impl WithSimd for ExpShifted<'_> {
        type Output = f32;
        #[inline(always)]
        fn with_simd<S: Simd>(self, simd: S) -> f32 {
            let (head, tail) = S::as_simd_f32s(self.row);
            let shift = simd.splat_f32s(self.shift);
            let mut sum = simd.splat_f32s(0.0);
            match self.out {
                Some(out) => {
                    let (out_head, out_tail) = S::as_mut_simd_f32s(&mut out[..]);
                    for (o, &x) in out_head.iter_mut().zip(head) {
                        *o = exp_f32s(simd, simd.sub_f32s(x, shift));
                        sum = simd.add_f32s(sum, *o);
                    }
                    let mut total = simd.reduce_sum_f32s(sum);
                    if !tail.is_empty() {
                        let e = exp_f32s(simd, simd.sub_f32s(simd.partial_load_f32s(tail), shift));
                        simd.partial_store_f32s(out_tail, e);
                        total += out_tail.iter().sum::<f32>();
                    }
                    total
                }
                None => {
                    for &x in head {
                        sum = simd.add_f32s(sum, exp_f32s(simd, simd.sub_f32s(x, shift)));
                    }
                    let mut total = simd.reduce_sum_f32s(sum);
                    if !tail.is_empty() {
                        let e = exp_f32s(simd, simd.sub_f32s(simd.partial_load_f32s(tail), shift));
                        let mut spill = [0.0f32; 64];
                        let spill = &mut spill[..tail.len()];
                        simd.partial_store_f32s(spill, e);
                        total += spill.iter().sum::<f32>();
                    }
                    total
                }
            }
        }
    }
    if let Some(out) = &out {
        assert_eq!(out.len(), row.len(), "exp_shifted: output length");
    }
    Arch::new().dispatch(ExpShifted { row, shift, out })
}

/// `out[i] = e^(row[i] − shift)`, and their sum.
pub fn exp_shifted(row: &[f32], shift: f32, out: &mut [f32]) -> f32 {
    exp_shifted_impl(row, shift, Some(out))
}

/// `Σ e^(row[i] − shift)`.
pub fn exp_shifted_sum(row: &[f32], shift: f32) -> f32 {
    exp_shifted_impl(row, shift, None)
}

/// `row[i] ← row[i] · factor`.
pub fn scale(row: &mut [f32], factor: f32) {
    struct Scale<'a>(&'a mut [f32], f32);
    impl WithSimd for Scale<'_> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: Simd>(self, simd: S) {
            let factor = simd.splat_f32s(self.1);
            let (head, tail) = S::as_mut_simd_f32s(self.0);
            for x in head {
                *x = simd.mul_f32s(*x, factor);
            }
            for x in tail {
                *x *= self.1;
            }
        }
    }
    Arch::new().dispatch(Scale(row, factor))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Within 2 ulp of f64's `exp` over the range the kernels use, 0 at and below the cut-off
    /// (`-inf` included), finite at the top.
    #[test]
    fn exp_is_within_two_ulp_of_f64() {
        let mut worst = 0.0f64;
        let xs: Vec<f32> = (-860_000..=880_000).map(|i| i as f32 * 1e-4).collect();
        let mut out = vec![0.0f32; xs.len()];
        exp_shifted(&xs, 0.0, &mut out);
        for (&x, &got) in xs.iter().zip(&out) {
            let want = (x as f64).exp();
            worst = worst.max((got as f64 - want).abs() / want);
        }
        assert!(worst < 2.4e-7, "worst relative error {worst:e}");
        let mut edge = [0.0f32; 5];
        exp_shifted(
            &[f32::NEG_INFINITY, -1e30, -86.5, 88.0, 200.0],
            0.0,
            &mut edge,
        );
        assert_eq!(&edge[..3], &[0.0, 0.0, 0.0]);
        assert!(edge[3].is_finite() && edge[4].is_finite() && edge[4] > 1e38);
    }

    /// Every length around the register width: sums, scaling and max agree with scalar code.
    #[test]
    fn row_primitives_match_scalar_code_at_every_length() {
        for len in 1..70 {
            let row: Vec<f32> = (0..len)
                .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.7)
                .collect();
            let want_max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(max(&row), want_max, "len {len}");
            let want: Vec<f64> = row.iter().map(|&x| ((x - want_max) as f64).exp()).collect();
            let want_sum: f64 = want.iter().sum();
            let mut out = vec![0.0; len];
            let sum = exp_shifted(&row, want_max, &mut out);
            assert!(
                ((sum as f64 - want_sum) / want_sum).abs() < 1e-6,
                "len {len}"
            );
            assert!(((exp_shifted_sum(&row, want_max) as f64 - want_sum) / want_sum).abs() < 1e-6);
            for (got, want) in out.iter().zip(&want) {
                assert!(((*got as f64 - want) / want).abs() < 2.4e-7, "len {len}");
            }
            let mut scaled = out.clone();
            scale(&mut scaled, 0.5);
            assert!(scaled.iter().zip(&out).all(|(a, b)| *a == b * 0.5));
        }
    }
}
