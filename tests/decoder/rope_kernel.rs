//! The rotary-embedding CPU kernel against the composite ops it replaces: the same bits, values
//! and gradients, on shapes the model produces (permuted queries and keys, one `cos` per batch
//! row or one shared, a single decode step).

use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use burn_peft::backend::{Cpu, Train};
use burn_peft::model::rope::Rope;

/// `cos`/`sin` as the decoder builds them, for `[batch, seq]` positions.
fn angles<Bk: Backend>(
    positions: Vec<i64>,
    batch: usize,
    seq: usize,
) -> (Tensor<Bk, 4>, Tensor<Bk, 4>) {
    let rope = Rope::new(10_000.0, 16, None);
    let positions = Tensor::<Bk, 2, Int>::from_data(
        TensorData::new(positions, [batch, seq]),
        &Default::default(),
    );
    rope.cos_sin(positions)
}

fn assert_same_bits<const D: usize>(what: &str, got: Tensor<Cpu, D>, want: Tensor<Cpu, D>) {
    let (got, want) = (got.into_data(), want.into_data());
    assert_eq!(got.shape, want.shape, "{what}: shapes");
    let (got, want) = (got.to_vec::<f32>().unwrap(), want.to_vec::<f32>().unwrap());
    let differing = got
        .iter()
        .zip(&want)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    assert_eq!(
        differing,
        0,
        "{what}: {differing} of {} values differ",
        got.len()
    );
}

#[test]
fn rope_kernel_is_the_composite_in_values_and_gradients() {
    type A = Train<Cpu>;
    let device = Default::default();
    A::seed(&device, 7);
    // (batch, heads, seq, per-row positions as with left padding)
    for (b, h, s, per_row) in [
        (2, 3, 5, true),
        (1, 4, 7, false),
        (3, 2, 1, true),
        (2, 1, 9, false),
    ] {
        let positions: Vec<i64> = (0..b)
            .flat_map(|row| {
                (0..s).map(move |t| {
                    if per_row {
                        (t + 3 * row) as i64
                    } else {
                        t as i64
                    }
                })
            })
            .collect();
        let (cos, sin) = angles::<A>(positions.clone(), b, s);
        // Shared angles as one row, broadcast over the batch.
        let (cos, sin) = if per_row {
            (cos, sin)
        } else {
            (cos.slice(0..1), sin.slice(0..1))
        };
        // A projection's output `[b, s, h·d]` split into heads: permuted, not contiguous.
        let x = Tensor::<A, 3>::random([b, s, h * 16], Distribution::Normal(0.0, 1.0), &device)
            .reshape([b, s, h, 16])
            .swap_dims(1, 2);
        let weights =
            Tensor::<A, 4>::random([b, h, s, 16], Distribution::Normal(0.0, 1.0), &device);
        let run = |kernel: bool| {
            let leaf = x.clone().detach().require_grad();
            let out = if kernel {
                Rope::apply(leaf.clone(), &cos, &sin)
            } else {
                Rope::apply_composite(leaf.clone(), &cos, &sin)
            };
            let grads = (out.clone() * weights.clone()).sum().backward();
            (out.inner(), leaf.grad(&grads).unwrap())
        };
        let (out, grad) = run(true);
        let (want, want_grad) = run(false);
        let case = format!("b {b} h {h} s {s} per-row {per_row}");
        assert_same_bits(&format!("{case}: values"), out, want);
        assert_same_bits(&format!("{case}: gradients"), grad, want_grad);
        // And without autodiff (inference, decode).
        let (cos, sin) = (cos.inner(), sin.inner());
        let x = x.clone().inner();
        assert_same_bits(
            &format!("{case}: inference"),
            Rope::apply(x.clone(), &cos, &sin),
            Rope::apply_composite(x, &cos, &sin),
        );
    }
}
