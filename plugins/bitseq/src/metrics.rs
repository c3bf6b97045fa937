//! Metric helpers of the bit-sequence experiments: Spearman's rank correlation and the
//! importance-sampling estimate `log p̂(x)` of a forward policy's terminal probability.

use softgfn_core::math::logsumexp;
use softgfn_core::rng::{Rng, below};
use softgfn_core::{CoreError, Environment, Result, StateValue};

use crate::env::Bitseq;

/// Construction orders per string of the paper's `log p̂` estimate.
pub const DEFAULT_LOG_P_HAT_ROUNDS: usize = 10;

/// Default number of transitions (state rows) per call of the `log P_F` closure in
/// [`Bitseq::log_p_hat`].
pub const LOG_P_HAT_BATCH: usize = 1 << 16;

/// The caller's forward policy for [`Bitseq::log_p_hat`]: given a batch of state rows
/// (`rows * (n/k + 1)` values) and one forward action per row, write `log P_F(action | state)`
/// of each row into the output (`rows` values). The alias lives in `softgfn-core` (the policy a
/// [`softgfn_core::Monitor`] evaluates) and is re-exported here.
pub use softgfn_core::LogPf;

fn metric_error(metric: &str, details: String) -> CoreError {
    CoreError::Metric {
        metric: metric.into(),
        details,
    }
}

/// Ranks of `x` starting at 1, ties sharing the average of their ranks (`[3, 1, 3, 2]` ranks as
/// `[3.5, 1, 3.5, 2]`). NaN values are errors.
pub fn average_ranks(x: &[f64]) -> Result<Vec<f64>> {
    if let Some(i) = x.iter().position(|v| v.is_nan()) {
        return Err(metric_error(
            "spearman",
            format!("value {i} is NaN; ranks need ordered values"),
        ));
    }
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].partial_cmp(&x[b]).unwrap_or(std::cmp::Ordering::Equal));
    let mut ranks = vec![0.0; x.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && x[order[end]] == x[order[start]] {
            end += 1;
        }
        // Positions start..end (0-based) share the mean of the ranks start+1 ..= end.
        let rank = (start + end + 1) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    Ok(ranks)
}

/// Spearman's rank correlation of `a` and `b`: the Pearson correlation of their average ranks
/// (ties share the mean rank, as `scipy.stats.spearmanr`). Infinite values rank as the extremes.
///
/// Errors: different lengths, fewer than two values, or a NaN. A constant input (zero rank
/// variance) has no correlation: the result is NaN, as in scipy.
pub fn spearman(a: &[f64], b: &[f64]) -> Result<f64> {
    if a.len() != b.len() {
        return Err(metric_error(
            "spearman",
            format!("{} values against {}", a.len(), b.len()),
        ));
    }
    if a.len() < 2 {
        return Err(metric_error(
            "spearman",
            format!("{} values; a correlation needs at least 2", a.len()),
        ));
    }
    let (ra, rb) = (average_ranks(a)?, average_ranks(b)?);
    let mean = (a.len() as f64 + 1.0) / 2.0;
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (&x, &y) in ra.iter().zip(&rb) {
        let (dx, dy) = (x - mean, y - mean);
        cov += dx * dy;
        va += dx * dx;
        vb += dy * dy;
    }
    if va == 0.0 || vb == 0.0 {
        return Ok(f64::NAN);
    }
    Ok((cov / (va * vb).sqrt()).clamp(-1.0, 1.0))
}

