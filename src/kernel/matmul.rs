//! Matrix products on burn-flex that write straight into their output.
//!
//! burn-flex 0.21 calls the `gemm` crate for its f32 matmul, but allocates the output as a
//! zeroed `Vec<u8>` and hands it to `Bytes::from_bytes_vec`, which copies it into a buffer of
//! 16-byte declared alignment: every product pays a zero-filled allocation, a second allocation
//! and a copy of its whole output, on one thread while the other core waits. On a 2-core Xeon
//! that took `1024 × 1024 × 2752` from 336 to 238 GFLOP/s (`cargo run --example mmbench`
//! prints both). Here the same `gemm` call writes into an uninitialised `Vec<f32>` that becomes
//! the tensor's storage without a copy. The values are `gemm`'s, bit for bit: the same call on
//! the same strides (a few-row product splits its columns between two cores, each column
//! computed as before).
//!
//! The op follows Burn's backend-extension pattern ([`crate::kernel::dispatch`]): burn-flex
//! and burn-flex under autodiff (whose backward runs these products too, on views of the saved
//! operands, as Burn's does), the composite `Tensor::matmul` for every other backend, dtype or
//! a broadcast batch.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::{FlexTensor, Layout};
use burn::tensor::backend::Backend;
use burn::tensor::{Bytes, DType, Shape, Tensor, TensorPrimitive};
use rayon::prelude::*;

use super::dispatch::{FlexAutodiff as Ad, KernelBackend, recast};

/// Products of at least this many multiply-adds use both cores inside `gemm` (burn-flex's
/// threshold, kept so the two differ only in the output's allocation).
const PARALLEL_THRESHOLD: usize = 192 * 192 * 192;

/// Products of at most `FEW_ROWS` rows whose `rhs` has at least `SPLIT_WEIGHT_ELEMENTS` (512
/// KiB in f32) split the columns with [`super::helper_thread`].
const FEW_ROWS: usize = 8;
const SPLIT_WEIGHT_ELEMENTS: usize = 1 << 17;

/// Batches of at least this many small products run one product per core instead.
const BATCH_PARALLEL_THRESHOLD: usize = 128 * 128 * 128;

/// The GEMM the CPU device's products run on, with the instruction set `gemm` picks on this
/// CPU at run time (the device line and `summary.json` say it).
pub fn gemm_name() -> String {
    #[cfg(target_arch = "x86_64")]
    let isa = if std::arch::is_x86_feature_detected!("avx512f") {
        "AVX-512"
    } else if std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
    {
        "AVX2+FMA"
    } else {
        "SSE"
    };
    #[cfg(target_arch = "aarch64")]
    let isa = "NEON";
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let isa = "scalar";
    format!("gemm ({isa})")
}

/// `lhs · rhs` over the last two axes, `[.., m, k] × [.., k, n]`.
pub fn matmul<B: Backend, const D: usize>(lhs: Tensor<B, D>, rhs: Tensor<B, D>) -> Tensor<B, D> {
    let supported = D >= 2
        && lhs.dims()[..D - 2] == rhs.dims()[..D - 2]
        && lhs.dtype() == DType::F32
        && rhs.dtype() == DType::F32;
    match KernelBackend::of::<B>() {
        Some(KernelBackend::Flex) if supported => {
            let (lhs, rhs) = recast::<_, (Tensor<Flex, D>, Tensor<Flex, D>)>((lhs, rhs));
            let out = gemm_flex(
                &lhs.into_primitive().tensor(),
                &rhs.into_primitive().tensor(),
                None,
            );
            recast(Tensor::<Flex, D>::from_primitive(TensorPrimitive::Float(
                out,
            )))
        }
        Some(KernelBackend::FlexAutodiff) if supported => {
            let (lhs, rhs) = recast::<_, (Tensor<Ad, D>, Tensor<Ad, D>)>((lhs, rhs));
            recast(autodiff_matmul(lhs, rhs))
        }
        _ => lhs.matmul(rhs),
    }
}

/// `x · weight + bias` for `x: [.., in]` and `weight: [in, out]` (Burn's `linear`), the
/// product on the rows of `x` as one matrix.
pub fn linear<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, D> {
    let mut dims = x.dims();
    let rows = dims[..D - 1].iter().product::<usize>();
    let y = matmul(x.reshape([rows, dims[D - 1]]), weight);
    let y = match bias {
        Some(bias) => y + bias.unsqueeze::<2>(),
        None => y,
    };
    dims[D - 1] = y.dims()[1];
    y.reshape(dims)
}

