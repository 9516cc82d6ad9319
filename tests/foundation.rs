//! Foundation tests: adapters, SVD initialisation, merging, the SORSA regularizer, accounting,
//! config validation and the CLI. One test binary (each binary links all of Burn); the tests
//! that compute with tensors run on both CPU backends (`flex::…`, `ndarray::…`); `tests/gpu.rs`
//! runs the same files on the device backends.

// The same test files are compiled once per backend (the `flex` and `ndarray` modules below).
#![allow(clippy::duplicate_mod)]

#[path = "foundation/cli.rs"]
mod cli;
#[path = "foundation/svd.rs"]
mod svd;

/// burn-flex, the shipped `cpu` device.
#[path = "foundation"]
mod flex {
    type Inner = burn_peft::backend::Cpu;
    mod common;
    mod config_errors;
    mod gradients;
    mod init_identity;
    mod lotr_sharing;
    mod merge;
    mod sorsa;
}

/// The legacy ndarray backend (`--device ndarray`).
#[path = "foundation"]
mod ndarray {
    type Inner = burn_peft::backend::Ndarray;
    mod common;
    mod config_errors;
    mod gradients;
    mod init_identity;
    mod lotr_sharing;
    mod merge;
    mod sorsa;
}
