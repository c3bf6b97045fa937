//! Pieces shared by the soft-RL agents: turning trajectories into transitions, encoding batches,
//! the reduction's rewards, Q-value heads (plain or dueling), replay and target-network settings.

use serde::{Deserialize, Serialize};
use softgfn_core::math::{log_softmax_backward_one, masked_log_softmax};
use softgfn_core::{BackwardPolicy, BackwardPolicyKind, Trajectories};
use softgfn_nn::Outputs;
use softgfn_train::algorithm::check;
use softgfn_train::network::TransformerConfig;
use softgfn_train::replay::{PerConfig, ReplayBuffer, SampledBatch, Sampling, TransitionRecord};
use softgfn_train::{Result, TrainError};

/// How new transitions enter a prioritized buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NewPriority {
    /// Their TD loss under the current networks, computed at insertion (the paper's hypergrid code).
    #[default]
    Loss,
    /// The largest priority seen so far (torchrl's default; the paper's bitseq and molecules).
    Max,
}

/// Replay sampling scheme of a config.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayKind {
    /// Prioritized replay (sum/min segment trees).
    #[default]
    Prioritized,
    /// Uniform replay.
    Uniform,
}

/// TD loss of the critics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TdLoss {
    /// Huber with threshold 1 (PyTorch `HuberLoss`).
    #[default]
    Huber,
    /// Squared error.
    Mse,
}

impl TdLoss {
    /// `(loss, d loss / d residual)`.
    #[inline]
    pub fn eval(self, residual: f64) -> (f64, f64) {
        match self {
            Self::Huber => softgfn_core::math::huber(residual, 1.0),
            Self::Mse => (residual * residual, 2.0 * residual),
        }
    }
}

/// Builds the replay sampling scheme from config fields, validating them.
#[allow(clippy::too_many_arguments)]
pub fn sampling(
    kind: ReplayKind,
    per_alpha: f64,
    per_beta: f64,
    per_beta_final: f64,
    per_beta_horizon: u64,
) -> Result<Sampling> {
    Ok(match kind {
        ReplayKind::Uniform => Sampling::Uniform,
        ReplayKind::Prioritized => {
            check::non_negative("algo.per_alpha", per_alpha)?;
            check::probability("algo.per_beta", per_beta)?;
            check::probability("algo.per_beta_final", per_beta_final)?;
            Sampling::Prioritized(PerConfig {
                alpha: per_alpha,
                beta: per_beta,
                beta_final: per_beta_final,
                beta_horizon: per_beta_horizon,
                eps: 1e-8,
            })
        }
    })
}

/// The fixed backward policy of a soft agent, or the naive learned mode, or an error explaining
/// why a learned backward policy is refused.
pub fn backward_mode(
    algo: &str,
    kind: BackwardPolicyKind,
    naive_learned_backward: bool,
) -> Result<Option<&'static dyn BackwardPolicy>> {
    match (kind.fixed(), naive_learned_backward) {
        (Some(pb), false) => Ok(Some(pb)),
        (None, true) => Ok(None),
        (None, false) => Err(TrainError::Unsupported {
            algo: algo.into(),
            message: "a learned backward policy breaks the soft-RL equivalence, which holds for a \
                      fixed P_B only; use algo.backward_policy = \"uniform\" (or \"tree\" on trees), \
                      or choose the paper's naive mode explicitly with \
                      algo.naive_learned_backward = true (P_B becomes a head of the Q-network \
                      trained through the TD target's log P_B)"
                .into(),
        }),
        (Some(_), true) => Err(TrainError::invalid(
            "algo.naive_learned_backward",
            true,
            "false unless algo.backward_policy = \"learned\"",
        )),
    }
}

/// Copies every transition of a batch of trajectories into a struct-of-arrays batch.
pub fn transitions_of(t: &Trajectories, out: &mut SampledBatch) {
    let (w, na, nb) = (t.state_width, t.num_actions, t.num_backward_actions);
    out.indices.clear();
    out.weights.clear();
    out.states.clear();
    out.next_states.clear();
    out.forward_masks.clear();
    out.next_forward_masks.clear();
    out.next_backward_masks.clear();
    out.actions.clear();
    out.backward_actions.clear();
    out.terminal_log_rewards.clear();
    out.done.clear();
    out.exit.clear();
    for tr in t.transitions() {
        let src = tr.state_row;
        out.states.extend_from_slice(t.state(src));
        out.forward_masks.extend_from_slice(t.forward_mask(src));
        match tr.next_row {
            Some(n) => {
                out.next_states.extend_from_slice(t.state(n));
                out.next_forward_masks.extend_from_slice(t.forward_mask(n));
                out.next_backward_masks
                    .extend_from_slice(t.backward_mask(n));
            }
            None => {
                out.next_states.extend_from_slice(t.state(src));
                out.next_forward_masks
                    .extend(std::iter::repeat_n(false, na));
                out.next_backward_masks
                    .extend(std::iter::repeat_n(false, nb));
            }
        }
        out.actions.push(tr.action);
        out.backward_actions.push(tr.backward_action);
        out.terminal_log_rewards
            .push(if tr.done { tr.log_reward } else { 0.0 });
        out.done.push(tr.done);
        out.exit.push(tr.next_row.is_none());
        out.indices.push(out.indices.len());
        out.weights.push(1.0);
    }
    debug_assert_eq!(out.states.len(), out.actions.len() * w);
}