/// The product of two f32 burn-flex tensors with equal batch axes, in any strides (a
/// transposed view is read in place). The output is contiguous, or laid out in memory as
/// `like` is when that is a permutation of a dense buffer: a gradient in its operand's layout
/// stays a plain buffer through the `swap_dims` / `reshape` the forward pass took to reach it
/// (burn-flex copies a non-contiguous tensor element by element at each reshape).
fn gemm_flex(lhs: &FlexTensor, rhs: &FlexTensor, like: Option<&Layout>) -> FlexTensor {
    let (ls, rs) = (lhs.layout(), rhs.layout());
    let d = ls.num_dims();
    let (m, k, n) = (ls.shape()[d - 2], ls.shape()[d - 1], rs.shape()[d - 1]);
    let batch_dims: Vec<usize> = ls.shape()[..d - 2].to_vec();
    let batches: usize = batch_dims.iter().product();
    let mut out_dims = batch_dims.clone();
    out_dims.extend([m, n]);
    let len = batches * m * n;

    // Zero-sized products: `gemm` writes nothing when `k` is 0, and the sum is empty.
    let contiguous = Layout::contiguous(Shape::from(out_dims.clone()));
    if k == 0 || len == 0 {
        return FlexTensor::new(Bytes::from_elems(vec![0.0f32; len]), contiguous, DType::F32);
    }
    let out_strides = match like {
        Some(like) if like.shape() == contiguous.shape() && is_dense_permutation(like) => {
            like.strides().to_vec()
        }
        _ => contiguous.strides().to_vec(),
    };

    let offsets = |strides: &[isize], start: usize| -> Vec<isize> {
        (0..batches)
            .map(|mut b| {
                let mut offset = start as isize;
                for axis in (0..d - 2).rev() {
                    offset += (b % batch_dims[axis]) as isize * strides[axis];
                    b /= batch_dims[axis];
                }
                offset
            })
            .collect()
    };
    let lhs_offsets = offsets(ls.strides(), ls.start_offset());
    let rhs_offsets = offsets(rs.strides(), rs.start_offset());
    let out_offsets = offsets(&out_strides, 0);
    let (lhs_data, rhs_data) = (lhs.storage::<f32>(), rhs.storage::<f32>());
    let (l_rs, l_cs) = (ls.strides()[d - 2], ls.strides()[d - 1]);
    let (r_rs, r_cs) = (rs.strides()[d - 2], rs.strides()[d - 1]);
    let (o_rs, o_cs) = (out_strides[d - 2], out_strides[d - 1]);

    let mut out: Vec<f32> = Vec::with_capacity(len);
    let dst = SendPtr(out.as_mut_ptr());
    // Batch `b`'s output columns `cols`.
    let run = |b: usize, cols: std::ops::Range<usize>, parallelism: gemm::Parallelism| {
        // SAFETY: the offsets and strides come from the operands' own layouts, so every element
        // `gemm` reads lies in their storage. The output's strides are a permutation of a dense
        // layout of `len` elements, so batch `b`'s `m × n` elements are distinct positions of
        // the `len` reserved, disjoint from every other batch's; `gemm` writes each of them
        // (`alpha = 0`, `read_dst = false`) without reading it.
        unsafe {
            let first = cols.start as isize;
            gemm::gemm(
                m,
                cols.len(),
                k,
                dst.get().offset(out_offsets[b] + first * o_cs),
                o_cs,
                o_rs,
                false,
                lhs_data.as_ptr().offset(lhs_offsets[b]),
                l_cs,
                l_rs,
                rhs_data.as_ptr().offset(rhs_offsets[b] + first * r_cs),
                r_cs,
                r_rs,
                0.0f32,
                1.0f32,
                false,
                false,
                false,
                parallelism,
            );
        }
    };
    let per_matrix = m.saturating_mul(n).saturating_mul(k);
    if batches >= 4 && per_matrix.saturating_mul(batches) >= BATCH_PARALLEL_THRESHOLD {
        (0..batches)
            .into_par_iter()
            .for_each(|b| run(b, 0..n, gemm::Parallelism::None));
    } else if batches == 1 && m <= FEW_ROWS && k.saturating_mul(n) >= SPLIT_WEIGHT_ELEMENTS {
        // A few rows times a large weight (decoding's projections and vocabulary head):
        // reading the weight is the whole cost, and `gemm` keeps a one-row product on one core
        // whatever it is asked. This core and the helper read half the columns each.
        let half = (n / 2).next_multiple_of(16).min(n);
        let run = &run;
        super::helper_thread::join(
            || run(0, 0..half, gemm::Parallelism::None),
            || run(0, half..n, gemm::Parallelism::None),
        );
    } else if per_matrix >= PARALLEL_THRESHOLD {
        (0..batches).for_each(|b| run(b, 0..n, gemm::Parallelism::Rayon(0)));
    } else {
        (0..batches).for_each(|b| run(b, 0..n, gemm::Parallelism::None));
    }
    // SAFETY: every one of the `len` elements was written above (the layout is a bijection).
    unsafe { out.set_len(len) };
    FlexTensor::new(
        Bytes::from_elems(out),
        Layout::new(Shape::from(out_dims), out_strides, 0),
        DType::F32,
    )
}

