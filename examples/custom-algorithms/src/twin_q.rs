//! Soft twin-Q (`name = "soft_twin_q"`): SoftDQN with two Q heads on one torso whose soft target
//! bootstraps on their minimum (the clipped double-Q of TD3 and SAC, in soft Q-learning):
//!
//! ```text
//! V_t(s')  = lambda * log sum_{valid a'} exp(min(Q1_t, Q2_t)(s', a') / lambda)
//! y        = r(s, a) + [not done] V_t(s')
//! L        = mean_i [huber(Q1(s_i, a_i) - y_i) + huber(Q2(s_i, a_i) - y_i)]
//! ```
//!
//! The behaviour policy is `softmax(min(Q1, Q2) / lambda)`, and `log_z_learned` is
//! `lambda * logsumexp(min(Q1, Q2)(s0) / lambda)`. At the fixed point both heads equal `Q*` and
//! the policy samples `R(x)/Z` (lambda = 1). Everything else (replay, rewards of the reduction,
//! warm-up, exploration, target updates, checkpoints) is the workspace's off-policy driver.

use serde::{Deserialize, Serialize};
use softgfn_core::{BackwardPolicyKind, Rng};
use softgfn_nn::{AdamConfig, HeadSpec, OptimizerSpec, Outputs};
use softgfn_softrl::common::{NewPriority, ReplayKind, TdLoss, sampling};
use softgfn_softrl::targets::{
    TargetInputs, TargetParams, sac_critic_loss, soft_td_target, soft_value,
};
use softgfn_softrl::{
    AgentContext, BatchFeatures, LossOutput, OffPolicy, OffPolicySettings, OnlineTarget,
    SoftRlAgent,
};
use softgfn_train::algorithm::check;
use softgfn_train::network::{NetworkChoice, NetworkKind, TransformerConfig};
use softgfn_train::replay::SampledBatch;
use softgfn_train::{
    Algorithm, AlgorithmConfig, BuildContext, LinearSchedule, PAPER_HORIZON, Result, TrainError,
};

const Q1: usize = 0;
const Q2: usize = 1;

/// Configuration of `soft_twin_q` (replay and schedule defaults as `soft_dqn`'s).
///
/// | Name | Default | Meaning | Range |
/// |---|---|---|---|
/// | `learning_rate` | 0.001 | Adam learning rate | > 0 |
/// | `entropy_coef` | 1.0 | lambda (1 samples `R/Z`) | > 0 |
/// | `trajectories_per_iteration` | 16 | rollouts per iteration | >= 1 |
/// | `batch_size` | 256 | transitions per gradient step | >= 1 |
/// | `buffer_capacity` | 100000 | replay capacity | >= 1 |
/// | `replay` | `prioritized` | `prioritized` (new items: their TD loss) or `uniform` | |
/// | `per_alpha`, `per_beta` | 0.5, 0.0 | PER exponents (beta annealed to 1 over 62500) | |
/// | `loss` | `huber` | `huber` or `mse` | |
/// | `tau` | 0.25 | Polyak coefficient of the target (1 = copy) | (0, 1] |
/// | `learning_starts` | 16 | iterations before the first gradient step | >= 0 |
/// | `learning_starts_transitions` | 0 | transitions before the first gradient step | >= 0 |
/// | `backward_policy` | `uniform` | `uniform` or `tree` | |
/// | `hidden_dim`, `hidden_layers` | 256, 2 | torso sizes | >= 1 |
/// | `network` | `mlp` | `mlp` or `transformer` | |
/// | `transformer.*` | see `softgfn_train::network` | | |
/// | `epsilon` | 0.0 | uniform-action probability | [0, 1] |
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SoftTwinQConfig {
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Entropy coefficient lambda.
    pub entropy_coef: f64,
    /// Rollouts per iteration.
    pub trajectories_per_iteration: usize,
    /// Transitions per gradient step.
    pub batch_size: usize,
    /// Replay capacity.
    pub buffer_capacity: usize,
    /// Replay scheme.
    pub replay: ReplayKind,
    /// PER priority exponent.
    pub per_alpha: f64,
    /// PER initial importance exponent.
    pub per_beta: f64,
    /// TD loss.
    pub loss: TdLoss,
    /// Polyak coefficient.
    pub tau: f64,
    /// Iterations before learning.
    pub learning_starts: u64,
    /// Transitions before learning.
    pub learning_starts_transitions: u64,
    /// Fixed backward policy.
    pub backward_policy: BackwardPolicyKind,
    /// Hidden width.
    pub hidden_dim: usize,
    /// Hidden layers.
    pub hidden_layers: usize,
    /// Network architecture.
    pub network: NetworkKind,
    /// Transformer sizes.
    pub transformer: TransformerConfig,
    /// Uniform-action probability.
    pub epsilon: f64,
}

