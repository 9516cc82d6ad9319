//! The one place where weight layouts are converted. HF/PyTorch store a linear map's weight as
//! `[out, in]` (`y = x Wᵀ`); Burn's `Linear` stores `[in, out]` (`y = x W`). Every weight crossing
//! that boundary (checkpoint load, adapter export, PEFT `lora_A`/`lora_B`) goes through these two
//! functions, and everything inside the crate is in Burn layout.

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::{Tensor, backend::Backend};

/// `[out, in]` (HF) → `[in, out]` (Burn), materialised in row-major order.
pub fn hf_to_burn<B: Backend>(weight: Tensor<B, 2>) -> Tensor<B, 2> {
    contiguous_transpose(weight)
}

/// `[in, out]` (Burn) → `[out, in]` (HF), materialised in row-major order.
pub fn burn_to_hf<B: Backend>(weight: Tensor<B, 2>) -> Tensor<B, 2> {
    contiguous_transpose(weight)
}

/// A transpose that owns row-major data. A plain `transpose()` is a strided view, and backends
/// copy a strided matmul operand on every call (the ndarray backend does): done once at load,
/// instead of on every forward.
fn contiguous_transpose<B: Backend>(weight: Tensor<B, 2>) -> Tensor<B, 2> {
    let [rows, cols] = weight.dims();
    weight
        .transpose()
        .reshape([rows * cols])
        .reshape([cols, rows])
}

/// A Burn `Linear` from an HF-layout weight `[out, in]` and optional bias `[out]`.
pub fn linear_from_hf<B: Backend>(weight: Tensor<B, 2>, bias: Option<Tensor<B, 1>>) -> Linear<B> {
    Linear {
        weight: Param::from_tensor(hf_to_burn(weight).detach()),
        bias: bias.map(|b| Param::from_tensor(b.detach())),
    }
}
