//! Discrete soft actor-critic (Christodoulou, 2019, "Soft actor-critic for discrete action
//! settings") on the GFlowNet soft MDP, as in the paper's hypergrid code.
//!
//! An actor head and twin Q heads share one torso; two target Q heads follow by Polyak averaging.
//! With entropy coefficient 1 and the reduction's rewards:
//!
//! ```text
//! V_target(s') = sum_a' pi(a'|s') [min(Q1_t, Q2_t)(s', a') - log pi(a'|s')]
//! y            = r(s, a) + [not done] V_target(s')
//! L_critic     = mean_i [huber(Q1(s_i, a_i) - y_i) + huber(Q2(s_i, a_i) - y_i)]
//! L_actor      = - mean_i V(s_i),  V(s) = sum_a pi(a|s) [min(Q1_t, Q2_t)(s, a) - log pi(a|s)]
//! ```
//!
//! The behaviour policy is the actor; `log_z_learned` is `V(s0)` with the online critics.

use serde::{Deserialize, Serialize};
use softgfn_core::math::masked_log_softmax;
use softgfn_core::{BackwardPolicyKind, Rng};
use softgfn_nn::{AdamConfig, HeadSpec, OptimizerSpec, Outputs};
use softgfn_train::algorithm::check;
use softgfn_train::network::{NetworkChoice, NetworkKind, TransformerConfig};
use softgfn_train::replay::SampledBatch;
use softgfn_train::{Algorithm, AlgorithmConfig, BuildContext, PAPER_HORIZON, Result};

use crate::agent::{AgentContext, BatchFeatures, LossOutput, OnlineTarget, SoftRlAgent};
use crate::common::{
    NewPriority, ReplayKind, TdLoss, off_policy_settings, shared_fields, validate_shared,
};
use crate::driver::OffPolicy;
use crate::targets::{sac_actor_loss, sac_critic_loss, sac_value};

const ACTOR: usize = 0;
const Q1: usize = 1;
const Q2: usize = 2;

/// Discrete SAC configuration (`name = "sac"`); defaults from the paper's hypergrid code.
///
/// | Name | Default | Meaning | Range |
/// |---|---|---|---|
/// | `q_learning_rate` | 0.01 | Adam learning rate of the torso and the Q heads | > 0 |
/// | `policy_learning_rate` | 0.001 | Adam learning rate of the actor head | > 0 |
/// | `adam_eps` | 0.0001 | Adam epsilon | > 0 |
/// | `weight_decay` | 0.0 | L2 weight decay | >= 0 |
/// | `trajectories_per_iteration` | 16 | rollouts per iteration | >= 1 |
/// | `batch_size` | 256 | transitions per gradient step | >= 1 |
/// | `buffer_capacity` | 100000 | replay capacity | >= 1 |
/// | `replay` | `prioritized` | `prioritized` or `uniform` (new items at max priority) | |
/// | `per_alpha`, `per_beta`, `per_beta_final`, `per_beta_horizon` | 0.5, 0.0, 1.0, 62500 | PER | |
/// | `per_apply_weights` | false | multiply losses by importance weights | |
/// | `loss` | `huber` | critic loss | |
/// | `tau` | 0.25 | Polyak coefficient of the target critics | (0, 1] |
/// | `learning_starts` | 16 | iterations before the first gradient step | >= 0 |
/// | `learning_starts_transitions` | 0 | transitions stored before the first gradient step (both gates apply; the paper's molecules: 100000) | >= 0 |
/// | `leaf_coef` | 1.0 | critic-loss weight of terminal transitions | > 0 |
/// | `backward_policy` | `uniform` | fixed P_B; `learned` needs `naive_learned_backward` | |
/// | `naive_learned_backward` | false | the paper code's learned tied P_B (naive mode) | |
/// | `hidden_dim`, `hidden_layers` | 256, 2 | shared torso | >= 1 |
/// | `network` | `mlp` | `mlp`, `transformer` or `graph` (`[algo.network.graph]` for its sizes) | |
/// | `transformer.*` | 3 layers, d 64, 8 heads, ff 64, dropout 0.1 | see `softgfn_train::network` | |
/// | `epsilon`, `epsilon_final`, `epsilon_horizon` | 0, 0, 62500 | uniform-action probability schedule | [0, 1] |
/// | `temperature` | 1.0 | sampling temperature | > 0 |
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SacConfig {
    /// Learning rate of the torso and critics.
    pub q_learning_rate: f64,
    /// Learning rate of the actor head.
    pub policy_learning_rate: f64,
    /// Adam epsilon.
    pub adam_eps: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
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
    /// PER final importance exponent.
    pub per_beta_final: f64,
    /// Iterations of the beta annealing.
    pub per_beta_horizon: u64,
    /// Apply importance weights.
    pub per_apply_weights: bool,
    /// Critic loss.
    pub loss: TdLoss,
    /// Polyak coefficient.
    pub tau: f64,
    /// Iterations before learning.
    pub learning_starts: u64,
    /// Transitions stored before learning. The first gradient step is taken at the first
    /// iteration `i >= learning_starts` whose update has seen at least this many transitions
    /// (the iteration's own included). With `T` trajectories per iteration of a fixed `L`
    /// transitions each, iteration `i` has seen `(i + 1) T L`, so `N` transitions equal
    /// `learning_starts = ceil(N / (T L)) - 1`; with lengths that vary (molecules, sets) only
    /// this gate states the paper's warm-up exactly.
    pub learning_starts_transitions: u64,
    /// Critic-loss weight of terminal transitions.
    pub leaf_coef: f64,
    /// Backward policy.
    pub backward_policy: BackwardPolicyKind,
    /// Accept a learned backward policy in the paper's naive mode.
    pub naive_learned_backward: bool,
    /// Hidden width.
    pub hidden_dim: usize,
    /// Hidden layers.
    pub hidden_layers: usize,
    /// Network architecture: `mlp`, `transformer` or `graph` (with its sizes).
    pub network: NetworkKind,
    /// Transformer sizes (used when `network = "transformer"`).
    pub transformer: TransformerConfig,
    /// Initial epsilon.
    pub epsilon: f64,
    /// Final epsilon.
    pub epsilon_final: f64,
    /// Iterations of the epsilon decay.
    pub epsilon_horizon: u64,
    /// Sampling temperature.
    pub temperature: f64,
}

