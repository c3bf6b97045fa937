//! Environment-specific evaluation metrics: the [`Monitor`] an environment hands out through
//! [`Environment::monitor`](crate::Environment::monitor).
//!
//! Some benchmarks are judged by numbers only the environment knows how to compute: the
//! bit-sequence task counts the modes found by the training samples so far and the Spearman
//! correlation between `log R(x)` and the policy's estimated `log p(x)` on a fixed test set. A
//! monitor is the seam for them. The trainer
//!
//! 1. asks the environment for one monitor when it is built;
//! 2. calls [`Monitor::observe`] after every training iteration with that iteration's terminal
//!    states (cumulative metrics such as "modes found" are updated there);
//! 3. calls [`Monitor::evaluate`] at every evaluation with the current policy as a [`LogPf`]
//!    closure, and writes the returned `(name, value)` pairs into the evaluation record next to
//!    the exact metrics (`metrics.jsonl`: `{"iteration": 100, ..., "modes_found": 12,
//!    "spearman": 0.41}`);
//! 4. stores [`Monitor::save`] in every checkpoint and hands it back to [`Monitor::restore`] on
//!    resume, so a resumed run reports the same numbers as an uninterrupted one.
//!
//! Metric names are stable identifiers (lowercase letters, digits and `_`) that must not clash
//! with the record's own columns (`iteration`, `exact_l1`, ...).
//!
//! ```
//! use softgfn_core::{LogPf, Monitor, Result, StateValue};
//!
//! /// Counts the distinct terminal states seen so far.
//! #[derive(Default)]
//! struct Distinct(std::collections::BTreeSet<Vec<StateValue>>, usize);
//!
//! impl Monitor for Distinct {
//!     fn observe(&mut self, terminals: &[StateValue]) -> Result<()> {
//!         for row in terminals.chunks_exact(self.1) {
//!             self.0.insert(row.to_vec());
//!         }
//!         Ok(())
//!     }
//!     fn evaluate(&mut self, _log_pf: &mut LogPf<'_>) -> Result<Vec<(String, f64)>> {
//!         Ok(vec![("distinct".into(), self.0.len() as f64)])
//!     }
//!     fn save(&self) -> Vec<u8> {
//!         self.0.iter().flatten().flat_map(|v| v.to_le_bytes()).collect()
//!     }
//!     fn restore(&mut self, bytes: &[u8]) -> Result<()> {
//!         let values: Vec<StateValue> = bytes
//!             .chunks_exact(4)
//!             .map(|b| StateValue::from_le_bytes([b[0], b[1], b[2], b[3]]))
//!             .collect();
//!         self.0 = values.chunks_exact(self.1).map(<[_]>::to_vec).collect();
//!         Ok(())
//!     }
//! }
//!
//! let mut m = Distinct(Default::default(), 2);
//! m.observe(&[1, 2, 3, 4, 1, 2])?;
//! let mut no_policy = |_: &[StateValue], _: &[u32], _: &mut [f64]| Ok(());
//! assert_eq!(m.evaluate(&mut no_policy)?, [("distinct".to_string(), 2.0)]);
//! let mut resumed = Distinct(Default::default(), 2);
//! resumed.restore(&m.save())?;
//! assert_eq!(resumed.evaluate(&mut no_policy)?, [("distinct".to_string(), 2.0)]);
//! # Ok::<(), softgfn_core::CoreError>(())
//! ```

use crate::env::StateValue;
use crate::error::Result;

/// The current forward policy as seen by a [`Monitor`]: given a batch of state rows
/// (`rows * state_width` values) and one forward action per row, write
/// `log P_F(action | state)` of each row into the output (`rows` values).
///
/// The trainer's closure evaluates the policy in evaluation mode (no exploration, no dropout);
/// an action that is invalid in its state gets `-inf`.
pub type LogPf<'a> = dyn FnMut(&[StateValue], &[u32], &mut [f64]) -> Result<()> + 'a;

/// Environment-specific evaluation metrics with state kept across a run (see the module docs).
///
/// Object safe: the trainer stores a `Box<dyn Monitor>`. Implementations must be deterministic
/// (any randomness is drawn from a generator derived from the environment's own seed, fresh at
/// every evaluation or saved by [`Monitor::save`]) so that a run is reproducible and resumable.
pub trait Monitor: Send {
    /// Observes the terminal states of one training iteration (rows of `spec().state_width`
    /// values, one per sampled trajectory).
    ///
    /// # Errors
    /// A malformed batch (wrong length, non-terminal rows); nothing of the batch is counted then.
    fn observe(&mut self, terminals: &[StateValue]) -> Result<()>;

    /// Computes the metrics of the current policy, given as `log_pf`; returns `(name, value)`
    /// pairs with the same names at every call. Calling it does not change what later calls
    /// return for the same policy and observations.
    ///
    /// # Errors
    /// An error of `log_pf` (passed through) or a metric that cannot be computed.
    fn evaluate(&mut self, log_pf: &mut LogPf<'_>) -> Result<Vec<(String, f64)>>;

    /// The cumulative state (e.g. which modes were found), as bytes for a checkpoint.
    fn save(&self) -> Vec<u8>;

    /// Restores a state returned by [`Monitor::save`] of a monitor of the same environment
    /// instance.
    ///
    /// # Errors
    /// Bytes that do not decode or belong to another instance (e.g. another number of modes).
    fn restore(&mut self, bytes: &[u8]) -> Result<()>;
}
