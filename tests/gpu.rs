//! The GPU-path suite: what the CPU tests check, on the device backends compiled in, fused
//! as the CLI runs them (`--features wgpu`: Vulkan, Metal, or Mesa's llvmpipe on a machine
//! without a GPU; `--features cuda`). Decoder and encoder parity with transformers on every fixture, the PEFT
//! adapters, exactness on real weights, KV-cache generation, RWKV6 parity (the `rwkv` package)
//! and training, the adapter/merge/regularizer foundation tests, six training steps of every
//! method against the CPU run, merge, export and resume.
//!
//! One test binary, so one process: the device backends compile each kernel once per process
//! (minutes on llvmpipe), and the tests here share those kernels. `scripts/gpu-check.sh` runs it.

#![cfg(any(feature = "wgpu", feature = "cuda"))]
// The CPU test binaries' files, compiled again here for the device backends.
#![allow(clippy::duplicate_mod)]

#[macro_use]
#[path = "support/gpu_backends.rs"]
mod gpu_backends;

/// Decoders: `tests/decoder/`'s generic tests (`backend_tests!`), instantiated per device.
#[path = "decoder"]
mod decoder {
    mod cache;
    #[allow(dead_code)]
    mod common;
    mod exactness;
    mod parity;
    mod peft_adapter;
    mod rwkv6;
    mod sliding_window;
}

/// Encoders: `tests/encoder/parity.rs` (BERT and RoBERTa parity, padding, SORSA merged, PEFT
/// LoRA with a trained head) per device.
#[path = "encoder"]
mod encoder {
    #[allow(dead_code)]
    mod common;
    mod parity;
}

/// Adapters, initialisation, merging, the SORSA regularizer: `tests/foundation/` on wgpu.
#[cfg(feature = "wgpu")]
#[path = "foundation"]
mod foundation_wgpu {
    type Inner = burn_peft::backend::WgpuFused;
    #[allow(dead_code)]
    mod common;
    mod config_errors;
    mod gradients;
    mod init_identity;
    mod lotr_sharing;
    mod merge;
    mod sorsa;
}

/// `tests/foundation/` on CUDA.
#[cfg(feature = "cuda")]
#[path = "foundation"]
mod foundation_cuda {
    type Inner = burn_peft::backend::CudaFused;
    #[allow(dead_code)]
    mod common;
    mod config_errors;
    mod gradients;
    mod init_identity;
    mod lotr_sharing;
    mod merge;
    mod sorsa;
}

#[path = "gpu/devices.rs"]
mod devices;
#[path = "gpu/fusion.rs"]
mod fusion;
#[path = "gpu/train.rs"]
mod train;
#[allow(dead_code)]
#[path = "train/common.rs"]
mod train_common;
