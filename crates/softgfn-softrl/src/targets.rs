//! Soft Bellman targets as pure functions of Q-values (host math, tested at exact fixed points).
//!
//! With entropy coefficient `lambda`, the soft value of a state and the soft policy are
//!
//! ```text
//! V(s)        = lambda * log sum_{valid a} exp(Q(s, a) / lambda)
//! pi(a | s)   = exp((Q(s, a) - V(s)) / lambda)
//! ```
//!
//! and the SoftDQN / Munchausen DQN target of a transition `(s, a, r, s')` is
//!
//! ```text
//! y = r + [not done] V_target(s') + alpha * clip(lambda * log pi_target(a | s), l0, 0)
//! ```
//!
//! (Vieillard et al., 2020, "Munchausen reinforcement learning"). With `lambda = 1/(1 - alpha)`
//! the effective entropy coefficient `(1 - alpha) lambda` is 1, so the fixed point
//! `Q(s, a) = log F(s) + lambda log P_F(a | s)` samples exactly `R/Z` (Tiapkin et al., 2024).
//! The "double" variant bootstraps with `V(s') = sum_a' pi_online(a'|s') [Q_target(s', a') -
//! lambda log pi_online(a'|s')]`.

use softgfn_core::math::{masked_log_softmax, masked_logsumexp, masked_softmax};

use crate::common::TdLoss;

/// Soft value `lambda * logsumexp(q / lambda)` over valid actions; writes `log pi` into `log_pi`.
/// Returns `-inf` when no action is valid.
pub fn soft_value(q: &[f32], mask: &[bool], lambda: f64, log_pi: &mut [f64]) -> f64 {
    lambda * masked_log_softmax(q, mask, lambda, log_pi)
}

/// Parameters of the soft TD target.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TargetParams {
    /// Entropy coefficient `lambda`.
    pub lambda: f64,
    /// Munchausen coefficient `alpha` (0 for SoftDQN).
    pub munchausen_alpha: f64,
    /// Lower clip `l0` of the Munchausen term.
    pub munchausen_clip_min: f64,
    /// Double-soft bootstrap (needs online Q-values at `s'`).
    pub double: bool,
}

/// Inputs of one transition's target. Q rows are over all actions; masks mark the valid ones.
#[derive(Clone, Copy, Debug)]
pub struct TargetInputs<'a> {
    /// Reward of the transition (from [`softgfn_core::soft::soft_reward`]).
    pub reward: f64,
    /// Whether the episode ends with it (no bootstrap).
    pub done: bool,
    /// Target-network Q-values at `s'`.
    pub q_target_next: &'a [f32],
    /// Online Q-values at `s'` (double variant only).
    pub q_online_next: Option<&'a [f32]>,
    /// Valid actions at `s'`.
    pub next_mask: &'a [bool],
    /// Target-network Q-values at `s` (Munchausen term only).
    pub q_target_state: Option<&'a [f32]>,
    /// Valid actions at `s`.
    pub mask: &'a [bool],
    /// The action taken.
    pub action: usize,
}

/// The soft TD target `y` of one transition; `scratch` must have one entry per action.
pub fn soft_td_target(p: &TargetParams, x: &TargetInputs<'_>, scratch: &mut [f64]) -> f64 {
    let mut y = x.reward;
    if !x.done {
        y += match (p.double, x.q_online_next) {
            (true, Some(qo)) => {
                let log_norm = masked_softmax(qo, x.next_mask, p.lambda, scratch);
                let inv_lambda = 1.0 / p.lambda;
                let mut v = 0.0;
                for a in 0..qo.len() {
                    if x.next_mask[a] {
                        let lp = f64::from(qo[a]) * inv_lambda - log_norm;
                        v += scratch[a] * (f64::from(x.q_target_next[a]) - p.lambda * lp);
                    }
                }
                v
            }
            // Only the normaliser: no row of log-probabilities is written.
            _ => p.lambda * masked_logsumexp(x.q_target_next, x.next_mask, p.lambda),
        };
    }
    if let Some(qs) = x.q_target_state.filter(|_| p.munchausen_alpha > 0.0) {
        let log_pi =
            f64::from(qs[x.action]) * (1.0 / p.lambda) - masked_logsumexp(qs, x.mask, p.lambda);
        let term = (p.lambda * log_pi).clamp(p.munchausen_clip_min, 0.0);
        y += p.munchausen_alpha * term;
    }
    y
}

