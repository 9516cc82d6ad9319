//! The single conversion point between Burn tensors and `faer` host matrices.
//!
//! Tensors of any float dtype (bf16, f16, f32) are read as f32; host matrices are written back in
//! the device's default float dtype.

use burn::tensor::{Tensor, TensorData, backend::Backend};
use faer::{Mat, MatRef};

/// Reads a rank-2 tensor into a host matrix of the same shape.
pub fn tensor_to_mat<B: Backend>(tensor: &Tensor<B, 2>) -> Mat<f32> {
    let [rows, cols] = tensor.dims();
    let values = tensor_to_vec(tensor.clone());
    Mat::from_fn(rows, cols, |i, j| values[i * cols + j])
}

/// Writes a host matrix to a rank-2 tensor on `device`.
pub fn mat_to_tensor<B: Backend>(mat: MatRef<'_, f32>, device: &B::Device) -> Tensor<B, 2> {
    let (rows, cols) = (mat.nrows(), mat.ncols());
    let mut values = Vec::with_capacity(rows * cols);
    for i in 0..rows {
        for j in 0..cols {
            values.push(mat[(i, j)]);
        }
    }
    Tensor::from_data(TensorData::new(values, [rows, cols]), device)
}

/// Reads any float tensor as a flat row-major `Vec<f32>`.
pub fn tensor_to_vec<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("a float tensor converted to f32 reads back as f32")
}

/// Writes a flat vector as a rank-1 tensor on `device`.
pub fn vec_to_tensor<B: Backend>(values: Vec<f32>, device: &B::Device) -> Tensor<B, 1> {
    let len = values.len();
    Tensor::from_data(TensorData::new(values, [len]), device)
}
