//! Distribution distances and the paper's empirical window metric.
//!
//! Names match the columns of `metrics.jsonl`:
//! - `exact_l1` = `sum_x |p(x) - q(x)|` (in `[0, 2]`), `exact_tv` = half of it,
//! - `exact_kl` = `KL(p || q)` (target `p`, policy `q`; `q` is floored at [`KL_FLOOR`]),
//! - `exact_jsd` = Jensen-Shannon divergence in nats (at most `ln 2`),
//! - `emp_l1_mean` = `mean_x |p(x) - p_hat(x)|` over all terminal states (the paper's L1),
//! - `emp_kl` = `sum_x p(x) log(p(x) / (p_hat(x) + 1e-9))` (the paper's KL).

use crate::error::{CoreError, Result};

/// Floor applied to the policy probability inside `exact_kl`, so that a policy that underflows
/// to zero somewhere gives a large finite value instead of infinity.
pub const KL_FLOOR: f64 = 1e-300;

/// Additive constant of the paper's empirical KL.
pub const EMP_KL_EPS: f64 = 1e-9;

fn same_len(metric: &str, p: &[f64], q: &[f64]) -> Result<()> {
    if p.len() != q.len() {
        return Err(CoreError::Metric {
            metric: metric.into(),
            details: format!(
                "distributions of different lengths {} and {}",
                p.len(),
                q.len()
            ),
        });
    }
    Ok(())
}

/// `sum |p - q|`.
pub fn l1(p: &[f64], q: &[f64]) -> Result<f64> {
    same_len("l1", p, q)?;
    Ok(p.iter().zip(q).map(|(a, b)| (a - b).abs()).sum())
}

/// Total variation `0.5 * sum |p - q|`.
pub fn tv(p: &[f64], q: &[f64]) -> Result<f64> {
    Ok(0.5 * l1(p, q)?)
}

/// `KL(p || q) = sum_{p > 0} p log(p / max(q, KL_FLOOR))`.
pub fn kl(p: &[f64], q: &[f64]) -> Result<f64> {
    same_len("kl", p, q)?;
    Ok(p.iter()
        .zip(q)
        .filter(|(a, _)| **a > 0.0)
        .map(|(a, b)| a * (a / b.max(KL_FLOOR)).ln())
        .sum())
}

/// Jensen-Shannon divergence `0.5 KL(p || m) + 0.5 KL(q || m)`, `m = (p + q) / 2`, in nats.
pub fn jsd(p: &[f64], q: &[f64]) -> Result<f64> {
    same_len("jsd", p, q)?;
    let mut s = 0.0;
    for (&a, &b) in p.iter().zip(q) {
        let m = 0.5 * (a + b);
        if a > 0.0 {
            s += 0.5 * a * (a / m).ln();
        }
        if b > 0.0 {
            s += 0.5 * b * (b / m).ln();
        }
    }
    Ok(s.max(0.0))
}

/// The exact distances between a target and a policy's terminal distribution.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExactDistances {
    /// `sum |p - q|`.
    pub exact_l1: f64,
    /// `0.5 * exact_l1`.
    pub exact_tv: f64,
    /// `KL(target || policy)`.
    pub exact_kl: f64,
    /// Jensen-Shannon divergence.
    pub exact_jsd: f64,
}

impl ExactDistances {
    /// All four distances.
    pub fn between(target: &[f64], policy: &[f64]) -> Result<Self> {
        let exact_l1 = l1(target, policy)?;
        Ok(Self {
            exact_l1,
            exact_tv: 0.5 * exact_l1,
            exact_kl: kl(target, policy)?,
            exact_jsd: jsd(target, policy)?,
        })
    }
}

/// The last `capacity` terminal states sampled during training, as state indices, with counts
/// per index: the paper's empirical distribution `p_hat` (O(1) per sample, O(states) per metric).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EmpiricalWindow {
    capacity: usize,
    ring: Vec<u32>,
    head: usize,
    counts: Vec<u32>,
}

impl EmpiricalWindow {
    /// A window of `capacity` samples over `num_states` state indices.
    pub fn new(capacity: usize, num_states: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            ring: Vec::with_capacity(capacity.clamp(1, 1 << 20)),
            head: 0,
            counts: vec![0; num_states],
        }
    }

    /// Number of samples currently in the window.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Whether the window holds no sample.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Adds one sampled terminal state index, evicting the oldest when full.
    pub fn push(&mut self, index: u32) {
        if self.ring.len() < self.capacity {
            self.ring.push(index);
        } else {
            let old = self.ring[self.head];
            self.counts[old as usize] -= 1;
            self.ring[self.head] = index;
            self.head = (self.head + 1) % self.capacity;
        }
        self.counts[index as usize] += 1;
    }

    /// `(emp_l1_mean, emp_kl)` against the target probabilities (all states; `terminal` marks
    /// which states count in the mean).
    pub fn metrics(&self, target: &[f64], terminal: &[bool]) -> Result<(f64, f64)> {
        same_len("emp_l1_mean", target, &vec![0.0; self.counts.len()])?;
        let total = self.ring.len().max(1) as f64;
        let mut l1_sum = 0.0;
        let mut n_term = 0usize;
        let mut kl_sum = 0.0;
        for s in 0..self.counts.len() {
            if !terminal[s] {
                continue;
            }
            n_term += 1;
            let ph = f64::from(self.counts[s]) / total;
            let p = target[s];
            l1_sum += (p - ph).abs();
            if p > 0.0 {
                kl_sum += p * (p / (ph + EMP_KL_EPS)).ln();
            }
        }
        Ok((l1_sum / n_term.max(1) as f64, kl_sum))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_on_known_pairs() {
        let p = [0.5, 0.5, 0.0];
        let q = [0.25, 0.25, 0.5];
        assert!((l1(&p, &q).unwrap() - 1.0).abs() < 1e-15);
        assert!((tv(&p, &q).unwrap() - 0.5).abs() < 1e-15);
        assert!((kl(&p, &q).unwrap() - 2f64.ln()).abs() < 1e-15);
        // JSD of disjoint supports is ln 2.
        let a = [1.0, 0.0];
        let b = [0.0, 1.0];
        assert!((jsd(&a, &b).unwrap() - 2f64.ln()).abs() < 1e-15);
        assert_eq!(jsd(&p, &p).unwrap(), 0.0);
        assert!(l1(&p, &a).is_err());
        let d = ExactDistances::between(&p, &q).unwrap();
        assert_eq!(d.exact_tv, 0.5 * d.exact_l1);
    }

    #[test]
    fn window_evicts_oldest_and_computes_paper_metrics() {
        let mut w = EmpiricalWindow::new(2, 3);
        w.push(0);
        w.push(1);
        w.push(1); // evicts the first 0
        assert_eq!(w.len(), 2);
        let target = [0.5, 0.5, 0.0];
        let (l1m, klv) = w.metrics(&target, &[true, true, true]).unwrap();
        // p_hat = [0, 1, 0]: |0.5| + |0.5| + 0 over 3 states.
        assert!((l1m - 1.0 / 3.0).abs() < 1e-15);
        let expect = 0.5 * (0.5f64 / 1e-9).ln() + 0.5 * (0.5f64 / (1.0 + 1e-9)).ln();
        assert!((klv - expect).abs() < 1e-12);
    }
}
