//! What burn-peft's CPU kernels share (the model-specific kernels — rotary embeddings, the
//! training loss, WKV — live beside their models), and the matrix product every model runs.

pub mod dispatch;
pub mod helper_thread;
pub mod matmul;
pub mod vector_math;