/// Discrete SAC soft value with twin critics (entropy coefficient 1):
/// `V(s) = sum_a pi(a|s) [min(Q1, Q2)(s, a) - log pi(a|s)]`, given `log pi` of the row.
pub fn sac_value(log_pi: &[f64], q1: &[f32], q2: &[f32], mask: &[bool]) -> f64 {
    let mut v = 0.0;
    for a in 0..log_pi.len() {
        if mask[a] {
            let q = f64::from(q1[a].min(q2[a]));
            v += log_pi[a].exp() * (q - log_pi[a]);
        }
    }
    v
}

/// Gradient of `sac_value` with respect to the actor's logits (entropy coefficient 1):
/// `dV / dz_j = pi_j (q_j - log pi_j - V)`; adds `scale * dV/dz` into `grad`.
pub fn sac_value_grad(
    log_pi: &[f64],
    q1: &[f32],
    q2: &[f32],
    mask: &[bool],
    scale: f64,
    grad: &mut [f32],
) -> f64 {
    let v = sac_value(log_pi, q1, q2, mask);
    for a in 0..log_pi.len() {
        if mask[a] {
            let q = f64::from(q1[a].min(q2[a]));
            let p = log_pi[a].exp();
            grad[a] += (scale * p * (q - log_pi[a] - v)) as f32;
        }
    }
    v
}

/// The SoftDQN / Munchausen DQN loss of one transition whose online `Q(s, a)` is `q_sa`:
/// `(loss(Q(s, a) - y), d loss / d Q(s, a))` with `y` = [`soft_td_target`]. Since `y` holds the
/// reward with coefficient 1, `d loss / d r = -d loss / d Q(s, a)`.
pub fn soft_dqn_loss(
    p: &TargetParams,
    loss: TdLoss,
    x: &TargetInputs<'_>,
    q_sa: f64,
    scratch: &mut [f64],
) -> (f64, f64) {
    let y = soft_td_target(p, x, scratch);
    loss.eval(q_sa - y)
}

/// SAC's twin-critic loss of one transition with target `y`:
/// `(loss(Q1 - y) + loss(Q2 - y), d/dQ1, d/dQ2)`.
pub fn sac_critic_loss(loss: TdLoss, q1_sa: f64, q2_sa: f64, y: f64) -> (f64, f64, f64) {
    let (l1, d1) = loss.eval(q1_sa - y);
    let (l2, d2) = loss.eval(q2_sa - y);
    (l1 + l2, d1, d2)
}