/// Layout of a Q-network's heads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QHeads {
    /// One head of Q-values.
    Plain {
        /// Head index.
        q: usize,
    },
    /// `Q = V + log_softmax(A)` over valid actions.
    Dueling {
        /// Value head (width 1).
        value: usize,
        /// Advantage head (width = actions).
        advantage: usize,
    },
}

impl QHeads {
    /// Q-values of `rows` rows starting at `row0` of `out` into `dest` (rows x na); invalid
    /// actions get `-inf` in the dueling form. `lsm` receives the advantage log-softmax rows.
    #[allow(clippy::too_many_arguments)]
    pub fn q_values(
        self,
        out: &Outputs,
        row0: usize,
        rows: usize,
        na: usize,
        masks: &[bool],
        dest: &mut Vec<f32>,
        lsm: &mut Vec<f64>,
    ) {
        dest.resize(rows * na, 0.0);
        match self {
            Self::Plain { q } => {
                dest.copy_from_slice(&out.head(q)[row0 * na..(row0 + rows) * na]);
            }
            Self::Dueling { value, advantage } => {
                lsm.resize(rows * na, 0.0);
                let adv = out.head(advantage);
                let v = out.head(value);
                for r in 0..rows {
                    let lrow = &mut lsm[r * na..(r + 1) * na];
                    masked_log_softmax(
                        &adv[(row0 + r) * na..(row0 + r + 1) * na],
                        &masks[r * na..(r + 1) * na],
                        1.0,
                        lrow,
                    );
                    for a in 0..na {
                        dest[r * na + a] = (f64::from(v[row0 + r]) + lrow[a]) as f32;
                    }
                }
            }
        }
    }

    /// Adds `g = d loss / d Q(row, action)` into the head gradients.
    #[allow(clippy::too_many_arguments)]
    pub fn backward_one(
        self,
        grad: &mut Outputs,
        row: usize,
        na: usize,
        mask: &[bool],
        lsm_row: &[f64],
        action: usize,
        g: f64,
    ) {
        match self {
            Self::Plain { q } => grad.head_mut(q)[row * na + action] += g as f32,
            Self::Dueling { value, advantage } => {
                grad.head_mut(value)[row] += g as f32;
                log_softmax_backward_one(
                    lsm_row,
                    mask,
                    action,
                    g,
                    &mut grad.head_mut(advantage)[row * na..(row + 1) * na],
                );
            }
        }
    }

    /// Sampling logits up to a per-row constant: `Q / lambda` (plain) or `A / lambda` (dueling).
    pub fn logits(self, out: &Outputs, rows: usize, na: usize, lambda: f64, dest: &mut [f32]) {
        let src = match self {
            Self::Plain { q } => out.head(q),
            Self::Dueling { advantage, .. } => out.head(advantage),
        };
        let inv = (1.0 / lambda) as f32;
        for (d, &s) in dest.iter_mut().zip(&src[..rows * na]) {
            *d = s * inv;
        }
    }
}

/// Pushes every transition of `f` into `buffer`, with the given raw priorities (or the maximum).
pub fn push_all(
    buffer: &mut ReplayBuffer,
    f: &SampledBatch,
    state_width: usize,
    priorities: Option<&[f64]>,
) -> Result<()> {
    let w = state_width;
    for i in 0..f.actions.len() {
        let rec = TransitionRecord {
            state: &f.states[i * w..(i + 1) * w],
            next_state: &f.next_states[i * w..(i + 1) * w],
            action: f.actions[i],
            backward_action: f.backward_actions[i],
            terminal_log_reward: f.terminal_log_rewards[i],
            done: f.done[i],
            exit: f.exit[i],
        };
        buffer.push(&rec, priorities.map(|p| p[i]))?;
    }
    Ok(())
}

