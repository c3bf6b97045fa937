//! The `bitseq` parameters and their validation.

use serde::{Deserialize, Serialize};
use softgfn_core::{CoreError, Result};

use crate::NAME;

/// The paper's block alphabet `H`: modes are concatenations of these 8-bit blocks.
pub const DEFAULT_ALPHABET: [&str; 5] =
    ["00000000", "11111111", "11110000", "00001111", "00111100"];

/// Largest word length `k` (tokens stay small and the action space stays below 2^24 rows).
pub const MAX_K: usize = 16;

/// Largest one-hot feature width `(n/k + 1) * (2^k + 2)` (it also bounds the action space).
pub const MAX_FEATURE_DIM: usize = 1 << 24;

/// Largest number of modes.
pub const MAX_MODES: usize = 1 << 20;

/// Largest `spearman_rounds` (construction orders per test string of the Spearman metric).
pub const MAX_SPEARMAN_ROUNDS: usize = 10_000;

/// `bitseq` parameters (the `[env]` table of a run config).
///
/// | Name | Default | Meaning | Range |
/// |---|---|---|---|
/// | `n` | 120 | string length in bits | >= 1, with `(n/k + 1) * (2^k + 2) <= 2^24` |
/// | `k` | 8 | bits per word (one action writes one word) | 1..=16, divides `n` |
/// | `beta` | 2.0 | reward exponent: `log R(x) = -beta * min_m Hamming(x, m)` | finite, > 0 |
/// | `num_modes` | 60 | number of modes `|M|` | 1..=1048576 |
/// | `block_len` | 8 | bits per block of a mode | >= 1, divides `n` |
/// | `alphabet` | `["00000000", "11111111", "11110000", "00001111", "00111100"]` | block alphabet `H` | non-empty; strings of `block_len` characters `0`/`1` |
/// | `mode_seed` | 0 | seed of the mode set (and of the test set), independent of the training seed | any `u64` |
/// | `mode_threshold` | 30 | a mode is found once a sample lies within this Hamming distance | >= 0 (>= `n` finds every mode at the first sample) |
/// | `spearman_rounds` | 10 | construction orders per test string in the `log p̂` estimate of the `spearman` metric | 1..=10000 |
/// | `spearman_strings` | 0 | evaluate `spearman` on the first this many test strings; 0 for all `n * num_modes` | 0, or 2..=`n * num_modes` |
/// | `spearman_every` | 0 | training strings between `spearman` evaluations: computed at the first evaluation, then at the first evaluation after every further `spearman_every` strings; 0 for every evaluation | >= 0 |
///
/// Each evaluation of `spearman` runs the policy on `strings * spearman_rounds * n/k` states
/// (1,080,000 for the paper's 7,200 strings); CPU runs may lower `spearman_strings`. The test
/// strings are ordered mode by mode (each mode, then copies with 1, 2, ... flipped bits), so the
/// first `spearman_strings` strings cover the first `ceil(spearman_strings / n)` modes at every
/// distance. A long run can also evaluate `spearman` less often than `modes_found`: with 16
/// trajectories per iteration, `spearman_every = 160000` computes it at iterations 0, 10k, 20k,
/// ... when those are evaluation iterations (keep `checkpoint_every` a multiple of the evaluation
/// interval, so that a resumed run computes it at the same iterations).
///
/// The mode set is drawn from `softgfn_core::rng::stream(mode_seed, Stream::Environment)`; see
/// [`crate::ModeSet::generate`]. Small instances need a matching alphabet, e.g. `n = 12`, `k = 3`,
/// `block_len = 4`, `alphabet = ["0000", "1111", "1100", "0011"]`, `mode_threshold = 3`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BitseqConfig {
    /// String length in bits.
    pub n: usize,
    /// Bits per word.
    pub k: usize,
    /// Reward exponent `beta`.
    pub beta: f64,
    /// Number of modes.
    pub num_modes: usize,
    /// Bits per block of a mode.
    pub block_len: usize,
    /// Block alphabet: bit strings of `block_len` characters `0`/`1`.
    pub alphabet: Vec<String>,
    /// Seed of the mode set (separate from the training seed).
    pub mode_seed: u64,
    /// Hamming radius of the "modes found" metric.
    pub mode_threshold: usize,
    /// Construction orders per test string of the `spearman` metric's `log p̂` estimate.
    pub spearman_rounds: usize,
    /// Number of test strings of the `spearman` metric (the first ones); 0 for all.
    pub spearman_strings: usize,
    /// Training strings between evaluations of `spearman`; 0 for every evaluation.
    pub spearman_every: u64,
}

