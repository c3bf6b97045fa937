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

use std::path::Path;

use serde::{Deserialize, Serialize};
use softgfn_core::{BackwardPolicy, BackwardPolicyKind, Environment};
use softgfn_nn::{AdamConfig, HeadSpec, Model, OptimizerSpec, Outputs};
use softgfn_train::algorithm::check;
use softgfn_train::algorithm::{
    decode_state, encode_state, initial_inputs, model_tensors, restore_model,
};
use softgfn_train::network::{NetworkChoice, NetworkKind, TransformerConfig, build_model};
use softgfn_train::replay::{ReplayBuffer, ReplayShape, SampledBatch};
use softgfn_train::{
    Algorithm, AlgorithmConfig, AlgorithmState, BuildContext, Exploration, ForwardPolicy,
    LinearSchedule, PAPER_HORIZON, Result, TrainError, UpdateContext, UpdateStats,
};

use crate::common::{
    NewPriority, QHeads, ReplayKind, SharedFields, TdLoss, backward_mode, batch_rewards,
    encode_batch, learned_log_pb, push_all, sampling, transitions_of, validate_shared,
};
use crate::targets::{TargetInputs, TargetParams, soft_td_target, soft_value};

/// Model files written by [`Algorithm::save`].
pub const ONLINE_FILE: &str = "model.safetensors";
/// Target network file.
pub const TARGET_FILE: &str = "target.safetensors";

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
        validate_shared(
            algo,
            &SharedFields {
                weight_decay: self.weight_decay,
                trajectories_per_iteration: self.trajectories_per_iteration,
                batch_size: self.batch_size,
                buffer_capacity: self.buffer_capacity,
                replay: self.replay,
                per: (
                    self.per_alpha,
                    self.per_beta,
                    self.per_beta_final,
                    self.per_beta_horizon,
                ),
                tau: self.tau,
                leaf_coef: self.leaf_coef,
                hidden_dim: self.hidden_dim,
                hidden_layers: self.hidden_layers,
                transformer: &self.transformer,
                epsilon: (self.epsilon, self.epsilon_final),
                temperature: self.temperature,
                backward_policy: self.backward_policy,
                naive_learned_backward: self.naive_learned_backward,
            },
        )?;
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
        Ok(Box::new(SoftDqn::new(name, self.clone(), ctx)?))
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

/// The SoftDQN / Munchausen DQN agent.
#[derive(Debug)]
pub struct SoftDqn {
    name: &'static str,
    cfg: SoftDqnConfig,
    params: TargetParams,
    online: Model,
    target: Model,
    heads: QHeads,
    head_backward: Option<usize>,
    fixed_pb: Option<&'static dyn BackwardPolicy>,
    buffer: ReplayBuffer,
    epsilon: LinearSchedule,
    next_iteration: u64,
    updates: u64,
    num_actions: usize,
    num_backward_actions: usize,
    // Scratch, reused between calls.
    fresh: SampledBatch,
    batch: SampledBatch,
    feats: Vec<f32>,
    feats_t: Vec<f32>,
    out: Outputs,
    out_t: Outputs,
    out_ts: Outputs,
    grad: Outputs,
    q: Vec<f32>,
    q_next: Vec<f32>,
    q_t: Vec<f32>,
    q_ts: Vec<f32>,
    lsm: Vec<f64>,
    lsm_unused: Vec<f64>,
    lpb_rows: Vec<f64>,
    log_pb: Vec<f64>,
    rewards: Vec<f64>,
    losses: Vec<f64>,
    scratch: Vec<f64>,
}

