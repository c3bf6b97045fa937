//! One source of `log P_B` for every algorithm: a fixed backward policy, or a learned one read
//! from a network's backward head.
//!
//! [`BackwardLogProbs`] is used by the balance objectives (`softgfn-gflownet`) and by the
//! off-policy driver of the soft-RL agents (`softgfn-softrl`), so that a learned `P_B` goes
//! through the same code as a fixed one: [`BackwardLogProbs::with_policy`] hands out a
//! [`BackwardPolicy`] for a row (the fixed policy itself, or a [`LogProbRow`] of the learned
//! log-softmax), and [`BackwardLogProbs::backward`] carries `d loss / d log P_B` back onto the
//! head's logits.

use softgfn_core::math::{log_softmax_backward_one, masked_log_softmax};
use softgfn_core::{BackwardPolicy, BackwardPolicyKind, LogProbRow};

/// `log P_B` of a batch of states: fixed, or a learned head's masked log-softmax.
#[derive(Debug)]
pub struct BackwardLogProbs {
    fixed: Option<&'static dyn BackwardPolicy>,
    head: Option<usize>,
    num_backward_actions: usize,
    /// Learned only: log-softmax rows of the states last [`prepare`](Self::prepare)d.
    rows: Vec<f64>,
}

impl BackwardLogProbs {
    /// A fixed policy (`kind` uniform or tree) or, for [`BackwardPolicyKind::Learned`], the
    /// backward head `head` of the network (`None` head with `Learned` is refused by the caller
    /// that builds the network; here it reads as "no learned head" and panics on use).
    pub fn new(kind: BackwardPolicyKind, head: Option<usize>, num_backward_actions: usize) -> Self {
        Self {
            fixed: kind.fixed(),
            head: if kind.fixed().is_some() { None } else { head },
            num_backward_actions,
            rows: Vec::new(),
        }
    }

    /// The network head of a learned policy (`None` when fixed).
    pub fn head(&self) -> Option<usize> {
        self.head
    }

    /// Whether `P_B` is learned.
    pub fn is_learned(&self) -> bool {
        self.fixed.is_none()
    }

    /// Learned only (a no-op when fixed): the masked log-softmax of `rows` rows of backward
    /// logits, rows `row0..row0 + rows` of `logits` (the head's output), under `masks` (`rows`
    /// masks). Row `r` of the result belongs to logits row `row0 + r`.
    pub fn prepare(&mut self, logits: &[f32], row0: usize, rows: usize, masks: &[bool]) {
        if self.fixed.is_some() {
            return;
        }
        let nb = self.num_backward_actions;
        self.rows.resize(rows * nb, 0.0);
        for r in 0..rows {
            masked_log_softmax(
                &logits[(row0 + r) * nb..(row0 + r + 1) * nb],
                &masks[r * nb..(r + 1) * nb],
                1.0,
                &mut self.rows[r * nb..(r + 1) * nb],
            );
        }
    }

    /// Calls `f` with the backward policy of prepared row `row`: the fixed policy, or the learned
    /// row as a [`LogProbRow`].
    pub fn with_policy<R>(&self, row: usize, f: impl FnOnce(&dyn BackwardPolicy) -> R) -> R {
        match self.fixed {
            Some(pb) => f(pb),
            None => {
                let nb = self.num_backward_actions;
                f(&LogProbRow(&self.rows[row * nb..(row + 1) * nb]))
            }
        }
    }

    /// `log P_B(action | s')` of prepared row `row` whose backward mask is `mask`.
    pub fn log_prob(&self, row: usize, mask: &[bool], action: u32) -> f64 {
        self.with_policy(row, |pb| pb.log_prob(mask, action))
    }

    /// Learned only (a no-op when fixed): adds `g * d log P_B(action | s') / d logits` of
    /// prepared row `row` into `grad_row` (that row's slice of the head's gradient).
    pub fn backward(&self, row: usize, mask: &[bool], action: u32, g: f64, grad_row: &mut [f32]) {
        if self.fixed.is_some() {
            return;
        }
        let nb = self.num_backward_actions;
        log_softmax_backward_one(
            &self.rows[row * nb..(row + 1) * nb],
            mask,
            action as usize,
            g,
            grad_row,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_and_learned_rows_agree_with_their_definitions() {
        let mask = [true, false, true];
        let fixed = BackwardLogProbs::new(BackwardPolicyKind::Uniform, None, 3);
        assert!(!fixed.is_learned());
        assert_eq!(fixed.log_prob(0, &mask, 2), -(2f64).ln());
        let mut learned = BackwardLogProbs::new(BackwardPolicyKind::Learned, Some(1), 3);
        // Two rows of logits; prepare row 1 only.
        let logits = [0.0f32, 0.0, 0.0, 1.0, 5.0, 0.0];
        learned.prepare(&logits, 1, 1, &mask);
        let z = (1f64.exp() + 1.0).ln();
        assert!((learned.log_prob(0, &mask, 0) - (1.0 - z)).abs() < 1e-12);
        assert!((learned.log_prob(0, &mask, 2) - (0.0 - z)).abs() < 1e-12);
        let mut g = [0.0f32; 3];
        learned.backward(0, &mask, 0, 1.0, &mut g);
        // d log p_0 / d z = onehot(0) - p.
        let p0 = (1.0 - z).exp();
        assert!((f64::from(g[0]) - (1.0 - p0)).abs() < 1e-6);
        assert_eq!(g[1], 0.0);
        assert!((f64::from(g[2]) + (1.0 - p0)).abs() < 1e-6);
    }
}
