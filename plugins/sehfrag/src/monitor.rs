//! The molecule metrics of the paper as a [`Monitor`]: `modes_found`, `candidates`, `pearson`
//! and `pearson_lambda`, written by `softgfn train` into every record of `metrics.jsonl`.

use softgfn_core::{CoreError, LogPf, Monitor, Result, StateValue};

use crate::assemble::Molecule;
use crate::correlation::TestSet;
use crate::env::Sehfrag;
use crate::fingerprint::{FP_BITS, Fingerprint, fingerprint};
use crate::modes::{Candidate, modes_found, pearson};

/// Name of the mode count.
pub const MODES_FOUND: &str = "modes_found";
/// Name of the number of samples at or above the mode threshold.
pub const CANDIDATES: &str = "candidates";
/// Name of the correlation of `log R` and `log p(x)` on the test set.
pub const PEARSON: &str = "pearson";
/// Name of the same with every log-probability multiplied by `pearson_lambda`.
pub const PEARSON_LAMBDA: &str = "pearson_lambda";

/// First bytes of a saved monitor state (format 1).
const MAGIC: &[u8; 4] = b"SFM1";

/// The molecule metrics, kept during a run.
///
/// - `candidates` and `modes_found`: every terminal state observed since the start whose mode
///   score `reward_norm * R^(1/reward_exp)` (`8 R^(1/10)`, the clamped proxy score) reaches
///   `mode_threshold` is kept with its fingerprint; at each evaluation the greedy mode count of
///   [`modes_found`] runs over all of them.
/// - `pearson` / `pearson_lambda`: [`pearson`] of the stored `log R` and `log p(x)` of the
///   current policy over the 529 scored test molecules ([`TestSet`]). NaN is written as `null`.
///
/// [`Monitor::save`] keeps the candidates; the test set is rebuilt.
#[derive(Debug)]
pub struct SehfragMonitor {
    env: Sehfrag,
    candidates: Vec<Candidate>,
    observed: u64,
    test: Option<TestSet>,
}

impl SehfragMonitor {
    /// A monitor with nothing observed. The correlation test set needs the full library; with
    /// another library the `pearson` metrics are NaN.
    pub fn new(env: &Sehfrag) -> Self {
        let full = (0..crate::table::NUM_BLOCKS).all(|b| env.in_library(b));
        Self {
            env: env.clone(),
            candidates: Vec::new(),
            observed: 0,
            test: full.then(|| TestSet::embedded(env).ok()).flatten(),
        }
    }

    /// The candidates kept so far.
    pub fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }

    /// Terminal states observed so far.
    pub fn observed(&self) -> u64 {
        self.observed
    }

    /// The test set of the correlation metrics.
    pub fn test_set(&self) -> Option<&TestSet> {
        self.test.as_ref()
    }

    /// The mode score of a proxy score: `reward_norm * R^(1 / reward_exp)`.
    pub fn mode_score(&self, score: f64) -> f64 {
        let c = self.env.config();
        c.reward_norm * (self.env.log_reward_of_score(score) / c.reward_exp).exp()
    }
}

fn restore_error(details: String) -> CoreError {
    CoreError::Metric {
        metric: MODES_FOUND.into(),
        details,
    }
}

impl Monitor for SehfragMonitor {
    fn observe(&mut self, terminals: &[StateValue]) -> Result<()> {
        let w = softgfn_core::Environment::spec(&self.env).state_width;
        let rows = terminals.len() / w.max(1);
        let mut scores = vec![0.0; rows];
        self.env.proxy_scores(terminals, &mut scores)?;
        let threshold = self.env.config().mode_threshold;
        for (row, &s) in terminals.chunks_exact(w).zip(&scores) {
            let score = self.mode_score(s);
            if score >= threshold {
                let mol: Molecule = self.env.molecule(row)?;
                self.candidates.push(Candidate {
                    score,
                    fingerprint: fingerprint(&mol),
                });
            }
        }
        self.observed += rows as u64;
        Ok(())
    }

    fn evaluate(&mut self, log_pf: &mut LogPf<'_>) -> Result<Vec<(String, f64)>> {
        let c = self.env.config();
        let (modes, cands) = modes_found(&self.candidates, c.mode_threshold, c.mode_similarity);
        let (r1, rl) = match &self.test {
            Some(t) => {
                let lp = t.log_p(log_pf, &[1.0, c.pearson_lambda])?;
                let lr = t.log_rewards();
                (pearson(&lr, &lp[0]), pearson(&lr, &lp[1]))
            }
            None => (f64::NAN, f64::NAN),
        };
        Ok(vec![
            (MODES_FOUND.into(), modes as f64),
            (CANDIDATES.into(), cands as f64),
            (PEARSON.into(), r1),
            (PEARSON_LAMBDA.into(), rl),
        ])
    }

    /// `SFM1`, terminal states observed (`u64`), candidates (`u64`), then per candidate its
    /// score (`f64`) and fingerprint (32 `u64`); little-endian.
    fn save(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(20 + self.candidates.len() * (8 + FP_BITS / 8));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.observed.to_le_bytes());
        out.extend_from_slice(&(self.candidates.len() as u64).to_le_bytes());
        for c in &self.candidates {
            out.extend_from_slice(&c.score.to_le_bytes());
            for w in &c.fingerprint.0 {
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
        out
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        let per = 8 + FP_BITS / 8;
        if bytes.len() < 20 || &bytes[..4] != MAGIC {
            return Err(restore_error(format!(
                "the saved monitor state ({} bytes) is not a sehfrag monitor state (expected `SFM1` and at least 20 bytes)",
                bytes.len()
            )));
        }
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let n = u64_at(12) as usize;
        if bytes.len() != 20 + n.saturating_mul(per) {
            return Err(restore_error(format!(
                "the saved monitor state is corrupt: {} bytes for {n} candidates, expected {}",
                bytes.len(),
                20 + n.saturating_mul(per)
            )));
        }
        let mut cands = Vec::with_capacity(n);
        for k in 0..n {
            let at = 20 + k * per;
            let score = f64::from_bits(u64_at(at));
            let mut fp = [0u64; FP_BITS / 64];
            for (i, w) in fp.iter_mut().enumerate() {
                *w = u64_at(at + 8 + 8 * i);
            }
            cands.push(Candidate {
                score,
                fingerprint: Fingerprint(fp),
            });
        }
        self.observed = u64_at(4);
        self.candidates = cands;
        Ok(())
    }
}