impl Default for BitseqConfig {
    fn default() -> Self {
        Self {
            n: 120,
            k: 8,
            beta: 2.0,
            num_modes: 60,
            block_len: 8,
            alphabet: DEFAULT_ALPHABET.iter().map(|s| s.to_string()).collect(),
            mode_seed: 0,
            mode_threshold: 30,
            spearman_rounds: crate::metrics::DEFAULT_LOG_P_HAT_ROUNDS,
            spearman_strings: 0,
            spearman_every: 0,
        }
    }
}

pub(crate) fn invalid(field: &str, value: impl std::fmt::Display, expected: &str) -> CoreError {
    CoreError::InvalidParameter {
        env: NAME.into(),
        field: field.into(),
        value: value.to_string(),
        expected: expected.into(),
    }
}

/// Checks the string length `n` and the word length `k` (shared with hand-made mode sets).
pub(crate) fn check_shape(n: usize, k: usize) -> Result<()> {
    if n == 0 {
        return Err(invalid("n", n, "an integer >= 1"));
    }
    if k == 0 || k > MAX_K {
        return Err(invalid("k", k, &format!("an integer in 1..={MAX_K}")));
    }
    if !n.is_multiple_of(k) {
        return Err(invalid(
            "k",
            k,
            &format!("a divisor of n = {n} (the string is split into n/k words)"),
        ));
    }
    let fits = (n / k + 1)
        .checked_mul((1usize << k) + 2)
        .is_some_and(|f| f <= MAX_FEATURE_DIM);
    if !fits {
        return Err(invalid(
            "n",
            n,
            &format!(
                "a length with (n/k + 1) * (2^k + 2) <= {MAX_FEATURE_DIM} (here k = {k}); the \
                 action space and the features grow with it"
            ),
        ));
    }
    Ok(())
}

impl BitseqConfig {
    /// Checks every field; the error names the field, the value and the allowed range.
    pub fn validate(&self) -> Result<()> {
        check_shape(self.n, self.k)?;
        if !(self.beta.is_finite() && self.beta > 0.0) {
            return Err(invalid("beta", self.beta, "a finite number > 0"));
        }
        if self.num_modes == 0 || self.num_modes > MAX_MODES {
            return Err(invalid(
                "num_modes",
                self.num_modes,
                &format!("an integer in 1..={MAX_MODES}"),
            ));
        }
        if self.block_len == 0 || !self.n.is_multiple_of(self.block_len) {
            return Err(invalid(
                "block_len",
                self.block_len,
                &format!(
                    "a divisor of n = {} (a mode is n / block_len blocks)",
                    self.n
                ),
            ));
        }
        if self.alphabet.is_empty() {
            return Err(invalid(
                "alphabet",
                "[]",
                "a non-empty list of bit strings of block_len characters",
            ));
        }
        if self.spearman_rounds == 0 || self.spearman_rounds > MAX_SPEARMAN_ROUNDS {
            return Err(invalid(
                "spearman_rounds",
                self.spearman_rounds,
                &format!("an integer in 1..={MAX_SPEARMAN_ROUNDS}"),
            ));
        }
        let test_strings = self.n.saturating_mul(self.num_modes);
        if self.spearman_strings == 1 || self.spearman_strings > test_strings {
            return Err(invalid(
                "spearman_strings",
                self.spearman_strings,
                &format!(
                    "0 (all) or an integer in 2..={test_strings} (the test set has n * \
                     num_modes = {} * {} strings; a correlation needs at least 2)",
                    self.n, self.num_modes
                ),
            ));
        }
        for (i, s) in self.alphabet.iter().enumerate() {
            if s.len() != self.block_len || !s.bytes().all(|c| c == b'0' || c == b'1') {
                return Err(invalid(
                    "alphabet",
                    format!("{s:?} (entry {i})"),
                    &format!(
                        "bit strings of exactly block_len = {} characters `0` or `1`",
                        self.block_len
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The alphabet as bits (`0`/`1` values), after validation.
    pub fn alphabet_bits(&self) -> Result<Vec<Vec<u8>>> {
        self.validate()?;
        Ok(self
            .alphabet
            .iter()
            .map(|s| s.bytes().map(|c| c - b'0').collect())
            .collect())
    }
}