/// The [`SharedFields`] of a config of this crate (`soft_dqn`, `munchausen_dqn`, `sac`: the
/// fields have the same names in each), for [`validate_shared`].
macro_rules! shared_fields {
    ($c:expr) => {
        $crate::common::SharedFields {
            weight_decay: $c.weight_decay,
            trajectories_per_iteration: $c.trajectories_per_iteration,
            batch_size: $c.batch_size,
            buffer_capacity: $c.buffer_capacity,
            replay: $c.replay,
            per: (
                $c.per_alpha,
                $c.per_beta,
                $c.per_beta_final,
                $c.per_beta_horizon,
            ),
            tau: $c.tau,
            leaf_coef: $c.leaf_coef,
            hidden_dim: $c.hidden_dim,
            hidden_layers: $c.hidden_layers,
            transformer: &$c.transformer,
            epsilon: ($c.epsilon, $c.epsilon_final),
            temperature: $c.temperature,
            backward_policy: $c.backward_policy,
            naive_learned_backward: $c.naive_learned_backward,
        }
    };
}
pub(crate) use shared_fields;

/// The [`crate::OffPolicySettings`] of a config of this crate, given how new transitions enter a
/// prioritized buffer and the gradient steps between target updates: `Err` for PER exponents
/// out of range.
macro_rules! off_policy_settings {
    ($c:expr, $new_priority:expr, $target_update_interval:expr) => {
        $crate::common::sampling(
            $c.replay,
            $c.per_alpha,
            $c.per_beta,
            $c.per_beta_final,
            $c.per_beta_horizon,
        )
        .map(|sampling| $crate::OffPolicySettings {
            trajectories_per_iteration: $c.trajectories_per_iteration,
            batch_size: $c.batch_size,
            buffer_capacity: $c.buffer_capacity,
            sampling,
            new_priority: $new_priority,
            learning_starts: $c.learning_starts,
            learning_starts_transitions: $c.learning_starts_transitions,
            tau: $c.tau,
            target_update_interval: $target_update_interval,
            epsilon: softgfn_train::LinearSchedule {
                start: $c.epsilon,
                end: $c.epsilon_final,
                horizon: $c.epsilon_horizon,
            },
            temperature: $c.temperature,
            backward_policy: $c.backward_policy,
        })
    };
}
pub(crate) use off_policy_settings;

/// The fields every soft agent's config shares, for one validation routine.
pub struct SharedFields<'a> {
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Rollouts per iteration.
    pub trajectories_per_iteration: usize,
    /// Replay batch size.
    pub batch_size: usize,
    /// Replay capacity.
    pub buffer_capacity: usize,
    /// Replay scheme.
    pub replay: ReplayKind,
    /// PER `(alpha, beta, beta_final, beta_horizon)`.
    pub per: (f64, f64, f64, u64),
    /// Polyak coefficient.
    pub tau: f64,
    /// Loss weight of terminal transitions.
    pub leaf_coef: f64,
    /// Hidden width.
    pub hidden_dim: usize,
    /// Hidden layers.
    pub hidden_layers: usize,
    /// Transformer sizes.
    pub transformer: &'a TransformerConfig,
    /// Initial and final epsilon.
    pub epsilon: (f64, f64),
    /// Sampling temperature.
    pub temperature: f64,
    /// Backward policy.
    pub backward_policy: BackwardPolicyKind,
    /// The naive learned mode.
    pub naive_learned_backward: bool,
}

/// Validates the shared fields; errors name `algo.<field>`, the value and the range.
pub fn validate_shared(algo: &str, f: &SharedFields<'_>) -> Result<()> {
    f.transformer.validate()?;
    check::non_negative("algo.weight_decay", f.weight_decay)?;
    check::in_range(
        "algo.trajectories_per_iteration",
        f.trajectories_per_iteration,
        1,
        check::MAX_BATCH,
    )?;
    check::in_range("algo.batch_size", f.batch_size, 1, check::MAX_BATCH)?;
    check::at_least("algo.buffer_capacity", f.buffer_capacity, 1)?;
    sampling(f.replay, f.per.0, f.per.1, f.per.2, f.per.3)?;
    if !(f.tau > 0.0 && f.tau <= 1.0) {
        return Err(TrainError::invalid("algo.tau", f.tau, "a number in (0, 1]"));
    }
    check::positive("algo.leaf_coef", f.leaf_coef)?;
    check::in_range("algo.hidden_dim", f.hidden_dim, 1, check::MAX_HIDDEN_DIM)?;
    check::in_range(
        "algo.hidden_layers",
        f.hidden_layers,
        1,
        check::MAX_HIDDEN_LAYERS,
    )?;
    check::probability("algo.epsilon", f.epsilon.0)?;
    check::probability("algo.epsilon_final", f.epsilon.1)?;
    check::positive("algo.temperature", f.temperature)?;
    backward_mode(algo, f.backward_policy, f.naive_learned_backward)?;
    Ok(())
}