impl SoftDqn {
    /// Builds the online and target networks and the replay buffer.
    pub fn new(name: &'static str, cfg: SoftDqnConfig, ctx: &mut BuildContext<'_>) -> Result<Self> {
        let spec = ctx.env.spec();
        let (na, nb) = (spec.num_actions, spec.num_backward_actions);
        let fixed_pb = backward_mode(name, cfg.backward_policy, cfg.naive_learned_backward)?;
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
        let head_backward = if fixed_pb.is_none() {
            heads_spec.push(HeadSpec::backward_actions("backward", nb));
            Some(heads_spec.len() - 1)
        } else {
            None
        };
        let opt = OptimizerSpec {
            adam: AdamConfig {
                learning_rate: cfg.learning_rate as f32,
                weight_decay: cfg.weight_decay as f32,
                ..AdamConfig::default()
            },
            group_learning_rates: vec![],
        };
        let online = build_model(
            name,
            &NetworkChoice {
                kind: cfg.network,
                hidden_dim: cfg.hidden_dim,
                hidden_layers: cfg.hidden_layers,
                transformer: &cfg.transformer,
            },
            ctx.env,
            heads_spec,
            vec![],
            &opt,
            ctx.device,
            ctx.rng,
        )?;
        let target = online.clone_model();
        let shape = ReplayShape {
            state_width: spec.state_width,
            num_actions: na,
            num_backward_actions: nb,
        };
        let buffer = ReplayBuffer::new(
            shape,
            cfg.buffer_capacity,
            sampling(
                cfg.replay,
                cfg.per_alpha,
                cfg.per_beta,
                cfg.per_beta_final,
                cfg.per_beta_horizon,
            )?,
        )?;
        Ok(Self {
            name,
            params: TargetParams {
                lambda: cfg.lambda(),
                munchausen_alpha: cfg.munchausen_alpha,
                munchausen_clip_min: cfg.munchausen_clip_min,
                double: cfg.double,
            },
            epsilon: LinearSchedule {
                start: cfg.epsilon,
                end: cfg.epsilon_final,
                horizon: cfg.epsilon_horizon,
            },
            cfg,
            online,
            target,
            heads,
            head_backward,
            fixed_pb,
            buffer,
            next_iteration: 0,
            updates: 0,
            num_actions: na,
            num_backward_actions: nb,
            fresh: SampledBatch::default(),
            batch: SampledBatch::default(),
            feats: Vec::new(),
            feats_t: Vec::new(),
            out: Outputs::new(),
            out_t: Outputs::new(),
            out_ts: Outputs::new(),
            grad: Outputs::new(),
            q: Vec::new(),
            q_next: Vec::new(),
            q_t: Vec::new(),
            q_ts: Vec::new(),
            lsm: Vec::new(),
            lsm_unused: Vec::new(),
            lpb_rows: Vec::new(),
            log_pb: Vec::new(),
            rewards: Vec::new(),
            losses: Vec::new(),
            scratch: Vec::new(),
        })
    }

    /// The replay buffer.
    pub fn buffer(&self) -> &ReplayBuffer {
        &self.buffer
    }

    /// The online network.
    pub fn online(&self) -> &Model {
        &self.online
    }

