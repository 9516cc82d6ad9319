//! What burn-peft's CPU kernels share (the model-specific kernels — rotary embeddings, the
//! training loss, WKV — live beside their models).

pub mod dispatch;
