//! burn-peft: parameter-efficient fine-tuning with SVD-based adapters on Burn.
//!
//! The crate is organised one concept per module:
//! - [`adapter`]: the adapted linear layer and the five methods (LoRA, PiSSA, SORSA, LoRA-FA,
//!   LoTR), their initialisation, merging, the SORSA regularizer and parameter accounting.
//! - [`linalg`]: host-side linear algebra (thin / randomized SVD, QR) with `faer`, and the single
//!   place where Burn tensors are converted to and from host matrices.
//! - [`backend`]: the only module that names concrete Burn backends.

pub mod adapter;
pub mod analysis;
pub mod backend;
pub mod data;
pub mod error;
pub mod eval;
pub mod io;
pub mod linalg;
pub mod model;
pub mod peft;
pub mod train;

pub use error::{Error, Result};