impl Default for SoftTwinQConfig {
    fn default() -> Self {
        Self {
            learning_rate: 1e-3,
            entropy_coef: 1.0,
            trajectories_per_iteration: 16,
            batch_size: 256,
            buffer_capacity: 100_000,
            replay: ReplayKind::Prioritized,
            per_alpha: 0.5,
            per_beta: 0.0,
            loss: TdLoss::Huber,
            tau: 0.25,
            learning_starts: 16,
            learning_starts_transitions: 0,
            backward_policy: BackwardPolicyKind::Uniform,
            hidden_dim: 256,
            hidden_layers: 2,
            network: NetworkKind::Mlp,
            transformer: TransformerConfig::default(),
            epsilon: 0.0,
        }
    }
}

// ANCHOR: config
#[typetag::serde(name = "soft_twin_q")]
impl AlgorithmConfig for SoftTwinQConfig {
    fn validate(&self) -> Result<()> {
        self.transformer.validate()?;
        check::positive("algo.learning_rate", self.learning_rate)?;
        check::positive("algo.entropy_coef", self.entropy_coef)?;
        check::in_range(
            "algo.trajectories_per_iteration",
            self.trajectories_per_iteration,
            1,
            check::MAX_BATCH,
        )?;
        check::in_range("algo.batch_size", self.batch_size, 1, check::MAX_BATCH)?;
        check::at_least("algo.buffer_capacity", self.buffer_capacity, 1)?;
        if !(self.tau > 0.0 && self.tau <= 1.0) {
            return Err(TrainError::invalid(
                "algo.tau",
                self.tau,
                "a number in (0, 1]",
            ));
        }
        check::in_range("algo.hidden_dim", self.hidden_dim, 1, check::MAX_HIDDEN_DIM)?;
        check::in_range(
            "algo.hidden_layers",
            self.hidden_layers,
            1,
            check::MAX_HIDDEN_LAYERS,
        )?;
        check::probability("algo.epsilon", self.epsilon)?;
        if self.backward_policy.fixed().is_none() {
            return Err(TrainError::invalid(
                "algo.backward_policy",
                "learned",
                "a fixed backward policy (\"uniform\" or \"tree\")",
            ));
        }
        Ok(())
    }

    fn build(&self, ctx: &mut BuildContext<'_>) -> Result<Box<dyn Algorithm>> {
        self.validate()?;
        let settings = OffPolicySettings {
            trajectories_per_iteration: self.trajectories_per_iteration,
            batch_size: self.batch_size,
            buffer_capacity: self.buffer_capacity,
            sampling: sampling(
                self.replay,
                self.per_alpha,
                self.per_beta,
                1.0,
                PAPER_HORIZON,
            )?,
            new_priority: NewPriority::Loss,
            learning_starts: self.learning_starts,
            learning_starts_transitions: self.learning_starts_transitions,
            tau: self.tau,
            target_update_interval: 1,
            epsilon: LinearSchedule::constant(self.epsilon),
            temperature: 1.0,
            backward_policy: self.backward_policy,
        };
        let cfg = self.clone();
        Ok(Box::new(OffPolicy::new(
            "soft_twin_q",
            settings,
            ctx,
            |actx| SoftTwinQ::new(cfg, actx),
        )?))
    }

    fn clone_box(&self) -> Box<dyn AlgorithmConfig> {
        Box::new(self.clone())
    }
}
// ANCHOR_END: config

/// The soft twin-Q agent.
#[derive(Debug)]
pub struct SoftTwinQ {
    nets: OnlineTarget,
    cfg: SoftTwinQConfig,
    num_actions: usize,
    online_rows: usize,
    out_t: Outputs,
    q_min: Vec<f32>,
    scratch: Vec<f64>,
}

impl SoftTwinQ {
    /// Builds the torso with heads `q1` and `q2`, and its target copy.
    pub fn new(cfg: SoftTwinQConfig, ctx: &mut AgentContext<'_, '_>) -> Result<Self> {
        let na = ctx.env.spec().num_actions;
        let online = ctx.build_online(
            "soft_twin_q",
            &NetworkChoice {
                kind: cfg.network,
                hidden_dim: cfg.hidden_dim,
                hidden_layers: cfg.hidden_layers,
                transformer: &cfg.transformer,
            },
            vec![
                HeadSpec::forward_actions("q1", na),
                HeadSpec::forward_actions("q2", na),
            ],
            vec![],
            &OptimizerSpec {
                adam: AdamConfig {
                    learning_rate: cfg.learning_rate as f32,
                    ..AdamConfig::default()
                },
                group_learning_rates: vec![],
            },
        )?;
        Ok(Self {
            cfg,
            nets: OnlineTarget::new(online),
            num_actions: na,
            online_rows: 0,
            out_t: Outputs::new(),
            q_min: Vec::new(),
            scratch: Vec::new(),
        })
    }
}

