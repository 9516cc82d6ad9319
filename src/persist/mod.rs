//! Adapters on disk: HF PEFT's folder layout, saved modules (`modules_to_save`), export as a
//! plain LoRA.
//!
//! - [`adapter`]: saving and loading burn-peft's adapters (every method) in HF PEFT's layout.
//! - [`peft`]: the folder itself (file names, writing it) and plain HF PEFT LoRA adapters.
//! - [`modules_to_save`]: whole modules (a trained head) saved next to the adapter factors.
//! - [`export`]: any burn-peft adapter converted into a plain LoRA on the original base.
//! - [`apply`]: an adapter folder put on a model loaded from any supported path.
//!
//! This layer sits above [`crate::model`]; the checkpoint reader and writer below the models
//! live in [`crate::io`].

pub mod adapter;
pub mod apply;
pub mod export;
pub mod modules_to_save;
pub mod peft;

pub use apply::{load_with_adapter, load_with_adapter_as};