/// The output pointer, shared by the tasks that write disjoint parts of it.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);

// SAFETY: the tasks write disjoint elements (see `gemm_flex`), and the buffer outlives them.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// Through a method, so closures capture the whole `SendPtr` (not its raw field).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Whether `layout`'s strides address every element of its shape exactly once (the axes of a
/// row-major buffer in some order, as `swap_dims` / `permute` leave them); not for broadcasts,
/// slices, flips and overlaps. Axes of size 1 take no part in the addressing.
fn is_dense_permutation(layout: &Layout) -> bool {
    let (dims, strides) = (layout.shape(), layout.strides());
    let mut axes: Vec<usize> = (0..dims.num_dims()).filter(|&a| dims[a] > 1).collect();
    axes.sort_by_key(|&a| std::cmp::Reverse(strides[a]));
    let mut expected = 1isize;
    for &axis in axes.iter().rev() {
        if strides[axis] != expected {
            return false;
        }
        expected *= dims[axis] as isize;
    }
    true
}

/// The operand swapped over its last two axes, as a view.
fn transposed(t: &FlexTensor) -> FlexTensor {
    let d = t.layout().num_dims();
    t.transpose(d - 2, d - 1)
}

#[derive(Debug)]
struct MatmulBackward;

/// What the backward pass keeps: `lhs` when `rhs` needs its gradient and `rhs` when `lhs` does
/// (as Burn's matmul), and both operands' layouts, in which their gradients are written.
#[derive(Debug, Clone)]
struct MatmulState {
    lhs: Option<FlexTensor>,
    rhs: Option<FlexTensor>,
    lhs_layout: Layout,
    rhs_layout: Layout,
}

impl Backward<Flex, 2> for MatmulBackward {
    type State = MatmulState;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad: FlexTensor = grads.consume::<Flex>(&ops.node);
        let state = ops.state;
        let [lhs_node, rhs_node] = &ops.parents;
        if let (Some(node), Some(rhs)) = (lhs_node, &state.rhs) {
            let d_lhs = gemm_flex(&grad, &transposed(rhs), Some(&state.lhs_layout));
            grads.register::<Flex>(node.id, d_lhs);
        }
        if let (Some(node), Some(lhs)) = (rhs_node, &state.lhs) {
            let d_rhs = gemm_flex(&transposed(lhs), &grad, Some(&state.rhs_layout));
            grads.register::<Flex>(node.id, d_rhs);
        }
    }
}