/// SAC's actor loss at one state, `-V(s)` with [`sac_value`] under the target critics, given
/// the actor's `log pi` row; adds `scale * d(-V)/d logits` into `grad`. Returns `-V(s)`.
pub fn sac_actor_loss(
    log_pi: &[f64],
    q1: &[f32],
    q2: &[f32],
    mask: &[bool],
    scale: f64,
    grad: &mut [f32],
) -> f64 {
    -sac_value_grad(log_pi, q1, q2, mask, -scale, grad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_value_is_lambda_logsumexp() {
        let mut lp = [0.0; 3];
        let v = soft_value(&[1.0, 2.0, 5.0], &[true, true, false], 2.0, &mut lp);
        let expect = 2.0 * ((0.5f64).exp() + 1f64.exp()).ln();
        assert!((v - expect).abs() < 1e-12);
        assert_eq!(lp[2], f64::NEG_INFINITY);
    }

    #[test]
    fn munchausen_term_is_clipped() {
        let p = TargetParams {
            lambda: 1.0,
            munchausen_alpha: 0.5,
            munchausen_clip_min: -1.0,
            double: false,
        };
        // log pi(a=1|s) = log(1/(1+e^10)) ~ -10 -> clipped to -1 -> +0.5 * -1.
        let x = TargetInputs {
            reward: 0.25,
            done: true,
            q_target_next: &[0.0, 0.0],
            q_online_next: None,
            next_mask: &[false, false],
            q_target_state: Some(&[10.0, 0.0]),
            mask: &[true, true],
            action: 1,
        };
        let mut s = [0.0; 2];
        assert!((soft_td_target(&p, &x, &mut s) - (0.25 - 0.5)).abs() < 1e-12);
    }

    #[test]
    fn sac_gradient_matches_finite_differences() {
        let z = [0.3f32, -0.4, 0.8];
        let mask = [true, true, true];
        let q1 = [1.0f32, 0.5, -0.2];
        let q2 = [0.8f32, 0.9, -0.1];
        let f = |z: &[f32]| {
            let mut lp = [0.0; 3];
            masked_log_softmax(z, &mask, 1.0, &mut lp);
            sac_value(&lp, &q1, &q2, &mask)
        };
        let mut lp = [0.0; 3];
        masked_log_softmax(&z, &mask, 1.0, &mut lp);
        let mut g = [0.0f32; 3];
        sac_value_grad(&lp, &q1, &q2, &mask, 1.0, &mut g);
        for j in 0..3 {
            let mut a = z;
            let mut b = z;
            a[j] += 1e-3;
            b[j] -= 1e-3;
            let fd = (f(&a) - f(&b)) / 2e-3;
            assert!((fd - f64::from(g[j])).abs() < 1e-3, "{j}: {fd} vs {}", g[j]);
        }
    }

    /// SoftDQN (lambda 1, no Munchausen term), Huber loss, by hand: Q_target(s') = (0, ln 3)
    /// over both actions gives V(s') = ln(1 + 3) = ln 4; y = r + ln 4 = -0.5 + ln 4; with
    /// Q(s, a) = 1.2 the residual is 1.2 + 0.5 - ln 4 = 0.313705..., inside Huber's quadratic
    /// zone: loss 0.5 * delta^2, gradient delta.
    #[test]
    fn soft_dqn_loss_equals_the_hand_computed_literal() {
        let p = TargetParams {
            lambda: 1.0,
            munchausen_alpha: 0.0,
            munchausen_clip_min: -100.0,
            double: false,
        };
        let x = TargetInputs {
            reward: -0.5,
            done: false,
            q_target_next: &[0.0, 3f32.ln()],
            q_online_next: None,
            next_mask: &[true, true],
            q_target_state: None,
            mask: &[true, true],
            action: 0,
        };
        let mut s = [0.0; 2];
        let (l, dl) = soft_dqn_loss(&p, TdLoss::Huber, &x, 1.2, &mut s);
        let delta = 1.2 + 0.5 - 4f64.ln();
        assert!((delta - 0.313_705_638_880_109_4).abs() < 1e-7);
        assert!((l - 0.5 * delta * delta).abs() < 1e-7, "{l}");
        assert!((dl - delta).abs() < 1e-7, "{dl}");
        // Squared error: delta^2 and 2 delta; done: no bootstrap (y = r).
        let (l, dl) = soft_dqn_loss(
            &p,
            TdLoss::Mse,
            &TargetInputs { done: true, ..x },
            1.2,
            &mut s,
        );
        assert!((l - 1.7 * 1.7).abs() < 1e-12 && (dl - 3.4).abs() < 1e-12);
        // Munchausen, alpha 0.5, lambda 2, clip -1: log pi_target(0|s) under Q_t(s) = (0, 0)
        // is ln(1/2); 0.5 * clip(2 ln(1/2), -1, 0) = -0.5. y = r + 2 ln(e^0 + e^(ln3/2)) - 0.5.
        let pm = TargetParams {
            lambda: 2.0,
            munchausen_alpha: 0.5,
            munchausen_clip_min: -1.0,
            double: false,
        };
        let xm = TargetInputs {
            q_target_state: Some(&[0.0, 0.0]),
            ..x
        };
        let (l, _) = soft_dqn_loss(&pm, TdLoss::Mse, &xm, 1.2, &mut s);
        let y = -0.5 + 2.0 * (1.0 + 3f64.sqrt()).ln() - 0.5;
        assert!((l - (1.2 - y) * (1.2 - y)).abs() < 1e-6, "{l}");
    }

    #[test]
    fn soft_dqn_loss_gradient_matches_finite_differences() {
        let p = TargetParams {
            lambda: 1.0 / 0.85,
            munchausen_alpha: 0.15,
            munchausen_clip_min: -100.0,
            double: true,
        };
        let x = TargetInputs {
            reward: 0.3,
            done: false,
            q_target_next: &[0.2, -0.7, 1.1],
            q_online_next: Some(&[0.1, 0.4, -0.2]),
            next_mask: &[true, false, true],
            q_target_state: Some(&[0.5, 0.25, -1.0]),
            mask: &[true, true, true],
            action: 1,
        };
        let mut s = [0.0; 3];
        for loss in [TdLoss::Huber, TdLoss::Mse] {
            for q in [-2.0, 0.4, 3.0] {
                let (_, dl) = soft_dqn_loss(&p, loss, &x, q, &mut s);
                let h = 1e-6;
                let fd = (soft_dqn_loss(&p, loss, &x, q + h, &mut s).0
                    - soft_dqn_loss(&p, loss, &x, q - h, &mut s).0)
                    / (2.0 * h);
                assert!((fd - dl).abs() < 1e-6, "{loss:?} q={q}: {fd} vs {dl}");
                // d loss / d r = -d loss / d Q(s, a).
                let lr = |r: f64| {
                    soft_dqn_loss(&p, loss, &TargetInputs { reward: r, ..x }, q, &mut [0.0; 3]).0
                };
                let fdr = (lr(0.3 + h) - lr(0.3 - h)) / (2.0 * h);
                assert!((fdr + dl).abs() < 1e-6, "{loss:?} q={q}: {fdr} vs {}", -dl);
            }
        }
    }

    /// Huber with threshold 1: residuals 0.5 (quadratic, 0.125) and -2 (linear, 1.5).
    #[test]
    fn sac_critic_loss_equals_the_hand_computed_literal() {
        let (l, d1, d2) = sac_critic_loss(TdLoss::Huber, 1.5, -1.0, 1.0);
        assert!((l - (0.125 + 1.5)).abs() < 1e-12, "{l}");
        assert!((d1 - 0.5).abs() < 1e-12 && (d2 + 1.0).abs() < 1e-12);
        let (l, d1, d2) = sac_critic_loss(TdLoss::Mse, 1.5, -1.0, 1.0);
        assert!(
            (l - (0.25 + 4.0)).abs() < 1e-12
                && (d1 - 1.0).abs() < 1e-12
                && (d2 + 4.0).abs() < 1e-12
        );
        for loss in [TdLoss::Huber, TdLoss::Mse] {
            let h = 1e-6;
            let f = |a: f64, b: f64| sac_critic_loss(loss, a, b, 0.2).0;
            let (_, d1, d2) = sac_critic_loss(loss, 0.7, -1.9, 0.2);
            assert!(((f(0.7 + h, -1.9) - f(0.7 - h, -1.9)) / (2.0 * h) - d1).abs() < 1e-6);
            assert!(((f(0.7, -1.9 + h) - f(0.7, -1.9 - h)) / (2.0 * h) - d2).abs() < 1e-6);
        }
    }

    /// Uniform actor over two valid actions, min(Q1, Q2) = (1, 0): V = 0.5 (1 + ln 2) + 0.5 ln 2
    /// = 0.5 + ln 2, so the actor loss is -(0.5 + ln 2); the third action is masked.
    #[test]
    fn sac_actor_loss_equals_the_literal_and_finite_differences() {
        let mask = [true, true, false];
        let q1 = [1.0f32, 0.5, 9.0];
        let q2 = [2.0f32, 0.0, 9.0];
        let mut lp = [0.0; 3];
        masked_log_softmax(&[0.0f32, 0.0, 0.0], &mask, 1.0, &mut lp);
        let mut g = [0.0f32; 3];
        let l = sac_actor_loss(&lp, &q1, &q2, &mask, 1.0, &mut g);
        assert!((l + (0.5 + 2f64.ln())).abs() < 1e-12, "{l}");
        assert_eq!(g[2], 0.0);
        let z = [0.3f32, -0.6, 0.0];
        let f = |z: &[f32]| {
            let mut lp = [0.0; 3];
            masked_log_softmax(z, &mask, 1.0, &mut lp);
            sac_actor_loss(&lp, &q1, &q2, &mask, 1.0, &mut [0.0; 3])
        };
        masked_log_softmax(&z, &mask, 1.0, &mut lp);
        let mut g = [0.0f32; 3];
        sac_actor_loss(&lp, &q1, &q2, &mask, 0.5, &mut g);
        for j in 0..2 {
            let (mut a, mut b) = (z, z);
            a[j] += 1e-3;
            b[j] -= 1e-3;
            let fd = (f(&a) - f(&b)) / 2e-3;
            assert!(
                (0.5 * fd - f64::from(g[j])).abs() < 1e-4,
                "{j}: {fd} vs {}",
                g[j]
            );
        }
    }
}