impl Default for SacConfig {
    fn default() -> Self {
        Self {
            q_learning_rate: 1e-2,
            policy_learning_rate: 1e-3,
            adam_eps: 1e-4,
            weight_decay: 0.0,
            trajectories_per_iteration: 16,
            batch_size: 256,
            buffer_capacity: 100_000,
            replay: ReplayKind::Prioritized,
            per_alpha: 0.5,
            per_beta: 0.0,
            per_beta_final: 1.0,
            per_beta_horizon: PAPER_HORIZON,
            per_apply_weights: false,
            loss: TdLoss::Huber,
            tau: 0.25,
            learning_starts: 16,
            learning_starts_transitions: 0,
            leaf_coef: 1.0,
            backward_policy: BackwardPolicyKind::Uniform,
            naive_learned_backward: false,
            hidden_dim: 256,
            hidden_layers: 2,
            network: NetworkKind::Mlp,
            transformer: TransformerConfig::default(),
            epsilon: 0.0,
            epsilon_final: 0.0,
            epsilon_horizon: PAPER_HORIZON,
            temperature: 1.0,
        }
    }
}

#[typetag::serde(name = "sac")]
impl AlgorithmConfig for SacConfig {
    fn validate(&self) -> Result<()> {
        check::positive("algo.q_learning_rate", self.q_learning_rate)?;
        check::positive("algo.policy_learning_rate", self.policy_learning_rate)?;
        check::positive("algo.adam_eps", self.adam_eps)?;
        validate_shared("sac", &shared_fields!(self))
    }

    fn build(&self, ctx: &mut BuildContext<'_>) -> Result<Box<dyn Algorithm>> {
        self.validate()?;
        // New transitions enter at the largest priority seen; targets follow every step.
        let settings = off_policy_settings!(self, NewPriority::Max, 1)?;
        let cfg = self.clone();
        Ok(Box::new(OffPolicy::new("sac", settings, ctx, |actx| {
            Sac::new(cfg, actx)
        })?))
    }

    fn clone_box(&self) -> Box<dyn AlgorithmConfig> {
        Box::new(self.clone())
    }
}

/// The discrete SAC agent: actor and twin critics on one torso, and its target copy; the loop
/// is the driver's ([`OffPolicy`]).
#[derive(Debug)]
pub struct Sac {
    nets: OnlineTarget,
    cfg: SacConfig,
    num_actions: usize,
    out_t: Outputs,
    lp: Vec<f64>,
}

impl Sac {
    /// Builds the shared network (actor, twin critics; a learned `P_B` head when the context
    /// asks) and its target copy.
    pub fn new(cfg: SacConfig, ctx: &mut AgentContext<'_, '_>) -> Result<Self> {
        let na = ctx.env.spec().num_actions;
        let heads = vec![
            HeadSpec::forward_actions("actor", na),
            HeadSpec::forward_actions("q1", na),
            HeadSpec::forward_actions("q2", na),
        ];
        let opt = OptimizerSpec {
            adam: AdamConfig {
                learning_rate: cfg.q_learning_rate as f32,
                eps: cfg.adam_eps as f32,
                weight_decay: cfg.weight_decay as f32,
                ..AdamConfig::default()
            },
            group_learning_rates: vec![("head:actor".to_string(), cfg.policy_learning_rate as f32)],
        };
        let online = ctx.build_online(
            "sac",
            &NetworkChoice {
                kind: cfg.network,
                hidden_dim: cfg.hidden_dim,
                hidden_layers: cfg.hidden_layers,
                transformer: &cfg.transformer,
            },
            heads,
            vec![],
            &opt,
        )?;
        Ok(Self {
            cfg,
            nets: OnlineTarget::new(online),
            num_actions: na,
            out_t: Outputs::new(),
            lp: Vec::new(),
        })
    }
}

