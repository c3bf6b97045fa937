//! Fixed backward policies `P_B(s | s')`.
//!
//! The soft-RL view of GFlowNets needs a **fixed** backward policy: it defines the MDP's
//! intermediate rewards `log P_B(s | s')`. Learned backward policies live with the networks
//! (in `softgfn-train`); the fixed ones here need only the backward masks.

use serde::{Deserialize, Serialize};

/// A backward policy that depends only on the backward mask of a state.
pub trait BackwardPolicy: Send + Sync + std::fmt::Debug {
    /// Short name (`uniform`, `tree`).
    fn name(&self) -> &'static str;

    /// Writes `log P_B(b | s')` for every backward action `b` of one state (`-inf` where invalid).
    fn log_probs(&self, backward_mask: &[bool], out: &mut [f64]);

    /// `log P_B(b | s')` of one backward action.
    fn log_prob(&self, backward_mask: &[bool], backward_action: u32) -> f64;
}

/// Uniform over the valid backward actions: `log P_B = -log(#parents)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UniformBackward;

impl BackwardPolicy for UniformBackward {
    fn name(&self) -> &'static str {
        "uniform"
    }

    fn log_probs(&self, backward_mask: &[bool], out: &mut [f64]) {
        let n = backward_mask.iter().filter(|&&v| v).count();
        let lp = -(n as f64).ln();
        for (o, &v) in out.iter_mut().zip(backward_mask) {
            *o = if v { lp } else { f64::NEG_INFINITY };
        }
    }

    fn log_prob(&self, backward_mask: &[bool], backward_action: u32) -> f64 {
        if !backward_mask[backward_action as usize] {
            return f64::NEG_INFINITY;
        }
        let n = backward_mask.iter().filter(|&&v| v).count();
        -(n as f64).ln()
    }
}

/// A learned backward policy's log-probabilities at one state, as a [`BackwardPolicy`]: row
/// `b` holds `log P_B(b | s')` (`-inf` where invalid), typically a masked log-softmax of a
/// network's backward head. It lets a learned `P_B` go through the same code as the fixed ones
/// (for example [`crate::soft::soft_reward`]); the mask given to its methods is not consulted.
#[derive(Clone, Copy, Debug)]
pub struct LogProbRow<'a>(pub &'a [f64]);

impl BackwardPolicy for LogProbRow<'_> {
    fn name(&self) -> &'static str {
        "learned"
    }

    fn log_probs(&self, _backward_mask: &[bool], out: &mut [f64]) {
        out.copy_from_slice(self.0);
    }

    fn log_prob(&self, _backward_mask: &[bool], backward_action: u32) -> f64 {
        self.0[backward_action as usize]
    }
}

/// "Tree" backward policy: `log P_B = 0` for every valid backward action.
///
/// Exact on trees (one parent per state). On a DAG it is not a distribution, and using it drops
/// the `log P_B` rewards of the soft-RL reduction: the resulting sampler is biased toward objects
/// with many construction orders (`x ∝ n(x) R(x)`). It exists to show and test that bias.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeBackward;

impl BackwardPolicy for TreeBackward {
    fn name(&self) -> &'static str {
        "tree"
    }

    fn log_probs(&self, backward_mask: &[bool], out: &mut [f64]) {
        for (o, &v) in out.iter_mut().zip(backward_mask) {
            *o = if v { 0.0 } else { f64::NEG_INFINITY };
        }
    }

    fn log_prob(&self, backward_mask: &[bool], backward_action: u32) -> f64 {
        if backward_mask[backward_action as usize] {
            0.0
        } else {
            f64::NEG_INFINITY
        }
    }
}

/// Which backward policy an algorithm uses (config value).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackwardPolicyKind {
    /// Uniform over parents (fixed).
    Uniform,
    /// `log P_B = 0` (fixed; exact on trees only).
    Tree,
    /// A learned head on the policy network's torso.
    #[default]
    Learned,
}

impl BackwardPolicyKind {
    /// The fixed policy object, or `None` for `Learned`.
    pub fn fixed(self) -> Option<&'static dyn BackwardPolicy> {
        match self {
            Self::Uniform => Some(&UniformBackward),
            Self::Tree => Some(&TreeBackward),
            Self::Learned => None,
        }
    }
}

impl std::fmt::Display for BackwardPolicyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Uniform => "uniform",
            Self::Tree => "tree",
            Self::Learned => "learned",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_and_tree_values() {
        let mask = [true, false, true, true];
        let mut out = [0.0; 4];
        UniformBackward.log_probs(&mask, &mut out);
        assert!((out[0] + 3f64.ln()).abs() < 1e-15);
        assert_eq!(out[1], f64::NEG_INFINITY);
        assert_eq!(UniformBackward.log_prob(&mask, 2), -(3f64.ln()));
        TreeBackward.log_probs(&mask, &mut out);
        assert_eq!(out, [0.0, f64::NEG_INFINITY, 0.0, 0.0]);
        assert!(BackwardPolicyKind::Learned.fixed().is_none());
        assert_eq!(
            BackwardPolicyKind::Uniform.fixed().map(|p| p.name()),
            Some("uniform")
        );
    }
}
