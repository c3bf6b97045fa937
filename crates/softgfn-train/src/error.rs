//! The error type of `softgfn-train`.

use softgfn_core::CoreError;
use softgfn_nn::NnError;

/// Everything that can go wrong while configuring, training or evaluating.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// An environment-side error.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// A tensor-side error.
    #[error(transparent)]
    Nn(#[from] NnError),
    /// A configuration value out of range.
    #[error("invalid value for `{field}`: {value}; expected {expected}")]
    InvalidValue {
        /// Dotted config key (e.g. `algo.learning_rate`).
        field: String,
        /// The value given.
        value: String,
        /// The allowed range or set.
        expected: String,
    },
    /// A run directory that cannot be used (missing, half-written, corrupt files).
    #[error("cannot use the run directory {path}: {message}")]
    RunDir {
        /// The directory.
        path: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// A configuration that does not parse (unknown keys, wrong types, bad TOML).
    #[error("bad configuration{}: {message}", section.as_ref().map(|s| format!(" in [{s}]")).unwrap_or_default())]
    Config {
        /// The section (`algo`, `env`, `eval`) when known.
        section: Option<String>,
        /// The parser's message, naming the key and the valid keys.
        message: String,
    },
    /// No algorithm with this name is registered.
    #[error("unknown algorithm `{name}`; available: {available}")]
    UnknownAlgorithm {
        /// The name asked for.
        name: String,
        /// Comma-separated registered names.
        available: String,
    },
    /// Two algorithm registrations share a name.
    #[error("algorithm name `{name}` is registered twice: by {first} and by {second}")]
    DuplicateAlgorithm {
        /// The clashing name.
        name: String,
        /// First source.
        first: String,
        /// Second source.
        second: String,
    },
    /// A combination the algorithm does not support.
    #[error("{algo}: {message}")]
    Unsupported {
        /// Algorithm name.
        algo: String,
        /// What is not supported and what to do instead.
        message: String,
    },
    /// A NaN or infinite value appeared during training.
    #[error("non-finite {what} at iteration {iteration}: {value}")]
    NonFinite {
        /// Which quantity.
        what: String,
        /// Iteration.
        iteration: u64,
        /// The value.
        value: f64,
    },
    /// A checkpoint that cannot be used: missing, truncated, corrupt, of another format version,
    /// or of another run.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The checkpoint directory or file.
        path: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// A TensorBoard event file that does not read back: a CRC mismatch, a truncated record or
    /// an undecodable event.
    #[error("corrupt TensorBoard event file {path}: {message}")]
    EventFile {
        /// The event file.
        path: String,
        /// What is wrong and where (byte offset).
        message: String,
    },
    /// A file-system error, with the path involved.
    #[error("{action} {path}: {cause}")]
    Io {
        /// What was being done ("cannot write", ...).
        action: String,
        /// The path.
        path: String,
        /// The underlying error (shown in the message, not chained again).
        cause: std::io::Error,
    },
}

impl TrainError {
    /// An [`TrainError::InvalidValue`].
    pub fn invalid(field: &str, value: impl std::fmt::Display, expected: &str) -> Self {
        Self::InvalidValue {
            field: field.into(),
            value: value.to_string(),
            expected: expected.into(),
        }
    }

    /// An [`TrainError::Io`] for `path`.
    pub fn io(action: &str, path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            action: action.into(),
            path: path.display().to_string(),
            cause: source,
        }
    }
}

/// Result alias of `softgfn-train`.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
