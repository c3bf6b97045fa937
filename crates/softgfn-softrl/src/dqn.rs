//! SoftDQN and Munchausen DQN on the GFlowNet soft MDP (Tiapkin et al., AISTATS 2024).
//!
//! A Q-network over the forward actions is trained towards the soft Bellman target
//!
//! ```text
//! y = r(s, a) + [not done] lambda * logsumexp_{valid a'} Q_target(s', a') / lambda
//!     + alpha * clip(lambda * log pi_target(a | s), l0, 0)           (Munchausen, alpha > 0)
//! ```
//!
//! with the rewards of the reduction (`log P_B(s|s')` on intermediate edges, `log R(x)` on the
//! exit) and a Huber (or squared) loss. The behaviour policy is `softmax(Q / lambda)`; with
//! `lambda = 1` (SoftDQN) or `lambda = 1/(1 - alpha)` (Munchausen DQN, Vieillard et al. 2020) its
//! optimum samples `x` with probability `R(x)/Z`, and `V(s0) = log Z`.
//!
//! Transitions go to a replay buffer (prioritized by default); learning starts after
//! `learning_starts` iterations; the target network follows the online one by Polyak averaging
//! (`tau`) every `target_update_interval` updates (`tau = 1` gives hard copies).

use serde::{Deserialize, Serialize};
use softgfn_core::{BackwardPolicyKind, Rng};
use softgfn_nn::{AdamConfig, HeadSpec, Model, OptimizerSpec, Outputs};
use softgfn_train::algorithm::check;
use softgfn_train::network::{NetworkChoice, NetworkKind, TransformerConfig};
use softgfn_train::replay::SampledBatch;
use softgfn_train::{Algorithm, AlgorithmConfig, BuildContext, PAPER_HORIZON, Result, TrainError};

use crate::agent::{AgentContext, BatchFeatures, LossOutput, OnlineTarget, SoftRlAgent};
use crate::common::{
    NewPriority, QHeads, ReplayKind, TdLoss, off_policy_settings, shared_fields, validate_shared,
};
use crate::driver::OffPolicy;
use crate::targets::{TargetInputs, TargetParams, soft_dqn_loss, soft_value};

