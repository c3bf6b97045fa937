//! The mode set `M`, the Spearman test set built around it and the "modes found" tracker.

use softgfn_core::rng::{Rng, Stream, below, stream};
use softgfn_core::{CoreError, Result, StateValue};

use crate::config::{BitseqConfig, check_shape, invalid};
use crate::shape::Shape;

/// A set of mode strings of `n` bits, stored as `n/k` words of `k` bits each (the words of the
/// environment's state rows, most significant bit first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModeSet {
    shape: Shape,
    /// `len() * n/k` words, mode after mode.
    words: Vec<u32>,
}

impl ModeSet {
    /// Generates the mode set of a configuration, reproducibly from `mode_seed`.
    ///
    /// Exactly: `rng = softgfn_core::rng::stream(mode_seed, Stream::Environment)`; then for each
    /// mode `i` in `0..num_modes`, for each block `j` in `0..n / block_len`, one draw
    /// `h = softgfn_core::rng::below(&mut rng, alphabet.len())` picks the block `alphabet[h]`;
    /// the mode is the concatenation of its blocks in order (draws with replacement, as in the
    /// paper's code: two modes may coincide, each still counts as one mode). Nothing else is
    /// drawn from that stream.
    pub fn generate(config: &BitseqConfig) -> Result<Self> {
        let alphabet = config.alphabet_bits()?;
        let shape = Shape::new(config.n, config.k);
        let blocks = config.n / config.block_len;
        let mut rng = stream(config.mode_seed, Stream::Environment);
        let mut words = Vec::with_capacity(config.num_modes * shape.l);
        let mut bits = Vec::with_capacity(config.n);
        for _ in 0..config.num_modes {
            bits.clear();
            for _ in 0..blocks {
                let h = below(&mut rng, alphabet.len() as u64) as usize;
                bits.extend_from_slice(&alphabet[h]);
            }
            words.extend(shape.words_of_bits(&bits));
        }
        Ok(Self { shape, words })
    }

    /// A mode set from explicit bit strings (values 0/1, `n` each), for `n`-bit strings in words
    /// of `k` bits. An empty list is allowed (nothing can be found).
    pub fn from_bits(n: usize, k: usize, modes: &[Vec<u8>]) -> Result<Self> {
        check_shape(n, k)?;
        let shape = Shape::new(n, k);
        let mut words = Vec::with_capacity(modes.len() * shape.l);
        for (i, m) in modes.iter().enumerate() {
            if m.len() != n || m.iter().any(|&b| b > 1) {
                return Err(invalid(
                    "modes",
                    format!("entry {i} ({} values)", m.len()),
                    &format!("bit strings of n = {n} values 0 or 1"),
                ));
            }
            words.extend(shape.words_of_bits(m));
        }
        Ok(Self { shape, words })
    }

    /// Number of modes.
    pub fn len(&self) -> usize {
        self.words.len() / self.shape.l
    }

    /// Whether there is no mode.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// String length in bits.
    pub fn n(&self) -> usize {
        self.shape.n
    }

    /// Bits per word.
    pub fn k(&self) -> usize {
        self.shape.k
    }

    /// Words per string (`n / k`).
    pub fn num_words(&self) -> usize {
        self.shape.l
    }

    /// The words of mode `i` (`n / k` values in `0..2^k`).
    pub fn words(&self, i: usize) -> &[u32] {
        &self.words[i * self.shape.l..(i + 1) * self.shape.l]
    }

    /// The bits of mode `i` (`n` values 0/1).
    pub fn bits(&self, i: usize) -> Vec<u8> {
        self.shape.bits_of_words(self.words(i).iter().copied())
    }

    /// The complete state row of mode `i` (BOS then its words).
    pub fn state_row(&self, i: usize) -> Vec<StateValue> {
        let mut row = Vec::with_capacity(self.shape.width());
        row.push(self.shape.bos());
        row.extend(self.words(i).iter().map(|&w| w as StateValue));
        row
    }

    /// Hamming distance (in bits) between mode `i` and a string given by its `n / k` words
    /// (positions `1..` of a complete state row, assumed valid).
    pub fn distance(&self, i: usize, words: &[StateValue]) -> u32 {
        self.words(i)
            .iter()
            .zip(words)
            .map(|(&m, &w)| (m ^ w as u32).count_ones())
            .sum()
    }

    /// `min_m Hamming(x, m)` over the modes (`u32::MAX` for an empty set).
    pub fn min_distance(&self, words: &[StateValue]) -> u32 {
        (0..self.len())
            .map(|i| self.distance(i, words))
            .min()
            .unwrap_or(u32::MAX)
    }

    /// The Spearman test set: for each mode in order, the mode itself (`flips = 0`) and, for
    /// `c = 1..n-1`, one copy with `c` distinct bits flipped, `n * len()` strings in all.
    ///
    /// Exactly: for each mode, then each `c` in `1..n`, a partial Fisher-Yates shuffle of the bit
    /// positions `0..n` (for `t` in `0..c`: `j = t + below(rng, n - t)`, swap `t` and `j`) picks
    /// the `c` flipped positions (the first `c`). [`crate::Bitseq::test_set`] passes
    /// `stream(mode_seed, Stream::Eval)`.
    pub fn test_set(&self, rng: &mut Rng) -> TestSet {
        let (n, k, w) = (self.shape.n, self.shape.k, self.shape.width());
        let count = n * self.len();
        let mut states = Vec::with_capacity(count * w);
        let mut mode = Vec::with_capacity(count);
        let mut flips = Vec::with_capacity(count);
        let mut positions: Vec<usize> = (0..n).collect();
        for i in 0..self.len() {
            let row = self.state_row(i);
            states.extend_from_slice(&row);
            mode.push(i as u32);
            flips.push(0);
            for c in 1..n {
                for t in 0..c {
                    let j = t + below(rng, (n - t) as u64) as usize;
                    positions.swap(t, j);
                }
                let start = states.len();
                states.extend_from_slice(&row);
                let r = &mut states[start..start + w];
                for &bit in &positions[..c] {
                    r[1 + bit / k] ^= 1 << (k - 1 - bit % k);
                }
                mode.push(i as u32);
                flips.push(c as u32);
            }
        }
        TestSet {
            width: w,
            states,
            mode,
            flips,
        }
    }