impl SoftRlAgent for Sac {
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
        out.copy_from_slice(&self.nets.out.head(ACTOR)[..rows * self.num_actions]);
        Ok(())
    }

    fn sampling_logits(
        &mut self,
        features: &[f32],
        rows: usize,
        out: &mut [f32],
        rng: &mut Rng,
    ) -> Result<()> {
        if !(matches!(self.cfg.network, NetworkKind::Transformer)
            && self.cfg.transformer.sampling_dropout)
        {
            return self.policy_logits(features, rows, out);
        }
        self.nets
            .online
            .forward_dropout(features, rows, &mut self.nets.out, rng)?;
        out.copy_from_slice(&self.nets.out.head(ACTOR)[..rows * self.num_actions]);
        Ok(())
    }

    /// The actor at `s'` gives the bootstrap policy.
    fn needs_next_online(&self) -> bool {
        true
    }

    fn forward(&mut self, x: &BatchFeatures<'_>, rng: &mut Rng) -> Result<()> {
        x.forward_online(&mut self.nets.online, &mut self.nets.out, rng)?;
        // Target critics on [s; s'].
        self.nets
            .target
            .forward(x.features, 2 * x.n, &mut self.out_t)?;
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
        self.lp.resize(2 * n * na, 0.0);
        let actor = self.nets.out.head(ACTOR);
        for r in 0..2 * n {
            let mask = if r < n {
                &b.forward_masks[r * na..(r + 1) * na]
            } else {
                &b.next_forward_masks[(r - n) * na..(r - n + 1) * na]
            };
            masked_log_softmax(
                &actor[r * na..(r + 1) * na],
                mask,
                1.0,
                &mut self.lp[r * na..(r + 1) * na],
            );
        }
        let dims = self.nets.online.head_dims();
        self.nets.grad.reset(2 * n, &dims);
        let (tq1, tq2) = (self.out_t.head(Q1), self.out_t.head(Q2));
        let (q1, q2) = (self.nets.out.head(Q1), self.nets.out.head(Q2));
        let inv = 1.0 / n.max(1) as f64;
        let mut total = 0.0;
        for i in 0..n {
            let a = b.actions[i] as usize;
            let next = n + i;
            let v_next = if b.done[i] {
                0.0
            } else {
                sac_value(
                    &self.lp[next * na..(next + 1) * na],
                    &tq1[next * na..(next + 1) * na],
                    &tq2[next * na..(next + 1) * na],
                    &b.next_forward_masks[i * na..(i + 1) * na],
                )
            };
            let y = rewards[i] + v_next;
            let leaf = if b.done[i] { self.cfg.leaf_coef } else { 1.0 };
            let w = if self.cfg.per_apply_weights {
                b.weights[i]
            } else {
                1.0
            };
            let (l, d1, d2) = sac_critic_loss(
                self.cfg.loss,
                f64::from(q1[i * na + a]),
                f64::from(q2[i * na + a]),
                y,
            );
            out.losses.push(leaf * 0.5 * l);
            total += w * leaf * l * inv;
            if !train {
                continue;
            }
            self.nets.grad.head_mut(Q1)[i * na + a] += (w * leaf * d1 * inv) as f32;
            self.nets.grad.head_mut(Q2)[i * na + a] += (w * leaf * d2 * inv) as f32;
            // y contains +r in both critics' residuals.
            out.reward_grads.push(-w * leaf * (d1 + d2) * inv);
            // Actor: maximise V(s) under the target critics (loss -mean V(s)).
            total += inv
                * sac_actor_loss(
                    &self.lp[i * na..(i + 1) * na],
                    &tq1[i * na..(i + 1) * na],
                    &tq2[i * na..(i + 1) * na],
                    &b.forward_masks[i * na..(i + 1) * na],
                    inv,
                    &mut self.nets.grad.head_mut(ACTOR)[i * na..(i + 1) * na],
                );
        }
        Ok(total)
    }

    fn soft_value(&mut self, features: &[f32], mask: &[bool]) -> Result<f64> {
        self.nets.online.forward(features, 1, &mut self.nets.out)?;
        let mut lp = vec![0.0; self.num_actions];
        masked_log_softmax(self.nets.out.head(ACTOR), mask, 1.0, &mut lp);
        Ok(sac_value(
            &lp,
            self.nets.out.head(Q1),
            self.nets.out.head(Q2),
            mask,
        ))
    }
}
