//! Foundation tests: adapters, SVD initialisation, merging, the SORSA regularizer, accounting,
//! config validation and the CLI. One test binary (each binary links all of Burn).

#[path = "foundation/common.rs"]
mod common;

#[path = "foundation/cli.rs"]
mod cli;
#[path = "foundation/config_errors.rs"]
mod config_errors;
#[path = "foundation/gradients.rs"]
mod gradients;
#[path = "foundation/init_identity.rs"]
mod init_identity;
#[path = "foundation/lotr_sharing.rs"]
mod lotr_sharing;
#[path = "foundation/merge.rs"]
mod merge;
#[path = "foundation/sorsa.rs"]
mod sorsa;
#[path = "foundation/svd.rs"]
mod svd;
