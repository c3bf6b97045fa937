//! The token layout of a state row, shared by the environment, the mode set and the metrics.

use softgfn_core::{CoreError, Result, StateValue};

use crate::NAME;

/// Shapes of one instance: `n` bits in `l = n/k` words of `k` bits; `base = 2^k` words.
///
/// A row has `l + 1` tokens: position 0 is BOS (`base + 1`), positions `1..=l` hold a word
/// (`0..base`) or EMPTY (`base`). Word `j` (position `j + 1`) covers bits `j*k .. (j+1)*k` of the
/// string, most significant bit first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    pub(crate) n: usize,
    pub(crate) k: usize,
    pub(crate) l: usize,
    pub(crate) base: usize,
}

impl Shape {
    /// The shape of validated `n` and `k` (see `config::check_shape`).
    pub(crate) fn new(n: usize, k: usize) -> Self {
        Self {
            n,
            k,
            l: n / k,
            base: 1 << k,
        }
    }

    /// Tokens per row (`l + 1`).
    pub(crate) fn width(&self) -> usize {
        self.l + 1
    }

    /// The EMPTY token (`2^k`).
    pub(crate) fn empty(&self) -> StateValue {
        self.base as StateValue
    }

    /// The BOS token (`2^k + 1`).
    pub(crate) fn bos(&self) -> StateValue {
        self.base as StateValue + 1
    }

    /// Writes `s0`: BOS, then EMPTY everywhere.
    pub(crate) fn initial(&self, out: &mut [StateValue]) {
        out.fill(self.empty());
        if let Some(first) = out.first_mut() {
            *first = self.bos();
        }
    }

    pub(crate) fn invalid_state(&self, s: &[StateValue], reason: String) -> CoreError {
        CoreError::InvalidState {
            env: NAME.into(),
            state: s.to_vec(),
            reason,
        }
    }

    /// Validates one row (of `width()` values) and returns its number of filled words.
    pub(crate) fn check_row(&self, s: &[StateValue]) -> Result<usize> {
        if s.len() != self.width() {
            return Err(self.invalid_state(
                s,
                format!("a state row has n/k + 1 = {} tokens", self.width()),
            ));
        }
        if s[0] != self.bos() {
            return Err(self.invalid_state(
                s,
                format!("position 0 must hold the BOS token {}", self.bos()),
            ));
        }
        let mut filled = 0;
        for (p, &t) in s.iter().enumerate().skip(1) {
            if !(0..=self.empty()).contains(&t) {
                return Err(self.invalid_state(
                    s,
                    format!(
                        "position {p} holds {t}; words are 0..{} and EMPTY is {}",
                        self.base,
                        self.empty()
                    ),
                ));
            }
            filled += usize::from(t != self.empty());
        }
        Ok(filled)
    }

    /// The words of a complete row (every position filled); other rows are errors.
    pub(crate) fn complete_words<'a>(
        &self,
        s: &'a [StateValue],
        what: &str,
    ) -> Result<&'a [StateValue]> {
        let filled = self.check_row(s)?;
        if filled != self.l {
            return Err(self.invalid_state(
                s,
                format!(
                    "{what} is defined only for complete strings (all {} words written; this \
                     state has {filled})",
                    self.l
                ),
            ));
        }
        Ok(&s[1..])
    }

    /// Packs `n` bits (values 0/1) into `l` words, most significant bit first.
    pub(crate) fn words_of_bits(&self, bits: &[u8]) -> Vec<u32> {
        bits.chunks_exact(self.k)
            .map(|w| w.iter().fold(0u32, |acc, &b| (acc << 1) | u32::from(b)))
            .collect()
    }

    /// Unpacks word values into `k` bits each, most significant bit first.
    pub(crate) fn bits_of_words(&self, words: impl IntoIterator<Item = u32>) -> Vec<u8> {
        let k = self.k;
        let mut bits = Vec::with_capacity(self.n);
        for w in words {
            for i in (0..k).rev() {
                bits.push(((w >> i) & 1) as u8);
            }
        }
        bits
    }
}