    fn check_rows(&self, what: &str, states: &[StateValue]) -> Result<usize> {
        let w = self.shape.width();
        if !states.len().is_multiple_of(w) {
            return Err(CoreError::BufferLength {
                what: format!("{what} of bitseq (rows of width {w})"),
                expected: states.len().div_ceil(w) * w,
                found: states.len(),
            });
        }
        Ok(states.len() / w)
    }
}

/// The test set of the Spearman metric (see [`ModeSet::test_set`]): complete state rows with the
/// mode each was made from and its number of flipped bits (its Hamming distance to that mode).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestSet {
    /// Tokens per row (`n/k + 1`).
    pub width: usize,
    /// The strings as complete state rows, `len() * width` values.
    pub states: Vec<StateValue>,
    /// The mode each string was made from.
    pub mode: Vec<u32>,
    /// The number of flipped bits of each string (0 for the mode itself).
    pub flips: Vec<u32>,
}

impl TestSet {
    /// Number of strings.
    pub fn len(&self) -> usize {
        self.mode.len()
    }

    /// Whether the test set is empty.
    pub fn is_empty(&self) -> bool {
        self.mode.is_empty()
    }

    /// State row of string `i`.
    pub fn row(&self, i: usize) -> &[StateValue] {
        &self.states[i * self.width..(i + 1) * self.width]
    }
}

/// The cumulative "modes found" metric: a mode counts as found once any observed string lies
/// within Hamming distance `threshold` of it (`<=`), and stays found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModeTracker {
    modes: ModeSet,
    threshold: u32,
    found: Vec<bool>,
    num_found: usize,
    observed: u64,
}

impl ModeTracker {
    /// A tracker with nothing found yet.
    pub fn new(modes: ModeSet, threshold: usize) -> Self {
        let found = vec![false; modes.len()];
        Self {
            threshold: u32::try_from(threshold).unwrap_or(u32::MAX),
            modes,
            found,
            num_found: 0,
            observed: 0,
        }
    }

    /// Observes a batch of terminal states (complete rows, `rows * (n/k + 1)` values) and
    /// returns how many modes this batch found for the first time. Incomplete or malformed rows
    /// are errors (and nothing of the batch is counted).
    pub fn observe(&mut self, states: &[StateValue]) -> Result<usize> {
        let rows = self
            .modes
            .check_rows("states of ModeTracker::observe", states)?;
        let w = self.modes.shape.width();
        for s in states.chunks_exact(w) {
            self.modes.shape.complete_words(s, "ModeTracker::observe")?;
        }
        let before = self.num_found;
        for s in states.chunks_exact(w) {
            if self.num_found == self.found.len() {
                break;
            }
            let words = &s[1..];
            for (i, f) in self.found.iter_mut().enumerate() {
                if !*f && self.modes.distance(i, words) <= self.threshold {
                    *f = true;
                    self.num_found += 1;
                }
            }
        }
        self.observed += rows as u64;
        Ok(self.num_found - before)
    }

    /// Number of modes found so far.
    pub fn found(&self) -> usize {
        self.num_found
    }

    /// Which modes were found (in mode order).
    pub fn found_mask(&self) -> &[bool] {
        &self.found
    }

    /// Number of modes tracked.
    pub fn num_modes(&self) -> usize {
        self.found.len()
    }

    /// The Hamming radius.
    pub fn threshold(&self) -> usize {
        self.threshold as usize
    }

    /// Number of strings observed so far.
    pub fn observed(&self) -> u64 {
        self.observed
    }

    /// The tracked modes.
    pub fn modes(&self) -> &ModeSet {
        &self.modes
    }

    /// Sets the cumulative state (as saved from [`ModeTracker::found_mask`] and
    /// [`ModeTracker::observed`] of a tracker of the same modes), e.g. when resuming a run.
    ///
    /// # Errors
    /// A mask whose length is not the number of modes (nothing changes then).
    pub fn set_found(&mut self, found: &[bool], observed: u64) -> Result<()> {
        if found.len() != self.found.len() {
            return Err(CoreError::Metric {
                metric: "modes_found".into(),
                details: format!(
                    "a saved state of {} modes cannot be restored into a tracker of {} modes",
                    found.len(),
                    self.found.len()
                ),
            });
        }
        self.found.copy_from_slice(found);
        self.num_found = found.iter().filter(|&&f| f).count();
        self.observed = observed;
        Ok(())
    }
}

/// How many modes lie within Hamming distance `threshold` of at least one of `samples`
/// (complete state rows): a one-batch [`ModeTracker`].
pub fn modes_found(samples: &[StateValue], modes: &ModeSet, threshold: usize) -> Result<usize> {
    let mut t = ModeTracker::new(modes.clone(), threshold);
    t.observe(samples)
}