impl Bitseq {
    /// The importance-sampling estimate of `log p(x)` for complete strings `xs` (state rows)
    /// under the forward policy `log_pf`, with [`LOG_P_HAT_BATCH`] transitions per closure call.
    ///
    /// For each string and each of `rounds` rounds (default [`DEFAULT_LOG_P_HAT_ROUNDS`]) a
    /// uniformly random construction order is drawn: a permutation of the positions `1..=n/k`
    /// (Fisher-Yates: for `i` from `n/k - 1` down to 1, swap `i` and `below(rng, i + 1)` in the
    /// list `1..=n/k`), strings in order, rounds in order. The trajectory `tau` writes the words
    /// of `x` in that order; `log P_F(tau)` is the sum of `log_pf` over its `n/k` steps. The
    /// result per string is
    ///
    /// ```text
    /// log p̂(x) = logsumexp_r log P_F(tau_r) - log(rounds)
    ///          = log mean_r P_F(tau_r) / P_B(tau_r | x) - log (n/k)!
    /// ```
    ///
    /// because the uniform backward policy gives every order `P_B(tau | x) = 1/(n/k)!`. So
    /// `log p̂(x) + log (n/k)!` ([`Bitseq::log_num_orders`]) is an estimate of `log p(x)`, exact
    /// when `P_F` is the flow policy of the uniform `P_B`. The constant `log (n/k)!` does not
    /// change a rank correlation. (The paper's code returns the plain logsumexp, which differs by
    /// the constant `log(rounds)`.)
    ///
    /// All strings x rounds x steps are evaluated in batches: each call of `log_pf` receives
    /// whole trajectories, `max(1, LOG_P_HAT_BATCH / (n/k)) * (n/k)` rows at most, the state
    /// before each step and the step's action. A NaN or `+inf` log-probability is an error; a
    /// `-inf` one gives that trajectory probability zero.
    pub fn log_p_hat(
        &self,
        xs: &[StateValue],
        rounds: usize,
        rng: &mut Rng,
        log_pf: &mut LogPf<'_>,
    ) -> Result<Vec<f64>> {
        self.log_p_hat_batched(xs, rounds, rng, log_pf, LOG_P_HAT_BATCH)
    }

    /// [`Bitseq::log_p_hat`] with at most `max(max_rows, n/k)` transitions per closure call
    /// (whole trajectories). The result does not depend on `max_rows`.
    pub fn log_p_hat_batched(
        &self,
        xs: &[StateValue],
        rounds: usize,
        rng: &mut Rng,
        log_pf: &mut LogPf<'_>,
        max_rows: usize,
    ) -> Result<Vec<f64>> {
        let shape = *self.shape();
        let (w, l) = (shape.width(), shape.l);
        let rows = self.spec().rows_of("strings of log_p_hat", xs)?;
        if rounds == 0 {
            return Err(metric_error(
                "log_p_hat",
                "rounds = 0; at least one construction order per string is needed".into(),
            ));
        }
        for x in xs.chunks_exact(w) {
            shape.complete_words(x, "log_p_hat")?;
        }
        let total = rows * rounds;
        let per_call = (max_rows / l).max(1);
        let mut traj_lp = vec![0.0; total];
        let mut states: Vec<StateValue> = Vec::with_capacity(per_call.min(total) * l * w);
        let mut actions: Vec<u32> = Vec::with_capacity(per_call.min(total) * l);
        let mut out: Vec<f64> = Vec::new();
        let mut order: Vec<usize> = vec![0; l];
        let mut cur = vec![0; w];
        for start in (0..total).step_by(per_call) {
            let end = (start + per_call).min(total);
            states.clear();
            actions.clear();
            for t in start..end {
                let x = &xs[(t / rounds) * w..(t / rounds + 1) * w];
                for (i, p) in order.iter_mut().enumerate() {
                    *p = i + 1;
                }
                for i in (1..l).rev() {
                    let j = below(rng, (i + 1) as u64) as usize;
                    order.swap(i, j);
                }
                shape.initial(&mut cur);
                for &p in &order {
                    states.extend_from_slice(&cur);
                    actions.push(self.action(p, x[p] as u32));
                    cur[p] = x[p];
                }
            }
            out.clear();
            out.resize(actions.len(), 0.0);
            log_pf(&states, &actions, &mut out)?;
            for (i, t) in (start..end).enumerate() {
                let steps = &out[i * l..(i + 1) * l];
                if let Some(v) = steps.iter().find(|v| v.is_nan() || **v == f64::INFINITY) {
                    return Err(metric_error(
                        "log_p_hat",
                        format!(
                            "the policy returned log P_F = {v} for a step of string {}",
                            t / rounds
                        ),
                    ));
                }
                traj_lp[t] = steps.iter().sum();
            }
        }
        let ln_rounds = (rounds as f64).ln();
        Ok(traj_lp
            .chunks_exact(rounds)
            .map(|c| logsumexp(c) - ln_rounds)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_average_ties() {
        assert_eq!(
            average_ranks(&[3.0, 1.0, 3.0, 2.0]).unwrap(),
            [3.5, 1.0, 3.5, 2.0]
        );
        assert_eq!(average_ranks(&[5.0, 5.0, 5.0]).unwrap(), [2.0, 2.0, 2.0]);
        assert_eq!(
            average_ranks(&[f64::NEG_INFINITY, 0.0, -0.0, f64::INFINITY]).unwrap(),
            [1.0, 2.5, 2.5, 4.0]
        );
        assert!(average_ranks(&[1.0, f64::NAN]).is_err());
    }
}
