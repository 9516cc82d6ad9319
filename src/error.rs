//! Error type shared by the library. Every variant names what the user has to fix.

use std::fmt;
use std::path::PathBuf;

/// Errors surfaced to users: each one names the offending field, file or tensor.
#[derive(Debug)]
pub enum Error {
    /// A configuration value is out of range or inconsistent.
    InvalidConfig {
        field: String,
        value: String,
        reason: String,
    },
    /// A configuration file could not be parsed.
    ConfigParse { path: PathBuf, message: String },
    /// Tensors that must agree in shape do not.
    Shape {
        what: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// A host linear-algebra routine failed (e.g. SVD did not converge).
    Linalg { op: &'static str, message: String },
    /// A checkpoint lacks a tensor the model needs.
    MissingTensor { path: PathBuf, name: String },
    /// A file is not what it claims to be (truncated, malformed header, wrong dtype, …).
    BadFile { path: PathBuf, message: String },
    /// A training step produced a non-finite loss or gradient norm; the run stopped before
    /// saving anything of that step.
    Diverged { step: usize, message: String },
    /// The device a run asked for is not on this machine (no driver, no such adapter).
    DeviceUnavailable { device: String, message: String },
    /// I/O on a named file. Displays as `{path}: {source}`; `source()` is `None`, so a printer
    /// that walks the cause chain (`anyhow`'s `{:#}`) shows the OS message once.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidConfig {
                field,
                value,
                reason,
            } => write!(f, "invalid value for `{field}`: {value} ({reason})"),
            Error::ConfigParse { path, message } => {
                write!(f, "cannot parse config {}: {message}", path.display())
            }
            Error::Shape {
                what,
                expected,
                found,
            } => write!(
                f,
                "shape mismatch for {what}: expected {expected:?}, found {found:?}"
            ),
            Error::Linalg { op, message } => write!(f, "linear algebra failure in {op}: {message}"),
            Error::MissingTensor { path, name } => {
                write!(f, "{}: missing tensor `{name}`", path.display())
            }
            Error::BadFile { path, message } => write!(f, "{}: {message}", path.display()),
            Error::Diverged { step, message } => {
                write!(f, "training diverged at step {step}: {message}")
            }
            Error::DeviceUnavailable { device, message } => {
                write!(f, "device `{device}` is not available: {message}")
            }
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

/// The message of every variant is complete in its `Display`, the OS error of [`Error::Io`]
/// included. No variant reports a `source()`: one that did would print its cause twice under a
/// chain printer such as `anyhow`'s `{:#}` (`…/config.json: No such file or directory (os error
/// 2): No such file or directory (os error 2)`).
impl std::error::Error for Error {}

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
