//! The crate's single error type.

use std::path::PathBuf;

/// Everything that can go wrong in `softgfn-nn`.
///
/// Messages are lowercase and say what was expected and what was found, so they can be shown to a
/// user as they are (e.g. wrapped by a CLI's `anyhow` context).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NnError {
    /// A buffer or tensor does not have the size or shape the network expects.
    #[error("shape mismatch for {what}: expected {expected}, found {found}")]
    Shape {
        /// What was being checked (e.g. `input`, `gradient of head \`pf\``).
        what: String,
        /// The expected shape or length.
        expected: String,
        /// The shape or length that was given.
        found: String,
    },
    /// The requested device is valid but not usable in this build or on this machine.
    #[error("device `{requested}` is unavailable: {reason}")]
    DeviceUnavailable {
        /// The device as written by the user (e.g. `cuda:1`).
        requested: String,
        /// Why it cannot be used and what to do about it.
        reason: String,
    },
    /// A device string that is not one of the accepted forms.
    #[error("unknown device `{input}`: expected `cpu`, `cuda` or `cuda:<index>`")]
    UnknownDevice {
        /// The string that failed to parse.
        input: String,
    },
    /// A learning-rate override named a parameter group that does not exist.
    #[error("unknown parameter group `{name}`: valid groups are {}", .valid.join(", "))]
    UnknownGroup {
        /// The group name that was given.
        name: String,
        /// The groups this model has.
        valid: Vec<String>,
    },
    /// The network or optimizer specification is unusable (zero sizes, no heads, duplicate
    /// names, a negative learning rate, ...).
    #[error("invalid network or optimizer spec: {0}")]
    InvalidSpec(String),
    /// A named parameter (or optimizer tensor) is missing, unknown or malformed.
    #[error("parameter `{name}`: {problem}")]
    Parameter {
        /// The parameter's name, e.g. `torso.0.weight`.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Two models that must have the same architecture do not.
    #[error("incompatible models: {0}")]
    Incompatible(String),
    /// An argument outside its valid range (e.g. a Polyak `tau` outside `[0, 1]`).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Reading or writing a file failed.
    #[error("i/o error on {}: {source}", .path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file exists but is not a valid parameter file for this model.
    #[error("invalid safetensors file {}: {reason}", .path.display())]
    Format {
        /// The file involved.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// `backward` was called without a preceding `forward_train` (or the pending forward was
    /// discarded because the parameters changed in between).
    #[error(
        "no pending forward pass: expected `forward_train` before `backward` (parameter updates discard a pending forward pass)"
    )]
    NoPendingForward,
    /// The tensor backend (dfdx) reported an error, e.g. out of memory.
    #[error("tensor backend error: {0}")]
    Backend(String),
}

/// Converts a dfdx device error into [`NnError::Backend`].
pub(crate) fn backend_err<E: std::fmt::Display>(e: E) -> NnError {
    NnError::Backend(e.to_string())
}
