//! The "modes found" metric of the molecule-string environments as a [`Monitor`].

use std::collections::BTreeSet;

use softgfn_core::{CoreError, LogPf, Monitor, Result, StateValue};

/// Name of the metric: distinct sampled strings that are modes.
pub const MODES_FOUND: &str = "modes_found";

/// First bytes of a saved [`ModesMonitor`] state (format 1).
const MAGIC: &[u8; 4] = b"MSM1";

/// Decides whether a complete string (a state row) is a mode, returning its terminal index.
type ModeKey = dyn Fn(&[StateValue]) -> Result<Option<u64>> + Send;

/// `modes_found` of qm9str and sehstr: the number of **distinct** strings sampled during training
/// whose reward is at or above the environment's mode threshold (`is_mode`: the top 0.5% of
/// qm9str, the 99.9th reward percentile of sehstr). Cumulative over all training samples, at most
/// `num_modes()`; the policy is not evaluated.
///
/// [`Monitor::save`] keeps the set of modes found (one `u64` index per mode, at most about 34,000
/// for sehstr), so a resumed run continues the count.
pub struct ModesMonitor {
    env: &'static str,
    width: usize,
    key: Box<ModeKey>,
    num_modes: u64,
    fingerprint: u64,
    found: BTreeSet<u64>,
    observed: u64,
    /// Keys of the batch being observed (kept to avoid allocating per batch).
    batch: Vec<u64>,
}

impl std::fmt::Debug for ModesMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModesMonitor")
            .field("env", &self.env)
            .field("num_modes", &self.num_modes)
            .field("found", &self.found.len())
            .field("observed", &self.observed)
            .finish_non_exhaustive()
    }
}

impl ModesMonitor {
    /// A monitor with nothing found, for state rows of `width` values; `instance` identifies the
    /// mode set in saved states (e.g. the mode threshold's bits).
    pub(crate) fn new(
        env: &'static str,
        width: usize,
        num_modes: u64,
        instance: &[u8],
        key: Box<ModeKey>,
    ) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let bytes = env
            .bytes()
            .chain(num_modes.to_le_bytes())
            .chain(instance.iter().copied());
        for b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Self {
            env,
            width: width.max(1),
            key,
            num_modes,
            fingerprint: h,
            found: BTreeSet::new(),
            observed: 0,
            batch: Vec::new(),
        }
    }

    /// Number of distinct modes sampled so far.
    pub fn found(&self) -> usize {
        self.found.len()
    }

    /// Number of strings observed so far.
    pub fn observed(&self) -> u64 {
        self.observed
    }

    /// Number of modes of the instance.
    pub fn num_modes(&self) -> u64 {
        self.num_modes
    }

    fn error(&self, details: String) -> CoreError {
        CoreError::Metric {
            metric: format!("{} {MODES_FOUND}", self.env),
            details,
        }
    }
}

impl Monitor for ModesMonitor {
    /// Rows must be complete strings; a batch with another row is an error and counts nothing.
    fn observe(&mut self, terminals: &[StateValue]) -> Result<()> {
        let w = self.width;
        if !terminals.len().is_multiple_of(w) {
            return Err(CoreError::BufferLength {
                what: format!(
                    "terminal states of the {} monitor (rows of width {w})",
                    self.env
                ),
                expected: terminals.len().div_ceil(w) * w,
                found: terminals.len(),
            });
        }
        self.batch.clear();
        for row in terminals.chunks_exact(w) {
            if let Some(k) = (self.key)(row)? {
                self.batch.push(k);
            }
        }
        self.found.extend(self.batch.iter().copied());
        self.observed += (terminals.len() / w) as u64;
        Ok(())
    }

    fn evaluate(&mut self, _log_pf: &mut LogPf<'_>) -> Result<Vec<(String, f64)>> {
        Ok(vec![(MODES_FOUND.into(), self.found.len() as f64)])
    }

    /// `MSM1`, the instance fingerprint, the strings observed, the number of modes found, then
    /// their sorted indices; all `u64` little-endian.
    fn save(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(28 + 8 * self.found.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.fingerprint.to_le_bytes());
        out.extend_from_slice(&self.observed.to_le_bytes());
        out.extend_from_slice(&(self.found.len() as u64).to_le_bytes());
        for k in &self.found {
            out.extend_from_slice(&k.to_le_bytes());
        }
        out
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i..i + 8]);
            u64::from_le_bytes(b)
        };
        if bytes.len() < 28 || &bytes[..4] != MAGIC {
            return Err(self.error(format!(
                "the saved monitor state ({} bytes) is not a molecule-string monitor state \
                 (expected `MSM1` and at least 28 bytes)",
                bytes.len()
            )));
        }
        if u64_at(4) != self.fingerprint {
            return Err(self.error(
                "the saved monitor state belongs to another environment or mode threshold; \
                 resume with the run's own config"
                    .into(),
            ));
        }
        let count = u64_at(20);
        let body = &bytes[28..];
        if count > self.num_modes || body.len() as u64 != 8 * count {
            return Err(self.error(format!(
                "the saved monitor state is corrupt: {count} modes in {} bytes (at most {} \
                 modes, 8 bytes each)",
                body.len(),
                self.num_modes
            )));
        }
        let found: BTreeSet<u64> = (0..count as usize).map(|i| u64_at(28 + 8 * i)).collect();
        if found.len() as u64 != count {
            return Err(self.error(format!(
                "the saved monitor state is corrupt: {count} mode indices with repeats"
            )));
        }
        self.found = found;
        self.observed = u64_at(12);
        Ok(())
    }
}