/// `min(q1, q2)` of rows `row0..row0 + rows` into `dest`.
fn q_min(out: &Outputs, row0: usize, rows: usize, na: usize, dest: &mut Vec<f32>) {
    let (q1, q2) = (out.head(Q1), out.head(Q2));
    dest.clear();
    dest.extend((row0 * na..(row0 + rows) * na).map(|k| q1[k].min(q2[k])));
}

// ANCHOR: agent
impl SoftRlAgent for SoftTwinQ {
    fn nets(&self) -> &OnlineTarget {
        &self.nets
    }

    fn nets_mut(&mut self) -> &mut OnlineTarget {
        &mut self.nets
    }

    fn policy_logits(&mut self, features: &[f32], rows: usize, out: &mut [f32]) -> Result<()> {
        self.nets
            .online
            .forward(features, rows, &mut self.nets.out)?;
        q_min(&self.nets.out, 0, rows, self.num_actions, &mut self.q_min);
        let inv = (1.0 / self.cfg.entropy_coef) as f32;
        for (o, &q) in out.iter_mut().zip(&self.q_min) {
            *o = q * inv;
        }
        Ok(())
    }

    fn needs_next_online(&self) -> bool {
        false // the bootstrap uses the target heads only
    }

    fn forward(&mut self, x: &BatchFeatures<'_>, rng: &mut Rng) -> Result<()> {
        x.forward_online(&mut self.nets.online, &mut self.nets.out, rng)?;
        self.online_rows = x.online_rows;
        self.nets
            .target
            .forward(x.next_states(), x.n, &mut self.out_t)?;
        Ok(())
    }

    fn loss(
        &mut self,
        b: &SampledBatch,
        rewards: &[f64],
        train: bool,
        out: &mut LossOutput,
    ) -> Result<f64> {
        let n = b.actions.len();
        let na = self.num_actions;
        q_min(&self.out_t, 0, n, na, &mut self.q_min);
        self.scratch.resize(na, 0.0);
        if train {
            let dims = self.nets.online.head_dims();
            self.nets.grad.reset(self.online_rows, &dims);
        }
        // SoftDQN's target without the Munchausen term, bootstrapping on min(Q1, Q2) of the
        // target heads; the twin loss is SAC's critic loss.
        let params = TargetParams {
            lambda: self.cfg.entropy_coef,
            munchausen_alpha: 0.0,
            munchausen_clip_min: 0.0,
            double: false,
        };
        let inv = 1.0 / n.max(1) as f64;
        let mut total = 0.0;
        for i in 0..n {
            let (a, row) = (b.actions[i] as usize, i * na..(i + 1) * na);
            let target = TargetInputs {
                reward: rewards[i],
                done: b.done[i],
                q_target_next: &self.q_min[row.clone()],
                q_online_next: None,
                next_mask: &b.next_forward_masks[row],
                q_target_state: None,
                mask: &[], // read by the Munchausen term only
                action: a,
            };
            let y = soft_td_target(&params, &target, &mut self.scratch);
            let (q1, q2) = (
                self.nets.out.head(Q1)[i * na + a],
                self.nets.out.head(Q2)[i * na + a],
            );
            let (l, d1, d2) = sac_critic_loss(self.cfg.loss, q1.into(), q2.into(), y);
            out.losses.push(0.5 * l);
            total += l * inv;
            if train {
                self.nets.grad.head_mut(Q1)[i * na + a] += (d1 * inv) as f32;
                self.nets.grad.head_mut(Q2)[i * na + a] += (d2 * inv) as f32;
                out.reward_grads.push(-(d1 + d2) * inv);
            }
        }
        Ok(total)
    }

    fn soft_value(&mut self, features: &[f32], mask: &[bool]) -> Result<f64> {
        self.nets.online.forward(features, 1, &mut self.nets.out)?;
        q_min(&self.nets.out, 0, 1, self.num_actions, &mut self.q_min);
        let mut lp = vec![0.0; self.num_actions];
        Ok(soft_value(
            &self.q_min,
            mask,
            self.cfg.entropy_coef,
            &mut lp,
        ))
    }
}
// ANCHOR_END: agent