fn autodiff_matmul<const D: usize>(lhs: Tensor<Ad, D>, rhs: Tensor<Ad, D>) -> Tensor<Ad, D> {
    let (lhs, rhs) = (lhs.into_primitive().tensor(), rhs.into_primitive().tensor());
    let (lhs_tracked, rhs_tracked) = (lhs.is_tracked(), rhs.is_tracked());
    let out = gemm_flex(&lhs.primitive, &rhs.primitive, None);
    let out = match MatmulBackward
        .prepare::<NoCheckpointing>([lhs.node.clone(), rhs.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let state = MatmulState {
                lhs_layout: lhs.primitive.layout().clone(),
                rhs_layout: rhs.primitive.layout().clone(),
                lhs: rhs_tracked.then(|| lhs.primitive.clone()),
                rhs: lhs_tracked.then(|| rhs.primitive.clone()),
            };
            prep.finish(state, out)
        }
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Cpu;
    use burn::tensor::Distribution;

    type Train = Ad;

    fn random<B: Backend, const D: usize>(shape: [usize; D]) -> Tensor<B, D> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
    }

    fn assert_same<const D: usize>(got: Tensor<Cpu, D>, want: Tensor<Cpu, D>, what: &str) {
        assert_eq!(got.dims(), want.dims(), "{what}: shape");
        let (got, want) = (
            got.into_data().into_vec::<f32>().unwrap(),
            want.into_data().into_vec::<f32>().unwrap(),
        );
        let scale = want.iter().fold(1e-30f32, |m, v| m.max(v.abs()));
        let err = got
            .iter()
            .zip(&want)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            err / scale <= 1e-6,
            "{what}: relative error {}",
            err / scale
        );
    }

    /// Values against burn-flex's own matmul: contiguous, transposed and permuted operands,
    /// batched, and the shapes where `gemm` switches threading.
    #[test]
    fn products_match_burn_flex_on_strided_operands() {
        // The last two: one row and two rows times a weight large enough to be split between
        // the cores (a ragged last part of the columns included).
        for (m, k, n) in [
            (1, 7, 5),
            (3, 1, 4),
            (33, 65, 17),
            (200, 300, 250),
            (1, 512, 4113),
            (2, 1024, 2049),
        ] {
            let (a, b) = (random::<Cpu, 2>([m, k]), random::<Cpu, 2>([k, n]));
            assert_same(
                matmul(a.clone(), b.clone()),
                a.clone().matmul(b.clone()),
                "2d",
            );
            // Transposed views of other buffers, read in place.
            let (at, bt) = (
                random::<Cpu, 2>([k, m]).transpose(),
                random::<Cpu, 2>([n, k]).transpose(),
            );
            assert_same(
                matmul(at.clone(), bt.clone()),
                at.matmul(bt),
                "2d transposed",
            );
        }
        for batch in [[1, 1], [2, 3], [4, 2]] {
            let a = random::<Cpu, 4>([batch[0], batch[1], 19, 24]);
            let b = random::<Cpu, 4>([batch[1], batch[0], 24, 11]).swap_dims(0, 1);
            assert_same(
                matmul(a.clone(), b.clone()),
                a.matmul(b),
                "batched, permuted rhs",
            );
        }
        let empty = matmul(random::<Cpu, 2>([3, 0]), random::<Cpu, 2>([0, 4]));
        assert_same(empty, Tensor::zeros([3, 4], &Default::default()), "k = 0");
    }

    /// Gradients against Burn's autodiff matmul, for each operand tracked or frozen.
    #[test]
    fn gradients_match_burns_matmul() {
        for (lhs_grad, rhs_grad) in [(true, true), (true, false), (false, true)] {
            let a = random::<Train, 3>([2, 9, 13]);
            let b = random::<Train, 3>([2, 7, 13]).swap_dims(1, 2);
            let weights = random::<Train, 3>([2, 9, 7]).detach();
            let run = |ours: bool| {
                let a = if lhs_grad {
                    a.clone().require_grad()
                } else {
                    a.clone()
                };
                let b = if rhs_grad {
                    b.clone().detach().require_grad()
                } else {
                    b.clone().detach()
                };
                let y = if ours {
                    matmul(a.clone(), b.clone())
                } else {
                    a.clone().matmul(b.clone())
                };
                let grads = (y.clone() * weights.clone()).sum().backward();
                (y.inner(), a.grad(&grads), b.grad(&grads))
            };
            let (y, da, db) = run(true);
            let (y_ref, da_ref, db_ref) = run(false);
            assert_same(y, y_ref, "value");
            assert_eq!(da.is_some(), lhs_grad);
            assert_eq!(db.is_some(), rhs_grad);
            if let (Some(got), Some(want)) = (da, da_ref) {
                assert_same(got, want, "lhs gradient");
            }
            if let (Some(got), Some(want)) = (db, db_ref) {
                assert_same(got, want, "rhs gradient");
            }
        }
    }

    /// Another backend (here ndarray) and a broadcast batch take Burn's composite.
    #[test]
    fn other_backends_and_broadcasts_take_burns_matmul() {
        type Nd = burn::backend::NdArray;
        let (a, b) = (random::<Nd, 2>([5, 6]), random::<Nd, 2>([6, 3]));
        let diff = (matmul(a.clone(), b.clone()) - a.matmul(b))
            .abs()
            .max()
            .into_scalar();
        assert!(diff < 1e-5);
        let (a, b) = (random::<Cpu, 3>([4, 5, 6]), random::<Cpu, 3>([1, 6, 3]));
        assert_same(matmul(a.clone(), b.clone()), a.matmul(b), "broadcast rhs");
    }
}