/// SoftDQN configuration (`name = "soft_dqn"`); `munchausen_dqn` is the same with other defaults.
///
/// Defaults are the paper's hypergrid settings.
///
/// | Name | Default | Meaning | Range |
/// |---|---|---|---|
/// | `learning_rate` | 0.001 | Adam learning rate | > 0 |
/// | `weight_decay` | 0.0 | L2 weight decay | >= 0 |
/// | `trajectories_per_iteration` | 16 | rollouts per iteration | >= 1 |
/// | `batch_size` | 256 | transitions per gradient step | >= 1 |
/// | `buffer_capacity` | 100000 | replay capacity (transitions) | >= 1 |
/// | `replay` | `prioritized` | `prioritized` or `uniform` | |
/// | `per_alpha` | 0.5 | priority exponent | >= 0 |
/// | `per_beta` | 0.0 | initial importance exponent | [0, 1] |
/// | `per_beta_final` | 1.0 | final importance exponent | [0, 1] |
/// | `per_beta_horizon` | 62500 | iterations of the beta annealing | >= 0 |
/// | `per_apply_weights` | false | multiply losses by importance weights (the paper's hypergrid code does not) | |
/// | `per_new_priority` | `loss` | `loss` (TD loss at insertion) or `max` | |
/// | `loss` | `huber` | `huber` (delta 1) or `mse` | |
/// | `tau` | 0.25 | Polyak coefficient of target updates (1 = hard copy) | (0, 1] |
/// | `target_update_interval` | 1 | gradient steps between target updates | >= 1 |
/// | `learning_starts` | 16 | iterations before the first gradient step | >= 0 |
/// | `learning_starts_transitions` | 0 | transitions stored before the first gradient step (both gates apply; the paper's molecules: 100000) | >= 0 |
/// | `entropy_coef` | 1 / (1 - munchausen_alpha) | soft-RL lambda | > 0 |
/// | `munchausen_alpha` | 0.0 (M-DQN: 0.15) | Munchausen coefficient | [0, 1) |
/// | `munchausen_clip_min` | -100.0 | lower clip l0 of the Munchausen term | <= 0 |
/// | `dueling` | false | `Q = V + log_softmax(A)` head | |
/// | `double` | false | double-soft bootstrap | |
/// | `leaf_coef` | 1.0 | loss weight of terminal transitions | > 0 |
/// | `backward_policy` | `uniform` | `uniform`, `tree`; `learned` needs `naive_learned_backward` | |
/// | `naive_learned_backward` | false | the paper's naive learned P_B (gradient through the target) | |
/// | `hidden_dim` | 256 | hidden width | >= 1 |
/// | `hidden_layers` | 2 | hidden layers | >= 1 |
/// | `network` | `mlp` | `mlp`, `transformer` (Q = the joint token readout) or `graph` (`[algo.network.graph]` for its sizes) | |
/// | `transformer.*` | 3 layers, d 64, 8 heads, ff 64, dropout 0.1 | see `softgfn_train::network` | |
/// | `epsilon` | 0.0 | initial uniform-action probability | [0, 1] |
/// | `epsilon_final` | 0.0 | final uniform-action probability | [0, 1] |
/// | `epsilon_horizon` | 62500 | iterations of the epsilon decay | >= 0 |
/// | `temperature` | 1.0 | extra sampling temperature | > 0 |
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SoftDqnConfig {
    /// Adam learning rate.
    pub learning_rate: f64,
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
    /// Apply importance weights to the loss.
    pub per_apply_weights: bool,
    /// Priority of new transitions.
    pub per_new_priority: NewPriority,
    /// TD loss.
    pub loss: TdLoss,
    /// Polyak coefficient.
    pub tau: f64,
    /// Gradient steps between target updates.
    pub target_update_interval: u64,
    /// Iterations before learning.
    pub learning_starts: u64,
    /// Transitions stored before learning. The first gradient step is taken at the first
    /// iteration `i >= learning_starts` whose update has seen at least this many transitions
    /// (the iteration's own included). With `T` trajectories per iteration of a fixed `L`
    /// transitions each, iteration `i` has seen `(i + 1) T L`, so `N` transitions equal
    /// `learning_starts = ceil(N / (T L)) - 1`; with lengths that vary (molecules, sets) only
    /// this gate states the paper's warm-up exactly.
    pub learning_starts_transitions: u64,
    /// Entropy coefficient lambda (absent: 1 / (1 - munchausen_alpha)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entropy_coef: Option<f64>,
    /// Munchausen coefficient.
    pub munchausen_alpha: f64,
    /// Lower clip of the Munchausen term.
    pub munchausen_clip_min: f64,
    /// Dueling head.
    pub dueling: bool,
    /// Double-soft bootstrap.
    pub double: bool,
    /// Loss weight of terminal transitions.
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

impl Default for SoftDqnConfig {
    fn default() -> Self {
        Self {
            learning_rate: 1e-3,
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
            per_new_priority: NewPriority::Loss,
            loss: TdLoss::Huber,
            tau: 0.25,
            target_update_interval: 1,
            learning_starts: 16,
            learning_starts_transitions: 0,
            entropy_coef: None,
            munchausen_alpha: 0.0,
            munchausen_clip_min: -100.0,
            dueling: false,
            double: false,
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

impl SoftDqnConfig {
    /// The entropy coefficient in force.
    pub fn lambda(&self) -> f64 {
        self.entropy_coef
            .unwrap_or(1.0 / (1.0 - self.munchausen_alpha))
    }

    fn check(&self, algo: &str) -> Result<()> {
        check::positive("algo.learning_rate", self.learning_rate)?;
        validate_shared(algo, &shared_fields!(self))?;
        if self.target_update_interval == 0 {
            return Err(TrainError::invalid(
                "algo.target_update_interval",
                0,
                "an integer >= 1",
            ));
        }
        if !(0.0..1.0).contains(&self.munchausen_alpha) {
            return Err(TrainError::invalid(
                "algo.munchausen_alpha",
                self.munchausen_alpha,
                "a number in [0, 1)",
            ));
        }
        if self.munchausen_clip_min.is_nan() || self.munchausen_clip_min > 0.0 {
            return Err(TrainError::invalid(
                "algo.munchausen_clip_min",
                self.munchausen_clip_min,
                "a number <= 0",
            ));
        }
        check::positive("algo.entropy_coef", self.lambda())
    }

    fn build_agent(
        &self,
        name: &'static str,
        ctx: &mut BuildContext<'_>,
    ) -> Result<Box<dyn Algorithm>> {
        self.check(name)?;
        let settings =
            off_policy_settings!(self, self.per_new_priority, self.target_update_interval)?;
        let cfg = self.clone();
        Ok(Box::new(OffPolicy::new(name, settings, ctx, |actx| {
            SoftDqn::new(name, cfg, actx)
        })?))
    }
}

#[typetag::serde(name = "soft_dqn")]
impl AlgorithmConfig for SoftDqnConfig {
    fn validate(&self) -> Result<()> {
        self.check("soft_dqn")
    }

    fn build(&self, ctx: &mut BuildContext<'_>) -> Result<Box<dyn Algorithm>> {
        self.build_agent("soft_dqn", ctx)
    }

    fn clone_box(&self) -> Box<dyn AlgorithmConfig> {
        Box::new(self.clone())
    }
}

/// Munchausen DQN (`name = "munchausen_dqn"`): [`SoftDqnConfig`] with `munchausen_alpha = 0.15`,
/// `munchausen_clip_min = -100` and `entropy_coef = 1/(1 - alpha)` (the paper's hypergrid).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MunchausenDqnConfig(pub SoftDqnConfig);

impl Default for MunchausenDqnConfig {
    fn default() -> Self {
        Self(SoftDqnConfig {
            munchausen_alpha: 0.15,
            munchausen_clip_min: -100.0,
            ..SoftDqnConfig::default()
        })
    }
}

#[typetag::serde(name = "munchausen_dqn")]
impl AlgorithmConfig for MunchausenDqnConfig {
    fn validate(&self) -> Result<()> {
        self.0.check("munchausen_dqn")
    }

    fn build(&self, ctx: &mut BuildContext<'_>) -> Result<Box<dyn Algorithm>> {
        self.0.build_agent("munchausen_dqn", ctx)
    }

    fn clone_box(&self) -> Box<dyn AlgorithmConfig> {
        Box::new(self.clone())
    }
}

/// The SoftDQN / Munchausen DQN agent: a Q-network (plain or dueling) and its target copy; the
/// loop is the driver's ([`OffPolicy`]).
#[derive(Debug)]
pub struct SoftDqn {
    nets: OnlineTarget,
    cfg: SoftDqnConfig,
    params: TargetParams,
    heads: QHeads,
    num_actions: usize,
    /// Rows of the last online pass (`n` or `2n`).
    online_rows: usize,
    // Scratch, reused between calls.
    out_t: Outputs,
    out_ts: Outputs,
    q: Vec<f32>,
    q_next: Vec<f32>,
    q_t: Vec<f32>,
    q_ts: Vec<f32>,
    lsm: Vec<f64>,
    lsm_unused: Vec<f64>,
    scratch: Vec<f64>,
}

impl SoftDqn {
    /// Builds the online network (with a learned `P_B` head when the context asks) and its
    /// target copy.
    pub fn new(name: &str, cfg: SoftDqnConfig, ctx: &mut AgentContext<'_, '_>) -> Result<Self> {
        let na = ctx.env.spec().num_actions;
        let mut heads_spec = Vec::new();
        let heads = if cfg.dueling {
            heads_spec.push(HeadSpec::new("value", 1));
            heads_spec.push(HeadSpec::forward_actions("advantage", na));
            QHeads::Dueling {
                value: 0,
                advantage: 1,
            }
        } else {
            heads_spec.push(HeadSpec::forward_actions("q", na));
            QHeads::Plain { q: 0 }
        };
        let opt = OptimizerSpec {
            adam: AdamConfig {
                learning_rate: cfg.learning_rate as f32,
                weight_decay: cfg.weight_decay as f32,
                ..AdamConfig::default()
            },
            group_learning_rates: vec![],
        };
        let online = ctx.build_online(
            name,
            &NetworkChoice {
                kind: cfg.network,
                hidden_dim: cfg.hidden_dim,
                hidden_layers: cfg.hidden_layers,
                transformer: &cfg.transformer,
            },
            heads_spec,
            vec![],
            &opt,
        )?;
        Ok(Self {
            params: TargetParams {
                lambda: cfg.lambda(),
                munchausen_alpha: cfg.munchausen_alpha,
                munchausen_clip_min: cfg.munchausen_clip_min,
                double: cfg.double,
            },
            cfg,
            nets: OnlineTarget::new(online),
            heads,
            num_actions: na,
            online_rows: 0,
            out_t: Outputs::new(),
            out_ts: Outputs::new(),
            q: Vec::new(),
            q_next: Vec::new(),
            q_t: Vec::new(),
            q_ts: Vec::new(),
            lsm: Vec::new(),
            lsm_unused: Vec::new(),
            scratch: Vec::new(),
        })
    }

    /// The online network.
    pub fn online(&self) -> &Model {
        &self.nets.online
    }
}

impl SoftRlAgent for SoftDqn {
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
        self.heads.logits(
            &self.nets.out,
            rows,
            self.num_actions,
            self.params.lambda,
            out,
        );
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
        self.heads.logits(
            &self.nets.out,
            rows,
            self.num_actions,
            self.params.lambda,
            out,
        );
        Ok(())
    }

    fn needs_next_online(&self) -> bool {
        self.params.double
    }

    fn forward(&mut self, x: &BatchFeatures<'_>, rng: &mut Rng) -> Result<()> {
        x.forward_online(&mut self.nets.online, &mut self.nets.out, rng)?;
        self.online_rows = x.online_rows;
        // Target network at s' (and at s for the Munchausen term).
        self.nets
            .target
            .forward(x.next_states(), x.n, &mut self.out_t)?;
        if self.params.munchausen_alpha > 0.0 {
            self.nets
                .target
                .forward(x.states(), x.n, &mut self.out_ts)?;
        }
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
        let munchausen = self.params.munchausen_alpha > 0.0;
        let h = self.heads;
        h.q_values(
            &self.out_t,
            0,
            n,
            na,
            &b.next_forward_masks,
            &mut self.q_t,
            &mut self.lsm_unused,
        );
        if munchausen {
            h.q_values(
                &self.out_ts,
                0,
                n,
                na,
                &b.forward_masks,
                &mut self.q_ts,
                &mut self.lsm_unused,
            );
        }
        h.q_values(
            &self.nets.out,
            0,
            n,
            na,
            &b.forward_masks,
            &mut self.q,
            &mut self.lsm,
        );
        if self.params.double {
            h.q_values(
                &self.nets.out,
                n,
                n,
                na,
                &b.next_forward_masks,
                &mut self.q_next,
                &mut self.lsm_unused,
            );
        }
        self.scratch.resize(na, 0.0);
        if train {
            let dims = self.nets.online.head_dims();
            self.nets.grad.reset(self.online_rows, &dims);
        }
        let mut total = 0.0;
        let inv = 1.0 / n.max(1) as f64;
        for i in 0..n {
            let a = b.actions[i] as usize;
            let x = TargetInputs {
                reward: rewards[i],
                done: b.done[i],
                q_target_next: &self.q_t[i * na..(i + 1) * na],
                q_online_next: self
                    .params
                    .double
                    .then(|| &self.q_next[i * na..(i + 1) * na]),
                next_mask: &b.next_forward_masks[i * na..(i + 1) * na],
                q_target_state: munchausen.then(|| &self.q_ts[i * na..(i + 1) * na]),
                mask: &b.forward_masks[i * na..(i + 1) * na],
                action: a,
            };
            let (l, dl) = soft_dqn_loss(
                &self.params,
                self.cfg.loss,
                &x,
                f64::from(self.q[i * na + a]),
                &mut self.scratch,
            );
            let leaf = if b.done[i] { self.cfg.leaf_coef } else { 1.0 };
            let w = if self.cfg.per_apply_weights {
                b.weights[i]
            } else {
                1.0
            };
            out.losses.push(leaf * l);
            total += w * leaf * l * inv;
            if train {
                let g = w * leaf * dl * inv;
                h.backward_one(
                    &mut self.nets.grad,
                    i,
                    na,
                    &b.forward_masks[i * na..(i + 1) * na],
                    if self.lsm.is_empty() {
                        &[]
                    } else {
                        &self.lsm[i * na..(i + 1) * na]
                    },
                    a,
                    g,
                );
                // y contains +r, so d loss / d r = -g.
                out.reward_grads.push(-g);
            }
        }
        Ok(total)
    }

    fn soft_value(&mut self, features: &[f32], mask: &[bool]) -> Result<f64> {
        let na = self.num_actions;
        self.nets.online.forward(features, 1, &mut self.nets.out)?;
        let mut q = Vec::new();
        let mut lsm = Vec::new();
        self.heads
            .q_values(&self.nets.out, 0, 1, na, mask, &mut q, &mut lsm);
        let mut lp = vec![0.0; na];
        Ok(soft_value(&q, mask, self.params.lambda, &mut lp))
    }
}
