//! The error type of `softgfn-bench`.

/// What can go wrong in the harness.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// A malformed or inconsistent suite.
    #[error("suite: {0}")]
    Suite(String),
    /// A file-system error with its path.
    #[error("{action} {path}: {cause}")]
    Io {
        /// What was being done.
        action: String,
        /// The path.
        path: String,
        /// The underlying error (shown in the message, not chained again).
        cause: std::io::Error,
    },
    /// A results directory that cannot be used as asked.
    #[error("results directory {path}: {message}")]
    Results {
        /// The directory.
        path: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// Cells that failed.
    #[error("{failed} of {total} cells failed: {details}")]
    CellsFailed {
        /// Number of failed cells.
        failed: usize,
        /// Number of cells run.
        total: usize,
        /// The first failures with their error lines.
        details: String,
    },
    /// A plot could not be drawn.
    #[error("plot {path}: {message}")]
    Plot {
        /// Output file.
        path: String,
        /// Backend message.
        message: String,
    },
    /// An error of the training stack.
    #[error(transparent)]
    Train(#[from] softgfn_train::TrainError),
}

impl BenchError {
    /// An [`BenchError::Io`].
    pub fn io(action: &str, path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            action: action.into(),
            path: path.display().to_string(),
            cause: source,
        }
    }
}

/// Result alias of `softgfn-bench`.
pub type Result<T, E = BenchError> = std::result::Result<T, E>;
