//! The evaluation metrics of the bit-sequence benchmark as a [`Monitor`]: `modes_found` and
//! `spearman`, written by `softgfn train` into every record of `metrics.jsonl`.

use softgfn_core::rng::{Rng, Stream, stream};
use softgfn_core::{CoreError, LogPf, Monitor, Result, StateValue};

use crate::env::Bitseq;
use crate::metrics::spearman;
use crate::modes::ModeTracker;

/// Name of the cumulative "modes found" metric.
pub const MODES_FOUND: &str = "modes_found";

/// Name of the Spearman correlation between `log R(x)` and `log p̂(x)` on the test set.
pub const SPEARMAN: &str = "spearman";

/// First bytes of a saved [`BitseqMonitor`] state (format 1).
const MAGIC: &[u8; 4] = b"BSM1";

/// The bit-sequence metrics of the paper, kept during a run (see [`Monitor`]).
///
/// - `modes_found`: a [`ModeTracker`] with the configured `mode_threshold`, fed every training
///   sample ([`Monitor::observe`]); cumulative, at most `num_modes`.
/// - `spearman`: Spearman's rank correlation between `log R(x)` and [`Bitseq::log_p_hat`] of the
///   current policy over the first `spearman_strings` strings of [`Bitseq::test_set`] (all when
///   0), with `spearman_rounds` construction orders per string. The orders are drawn from
///   `stream(mode_seed, Stream::Eval)` continued after the draws of the test set, restarted at
///   every evaluation: every evaluation of a run uses the same orders, so the metric changes only
///   with the policy. A NaN (a constant `log p̂`, e.g. from a policy that is exactly uniform)
///   is written as `null`.
///
/// [`Monitor::save`] keeps which modes were found and how many strings were observed; the test
/// set and the orders are rebuilt from the configuration.
#[derive(Clone, Debug)]
pub struct BitseqMonitor {
    env: Bitseq,
    tracker: ModeTracker,
    /// The evaluated test strings (complete state rows).
    states: Vec<StateValue>,
    /// `log R` of each evaluated test string.
    log_rewards: Vec<f64>,
    rounds: usize,
    /// The order stream, positioned after the test-set draws.
    orders: Rng,
    /// Identifies the instance (shape, threshold, modes) in saved states.
    fingerprint: u64,
    /// Training strings between `spearman` evaluations (0: every evaluation).
    every: u64,
    /// `observed / every` at the last `spearman` evaluation (`None`: not computed yet).
    last_bucket: Option<u64>,
}

impl BitseqMonitor {
    /// A monitor of `env` with nothing observed yet: builds the test set and its rewards once.
    pub fn new(env: &Bitseq) -> Self {
        let config = env.config();
        let mut rng = stream(config.mode_seed, Stream::Eval);
        let test = env.modes().test_set(&mut rng);
        let count = match config.spearman_strings {
            0 => test.len(),
            n => n.min(test.len()),
        };
        let mut states = test.states;
        states.truncate(count * test.width);
        let modes = env.modes();
        let log_rewards = states
            .chunks_exact(test.width)
            .map(|row| -config.beta * f64::from(modes.min_distance(&row[1..])))
            .collect();
        let tracker = env.mode_tracker();
        Self {
            fingerprint: fingerprint(env, tracker.threshold()),
            env: env.clone(),
            tracker,
            states,
            log_rewards,
            rounds: config.spearman_rounds,
            orders: rng,
            every: config.spearman_every,
            last_bucket: None,
        }
    }

    /// The "modes found" tracker.
    pub fn tracker(&self) -> &ModeTracker {
        &self.tracker
    }

    /// Number of test strings of the `spearman` metric.
    pub fn num_test_strings(&self) -> usize {
        self.log_rewards.len()
    }

    /// The test strings of the `spearman` metric (complete state rows).
    pub fn test_states(&self) -> &[StateValue] {
        &self.states
    }

    /// Construction orders per test string.
    pub fn rounds(&self) -> usize {
        self.rounds
    }

