//! Adapters: the adapted linear layer and the five methods of METHODS.md.
//!
//! | method | trainable | frozen base |
//! |---|---|---|
//! | `lora` | A (kaiming), B (0) | W |
//! | `pissa` | A, B from the top-r SVD | W − BA |
//! | `sorsa` | A = V_rᵀ, S = σ_r, B = U_r | W − B diag(S) A |
//! | `lora_fa` | B only (A frozen: kaiming+QR, V_rᵀ, or V_rᵀ with split) | W (or W − BA) |
//! | `lotr` | shared L, R + one core per layer | W (or W − L G R) |

pub mod accounting;
pub mod config;
pub mod group;
pub mod init;
pub mod linear;
pub mod lora_fa;
pub mod lotr;
pub mod low_rank;
pub mod regularizer;
pub mod sorsa;
pub mod targets;

pub use accounting::ParamReport;
pub use config::{AdapterConfig, Init, Method, RegularizerMode};
pub use group::AdaptedGroup;
pub use init::AdapterInit;
pub use linear::{AdaptedLinear, Adapter, SharedFactors};
pub use targets::{TargetMatcher, Targets};

use burn::tensor::backend::Backend;

/// A module that holds adapted layers: what the regularizer, the LoRA-FA gradient correction and
/// merging walk over.
pub trait HasAdapters<B: Backend> {
    fn adapted_layers(&self) -> Vec<&AdaptedLinear<B>>;
}

impl<B: Backend> HasAdapters<B> for Vec<AdaptedLinear<B>> {
    fn adapted_layers(&self) -> Vec<&AdaptedLinear<B>> {
        self.iter().collect()
    }
}
