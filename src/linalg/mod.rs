//! Host-side linear algebra with `faer`: Burn has no SVD or QR, and adapter initialisation needs
//! both. Everything here works on `faer::Mat<f32>`; [`convert`] is the one place that moves data
//! between Burn tensors and host matrices.

pub mod convert;
pub mod gaussian;
pub mod layout;
pub mod qr;
pub mod svd;

pub use convert::{mat_to_tensor, tensor_to_mat, tensor_to_vec, vec_to_tensor};
pub use qr::orthonormalize_columns;
pub use svd::{SvdMode, SvdOptions, TruncatedSvd, truncated_svd};