    /// TD losses of `which` batch (fresh transitions or a replay sample) into `self.losses`;
    /// with `train`, also backpropagates and takes an Adam step. Returns the mean loss.
    fn td_pass(
        &mut self,
        env: &dyn Environment,
        fresh: bool,
        train: bool,
        rng: &mut softgfn_core::Rng,
    ) -> Result<f64> {
        let b = if fresh { &self.fresh } else { &self.batch };
        let n = b.actions.len();
        let (na, nb) = (self.num_actions, self.num_backward_actions);
        let fd = env.spec().feature_dim;
        let need_next_online = self.params.double || self.head_backward.is_some();
        encode_batch(env, b, need_next_online, &mut self.feats)?;
        let rows = if need_next_online { 2 * n } else { n };
        if train {
            self.online
                .forward_train(&self.feats, rows, &mut self.out, rng)?;
        } else {
            self.online.forward(&self.feats, rows, &mut self.out)?;
        }
        // Target network at s' (and at s for the Munchausen term).
        self.feats_t.resize(n * fd, 0.0);
        env.encode(&b.next_states, &mut self.feats_t)?;
        self.target.forward(&self.feats_t, n, &mut self.out_t)?;
        self.heads.q_values(
            &self.out_t,
            0,
            n,
            na,
            &b.next_forward_masks,
            &mut self.q_t,
            &mut self.lsm_unused,
        );
        let munchausen = self.params.munchausen_alpha > 0.0;
        if munchausen {
            self.target
                .forward(&self.feats[..n * fd], n, &mut self.out_ts)?;
            self.heads.q_values(
                &self.out_ts,
                0,
                n,
                na,
                &b.forward_masks,
                &mut self.q_ts,
                &mut self.lsm_unused,
            );
        }
        self.heads.q_values(
            &self.out,
            0,
            n,
            na,
            &b.forward_masks,
            &mut self.q,
            &mut self.lsm,
        );
        if self.params.double {
            self.heads.q_values(
                &self.out,
                n,
                n,
                na,
                &b.next_forward_masks,
                &mut self.q_next,
                &mut self.lsm_unused,
            );
        }
        // Rewards of the reduction (naive mode: log P_B from the online backward head at s').
        self.log_pb.clear();
        if let Some(h) = self.head_backward {
            learned_log_pb(
                b,
                self.out.head(h),
                nb,
                &mut self.lpb_rows,
                &mut self.log_pb,
            );
        }
        batch_rewards(
            b,
            nb,
            self.fixed_pb.map(|p| p as &dyn BackwardPolicy),
            &self.log_pb,
            &mut self.rewards,
        );
        self.scratch.resize(na, 0.0);
        self.losses.clear();
        if train {
            let dims = self.online.head_dims();
            self.grad.reset(rows, &dims);
        }
        let mut total = 0.0;
        let inv = 1.0 / n.max(1) as f64;
        for i in 0..n {
            let a = b.actions[i] as usize;
            let x = TargetInputs {
                reward: self.rewards[i],
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
            let y = soft_td_target(&self.params, &x, &mut self.scratch);
            let delta = f64::from(self.q[i * na + a]) - y;
            let (l, dl) = self.cfg.loss.eval(delta);
            let leaf = if b.done[i] { self.cfg.leaf_coef } else { 1.0 };
            let w = if self.cfg.per_apply_weights {
                b.weights[i]
            } else {
                1.0
            };
            self.losses.push(leaf * l);
            total += w * leaf * l * inv;
            if train {
                let g = w * leaf * dl * inv;
                self.heads.backward_one(
                    &mut self.grad,
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
                if let (Some(h), false) = (self.head_backward, b.exit[i]) {
                    // y contains +log P_B, so d loss / d log P_B = -g (the naive mode).
                    softgfn_core::math::log_softmax_backward_one(
                        &self.lpb_rows[i * nb..(i + 1) * nb],
                        &b.next_backward_masks[i * nb..(i + 1) * nb],
                        b.backward_actions[i] as usize,
                        -g,
                        &mut self.grad.head_mut(h)[(n + i) * nb..(n + i + 1) * nb],
                    );
                }
            }
        }
        if train {
            self.online.backward(&self.grad, &[])?;
            self.online.step()?;
        }
        Ok(total)
    }

    fn update_target(&mut self) -> Result<()> {
        if self.updates.is_multiple_of(self.cfg.target_update_interval) {
            if self.cfg.tau >= 1.0 {
                self.target.copy_from(&self.online)?;
            } else {
                self.target.polyak_from(&self.online, self.cfg.tau as f32)?;
            }
        }
        Ok(())
    }
}

impl ForwardPolicy for SoftDqn {
    fn policy_logits(&mut self, features: &[f32], rows: usize, out: &mut [f32]) -> Result<()> {
        self.online.forward(features, rows, &mut self.out)?;
        self.heads
            .logits(&self.out, rows, self.num_actions, self.params.lambda, out);
        Ok(())
    }
}

impl Algorithm for SoftDqn {
    fn name(&self) -> &str {
        self.name
    }

    fn exploration(&self) -> Exploration {
        Exploration {
            epsilon: self.epsilon.value(self.next_iteration),
            temperature: self.cfg.temperature,
        }
    }

    fn trajectories_per_iteration(&self) -> usize {
        self.cfg.trajectories_per_iteration
    }

    fn update(&mut self, ctx: &mut UpdateContext<'_>) -> Result<UpdateStats> {
        self.next_iteration = ctx.iteration + 1;
        transitions_of(ctx.trajectories, &mut self.fresh);
        let prioritized = matches!(
            self.buffer.sampling(),
            softgfn_train::replay::Sampling::Prioritized(_)
        );
        let with_loss = prioritized && self.cfg.per_new_priority == NewPriority::Loss;
        if with_loss {
            self.td_pass(ctx.env, true, false, ctx.rng)?;
        }
        push_all(
            &mut self.buffer,
            &self.fresh,
            ctx.env.spec().state_width,
            with_loss.then_some(self.losses.as_slice()),
        )?;
        if ctx.iteration < self.cfg.learning_starts {
            return Ok(UpdateStats {
                loss: f64::NAN,
                grad_norm: f64::NAN,
            });
        }
        self.buffer
            .sample(self.cfg.batch_size, ctx.iteration, ctx.rng, &mut self.batch)?;
        let loss = self.td_pass(ctx.env, false, true, ctx.rng)?;
        if prioritized {
            let idx = std::mem::take(&mut self.batch.indices);
            self.buffer.update_priorities(&idx, &self.losses)?;
            self.batch.indices = idx;
        }
        self.updates += 1;
        self.update_target()?;
        Ok(UpdateStats {
            loss,
            grad_norm: f64::NAN,
        })
    }

    fn log_z_estimate(&mut self, env: &dyn Environment) -> Result<f64> {
        let (feats, mask) = initial_inputs(env)?;
        let na = self.num_actions;
        self.online.forward(&feats, 1, &mut self.out)?;
        let mut q = Vec::new();
        let mut lsm = Vec::new();
        self.heads
            .q_values(&self.out, 0, 1, na, &mask, &mut q, &mut lsm);
        let mut lp = vec![0.0; na];
        Ok(soft_value(&q, &mask, self.params.lambda, &mut lp))
    }

    fn save(&self, dir: &Path) -> Result<()> {
        self.online.save_safetensors(&dir.join(ONLINE_FILE))?;
        Ok(self.target.save_safetensors(&dir.join(TARGET_FILE))?)
    }

    fn state(&self) -> Result<AlgorithmState> {
        let (mut tensors, online_steps) = model_tensors("online", &self.online);
        let (target, target_steps) = model_tensors("target", &self.target);
        tensors.extend(target);
        let state = crate::common::SavedRef {
            online_steps: &online_steps,
            target_steps: &target_steps,
            buffer: &self.buffer,
            next_iteration: self.next_iteration,
            updates: self.updates,
        };
        Ok(AlgorithmState {
            tensors,
            bytes: encode_state(self.name, &state)?,
        })
    }

    fn restore(&mut self, state: AlgorithmState) -> Result<()> {
        let saved: crate::common::Saved = decode_state(self.name, &state.bytes)?;
        restore_model(
            "online",
            &mut self.online,
            &state.tensors,
            &saved.online_steps,
        )?;
        restore_model(
            "target",
            &mut self.target,
            &state.tensors,
            &saved.target_steps,
        )?;
        if saved.buffer.shape() != self.buffer.shape()
            || saved.buffer.capacity() != self.buffer.capacity()
        {
            return Err(TrainError::Checkpoint {
                path: self.name.into(),
                message: "the saved replay buffer has another shape or capacity than this config"
                    .into(),
            });
        }
        self.buffer = saved.buffer;
        self.next_iteration = saved.next_iteration;
        self.updates = saved.updates;
        Ok(())
    }

    fn load(&mut self, dir: &Path) -> Result<()> {
        self.online.load_safetensors(&dir.join(ONLINE_FILE))?;
        Ok(self.target.load_safetensors(&dir.join(TARGET_FILE))?)
    }
}
