//! Error type shared by the library. Every variant names what the user has to fix.

use std::path::PathBuf;

/// Errors surfaced to users: each one names the offending field, file or tensor.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is out of range or inconsistent.
    #[error("invalid value for `{field}`: {value} ({reason})")]
    InvalidConfig {
        field: String,
        value: String,
        reason: String,
    },
    /// A configuration file could not be parsed.
    #[error("cannot parse config {path}: {message}")]
    ConfigParse { path: PathBuf, message: String },
    /// Tensors that must agree in shape do not.
    #[error("shape mismatch for {what}: expected {expected:?}, found {found:?}")]
    Shape {
        what: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// A host linear-algebra routine failed (e.g. SVD did not converge).
    #[error("linear algebra failure in {op}: {message}")]
    Linalg { op: &'static str, message: String },
    /// A checkpoint lacks a tensor the model needs.
    #[error("{path}: missing tensor `{name}`")]
    MissingTensor { path: PathBuf, name: String },
    /// A file is not what it claims to be (truncated, malformed header, wrong dtype, …).
    #[error("{path}: {message}")]
    BadFile { path: PathBuf, message: String },
    /// A training step produced a non-finite loss or gradient norm; the run stopped before
    /// saving anything of that step.
    #[error("training diverged at step {step}: {message}")]
    Diverged { step: usize, message: String },
    /// The device a run asked for is not on this machine (no driver, no such adapter).
    #[error("device `{device}` is not available: {message}")]
    DeviceUnavailable { device: String, message: String },
    /// I/O on a named file. The OS error is part of the message and not reported as a
    /// `source()` (a field named `source` would be): a chain printer such as anyhow's `{:#}`
    /// would print it twice (`…/config.json: No such file or directory (os error 2): No such
    /// file or directory (os error 2)`).
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// A peer of a data-parallel run was lost, stalled past the timeout or sent something
    /// unexpected.
    #[error("lost peer rank {rank} ({address}): {message}")]
    Peer {
        rank: usize,
        address: String,
        message: String,
    },
    /// A data-parallel group could not be formed: master unreachable, port in use, members that
    /// disagree on what they run.
    #[error("distributed run: {message}")]
    Distributed { message: String },
}

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::InvalidConfig`].
    pub fn invalid(
        field: impl Into<String>,
        value: impl ToString,
        reason: impl Into<String>,
    ) -> Self {
        Error::InvalidConfig {
            field: field.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// A configuration error about layer `name` says so; other errors pass unchanged.
    pub fn in_layer(self, name: &str) -> Self {
        match self {
            Error::InvalidConfig {
                field,
                value,
                reason,
            } => Error::InvalidConfig {
                field,
                value,
                reason: format!("{reason} (layer {name})"),
            },
            other => other,
        }
    }
}
