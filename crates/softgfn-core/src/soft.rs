//! The GFlowNet -> soft-MDP reduction of Tiapkin et al. (AISTATS 2024), in one place.
//!
//! On a DAG with a **fixed** backward policy `P_B`, training a GFlowNet is soft RL with entropy
//! coefficient 1 on the deterministic MDP whose actions are the DAG's edges and whose rewards are
//!
//! ```text
//! r(s, s')    = log P_B(s | s')         for an intermediate edge,
//! r(x, s_f)   = log R(x)                for the exit edge,
//! ```
//!
//! (a state without any valid action ends the episode by itself; the edge into it then earns
//! `log P_B(s | x) + log R(x)`). The optimal soft values are then `V*(s) = log F(s)`,
//! `V*(s0) = log Z`, `Q*(s, s') = log F(s -> s')`, and the optimal soft policy is the GFlowNet
//! forward policy, which samples `x` with probability `R(x) / Z`.
//!
//! With `log P_B` dropped (the [`crate::TreeBackward`] policy, `log P_B = 0`) the same MDP is the
//! "tree" view of earlier work, exact only on trees: on a DAG its soft-optimal policy samples
//! `x ∝ n(x) R(x)`, with `n(x)` the number of construction orders of `x`.

use crate::backward::BackwardPolicy;
use crate::exact::StateGraph;
use crate::math::logsumexp;

/// The soft-MDP reward of one transition.
///
/// - `exit`: the transition is the exit action; the reward is `terminal_log_reward`;
/// - otherwise the reward is `log P_B(s | s')` of the backward action at the next state, plus
///   `terminal_log_reward` when `done` (the next state ends the episode by itself).
#[inline]
pub fn soft_reward(
    backward: &dyn BackwardPolicy,
    next_backward_mask: &[bool],
    backward_action: u32,
    exit: bool,
    done: bool,
    terminal_log_reward: f64,
) -> f64 {
    if exit {
        terminal_log_reward
    } else {
        let lpb = backward.log_prob(next_backward_mask, backward_action);
        if done { lpb + terminal_log_reward } else { lpb }
    }
}

/// Exact optimal soft values of the reduced MDP.
#[derive(Clone, Debug, PartialEq)]
pub struct SoftValues {
    /// Entropy coefficient `lambda` used.
    pub entropy_coef: f64,
    /// `V*(s)` of every state.
    pub v: Vec<f64>,
    /// `Q*(s, a)` of every state and action (`-inf` where invalid).
    pub q: Vec<f64>,
    /// `log pi*(a | s) = (Q*(s, a) - V*(s)) / lambda`.
    pub log_policy: Vec<f64>,
    /// Row width of `q` and `log_policy`.
    pub num_actions: usize,
}

impl SoftValues {
    /// `V*(s0)`.
    pub fn v0(&self, graph: &StateGraph) -> f64 {
        self.v[graph.initial as usize]
    }

    /// `Q*(s, .)` of state index `s`.
    pub fn q_of(&self, s: usize) -> &[f64] {
        &self.q[s * self.num_actions..(s + 1) * self.num_actions]
    }
}

impl StateGraph {
    /// Exact soft value iteration in reverse topological order:
    /// `Q*(s, a) = r(s, a) + V*(s')`, `V*(s) = lambda * log sum_a exp(Q*(s, a) / lambda)`, with
    /// `V*(x) = log R(x)` at states that end the episode by themselves. With `lambda = 1` and the
    /// rewards of [`soft_reward`] this equals the flow recursion [`StateGraph::flows`].
    pub fn soft_values(&self, backward: &dyn BackwardPolicy, entropy_coef: f64) -> SoftValues {
        let n = self.num_states();
        let na = self.num_actions;
        let lam = entropy_coef;
        let mut v = vec![f64::NEG_INFINITY; n];
        let mut q = vec![f64::NEG_INFINITY; n * na];
        let mut scaled = Vec::with_capacity(na);
        for &s in self.topo_order.iter().rev() {
            let s = s as usize;
            let (lo, hi) = (self.child_offsets[s], self.child_offsets[s + 1]);
            if lo == hi && !self.can_exit(s) {
                v[s] = self.log_reward[s];
                continue;
            }
            if self.can_exit(s) {
                q[s * na + self.exit_action.unwrap_or(0) as usize] = self.log_reward[s];
            }
            for e in lo..hi {
                let c = self.child_index[e] as usize;
                let r = backward.log_prob(self.backward_mask(c), self.child_backward_action[e]);
                q[s * na + self.child_action[e] as usize] = r + v[c];
            }
            scaled.clear();
            scaled.extend(q[s * na..(s + 1) * na].iter().map(|&x| x / lam));
            v[s] = lam * logsumexp(&scaled);
        }
        let mut log_policy = vec![f64::NEG_INFINITY; n * na];
        for s in 0..n {
            for a in 0..na {
                let qa = q[s * na + a];
                if qa > f64::NEG_INFINITY {
                    log_policy[s * na + a] = (qa - v[s]) / lam;
                }
            }
        }
        SoftValues {
            entropy_coef,
            v,
            q,
            log_policy,
            num_actions: na,
        }
    }
}