    /// The Spearman correlation of the policy `log_pf` on the test strings (NaN when either side
    /// is constant).
    ///
    /// # Errors
    /// An error of `log_pf`, or a NaN / `+inf` log-probability (see [`Bitseq::log_p_hat`]).
    pub fn spearman(&self, log_pf: &mut LogPf<'_>) -> Result<f64> {
        let mut rng = self.orders.clone();
        let log_p_hat = self
            .env
            .log_p_hat(&self.states, self.rounds, &mut rng, log_pf)?;
        spearman(&self.log_rewards, &log_p_hat)
    }
}

/// FNV-1a over the instance's shape, threshold and mode words.
fn fingerprint(env: &Bitseq, threshold: usize) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |v: u64| {
        for b in v.to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(env.n() as u64);
    eat(env.k() as u64);
    eat(threshold as u64);
    let modes = env.modes();
    eat(modes.len() as u64);
    for i in 0..modes.len() {
        for &w in modes.words(i) {
            eat(u64::from(w));
        }
    }
    h
}

fn restore_error(details: String) -> CoreError {
    CoreError::Metric {
        metric: MODES_FOUND.into(),
        details,
    }
}

impl Monitor for BitseqMonitor {
    fn observe(&mut self, terminals: &[StateValue]) -> Result<()> {
        self.tracker.observe(terminals).map(|_| ())
    }

    fn evaluate(&mut self, log_pf: &mut LogPf<'_>) -> Result<Vec<(String, f64)>> {
        let mut metrics = vec![(MODES_FOUND.into(), self.tracker.found() as f64)];
        let bucket = self.tracker.observed().checked_div(self.every);
        if bucket.is_none() || self.last_bucket.is_none() || bucket > self.last_bucket {
            metrics.push((SPEARMAN.into(), self.spearman(log_pf)?));
            self.last_bucket = bucket.or(Some(0));
        }
        Ok(metrics)
    }

    /// `BSM1`, the instance fingerprint (`u64`), the strings observed (`u64`), the number of
    /// modes (`u32`), then one byte (0 or 1) per mode; integers little-endian.
    fn save(&self) -> Vec<u8> {
        let found = self.tracker.found_mask();
        let mut out = Vec::with_capacity(24 + found.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.fingerprint.to_le_bytes());
        out.extend_from_slice(&self.tracker.observed().to_le_bytes());
        out.extend_from_slice(&(found.len() as u32).to_le_bytes());
        out.extend(found.iter().map(|&f| u8::from(f)));
        out
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        let num_modes = self.tracker.num_modes();
        if bytes.len() < 24 || &bytes[..4] != MAGIC {
            return Err(restore_error(format!(
                "the saved monitor state ({} bytes) is not a bitseq monitor state (expected `BSM1` \
                 and at least 24 bytes)",
                bytes.len()
            )));
        }
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i..i + 8]);
            u64::from_le_bytes(b)
        };
        if u64_at(4) != self.fingerprint {
            return Err(restore_error(
                "the saved monitor state belongs to another bitseq instance (other n, k, \
                 mode_threshold or mode set); resume with the run's own config"
                    .into(),
            ));
        }
        let observed = u64_at(12);
        let saved_modes = u32::from_le_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]) as usize;
        let mask = &bytes[24..];
        if saved_modes != num_modes || mask.len() != num_modes || mask.iter().any(|&b| b > 1) {
            return Err(restore_error(format!(
                "the saved monitor state is corrupt: {saved_modes} modes and {} flag bytes, \
                 expected {num_modes} flags of value 0 or 1",
                mask.len()
            )));
        }
        let found: Vec<bool> = mask.iter().map(|&b| b == 1).collect();
        self.tracker.set_found(&found, observed)?;
        // Checkpoints follow the evaluation of their iteration, so `spearman` was last due in
        // the bucket the saved count is in.
        self.last_bucket = observed.checked_div(self.every).or(Some(0));
        Ok(())
    }
}
