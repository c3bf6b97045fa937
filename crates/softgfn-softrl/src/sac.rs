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

use std::path::Path;

use serde::{Deserialize, Serialize};
use softgfn_core::math::{log_softmax_backward_one, masked_log_softmax};
use softgfn_core::{BackwardPolicy, BackwardPolicyKind, Environment};
use softgfn_nn::{AdamConfig, HeadSpec, Model, OptimizerSpec, Outputs};
use softgfn_train::algorithm::check;
use softgfn_train::algorithm::{
    decode_state, encode_state, initial_inputs, model_tensors, restore_model,
};
use softgfn_train::network::{NetworkChoice, NetworkKind, TransformerConfig, build_model};
use softgfn_train::replay::{ReplayBuffer, ReplayShape, SampledBatch, Sampling};
use softgfn_train::{
    Algorithm, AlgorithmConfig, AlgorithmState, BuildContext, Exploration, ForwardPolicy,
    LinearSchedule, PAPER_HORIZON, Result, TrainError, UpdateContext, UpdateStats,
};

use crate::common::{
    ReplayKind, SharedFields, TdLoss, backward_mode, batch_rewards, encode_batch, learned_log_pb,
    push_all, sampling, transitions_of, validate_shared,
};
use crate::targets::{sac_value, sac_value_grad};

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
        validate_shared(
            "sac",
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
        )
    }

    fn build(&self, ctx: &mut BuildContext<'_>) -> Result<Box<dyn Algorithm>> {
        self.validate()?;
        Ok(Box::new(Sac::new(self.clone(), ctx)?))
    }

    fn clone_box(&self) -> Box<dyn AlgorithmConfig> {
        Box::new(self.clone())
    }
}

/// The discrete SAC agent.
#[derive(Debug)]
pub struct Sac {
    cfg: SacConfig,
    online: Model,
    target: Model,
    head_backward: Option<usize>,
    fixed_pb: Option<&'static dyn BackwardPolicy>,
    buffer: ReplayBuffer,
    epsilon: LinearSchedule,
    next_iteration: u64,
    num_actions: usize,
    num_backward_actions: usize,
    fresh: SampledBatch,
    batch: SampledBatch,
    feats: Vec<f32>,
    out: Outputs,
    out_t: Outputs,
    grad: Outputs,
    lp: Vec<f64>,
    lpb: Vec<f64>,
    log_pb: Vec<f64>,
    rewards: Vec<f64>,
    losses: Vec<f64>,
}

impl Sac {
    /// Builds the shared network (actor, twin critics), its target copy and the replay buffer.
    pub fn new(cfg: SacConfig, ctx: &mut BuildContext<'_>) -> Result<Self> {
        let spec = ctx.env.spec();
        let (na, nb) = (spec.num_actions, spec.num_backward_actions);
        let fixed_pb = backward_mode("sac", cfg.backward_policy, cfg.naive_learned_backward)?;
        let mut heads = vec![
            HeadSpec::forward_actions("actor", na),
            HeadSpec::forward_actions("q1", na),
            HeadSpec::forward_actions("q2", na),
        ];
        let head_backward = fixed_pb.is_none().then(|| {
            heads.push(HeadSpec::backward_actions("backward", nb));
            heads.len() - 1
        });
        let opt = OptimizerSpec {
            adam: AdamConfig {
                learning_rate: cfg.q_learning_rate as f32,
                eps: cfg.adam_eps as f32,
                weight_decay: cfg.weight_decay as f32,
                ..AdamConfig::default()
            },
            group_learning_rates: vec![("head:actor".to_string(), cfg.policy_learning_rate as f32)],
        };
        let online = build_model(
            "sac",
            &NetworkChoice {
                kind: cfg.network,
                hidden_dim: cfg.hidden_dim,
                hidden_layers: cfg.hidden_layers,
                transformer: &cfg.transformer,
            },
            ctx.env,
            heads,
            vec![],
            &opt,
            ctx.device,
            ctx.rng,
        )?;
        let target = online.clone_model();
        let buffer = ReplayBuffer::new(
            ReplayShape {
                state_width: spec.state_width,
                num_actions: na,
                num_backward_actions: nb,
            },
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
            epsilon: LinearSchedule {
                start: cfg.epsilon,
                end: cfg.epsilon_final,
                horizon: cfg.epsilon_horizon,
            },
            cfg,
            online,
            target,
            head_backward,
            fixed_pb,
            buffer,
            next_iteration: 0,
            num_actions: na,
            num_backward_actions: nb,
            fresh: SampledBatch::default(),
            batch: SampledBatch::default(),
            feats: Vec::new(),
            out: Outputs::new(),
            out_t: Outputs::new(),
            grad: Outputs::new(),
            lp: Vec::new(),
            lpb: Vec::new(),
            log_pb: Vec::new(),
            rewards: Vec::new(),
            losses: Vec::new(),
        })
    }

    fn train_step(
        &mut self,
        env: &dyn Environment,
        iteration: u64,
        rng: &mut softgfn_core::Rng,
    ) -> Result<f64> {
        self.buffer
            .sample(self.cfg.batch_size, iteration, rng, &mut self.batch)?;
        let b = &self.batch;
        let n = b.actions.len();
        let (na, nb) = (self.num_actions, self.num_backward_actions);
        // Online network on [s; s'] (the actor at s' gives the bootstrap policy).
        encode_batch(env, b, true, &mut self.feats)?;
        self.online
            .forward_train(&self.feats, 2 * n, &mut self.out, rng)?;
        // Target critics on [s; s'].
        self.target.forward(&self.feats, 2 * n, &mut self.out_t)?;
        self.lp.resize(2 * n * na, 0.0);
        let actor = self.out.head(ACTOR);
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
        self.log_pb.clear();
        if let Some(h) = self.head_backward {
            learned_log_pb(b, self.out.head(h), nb, &mut self.lpb, &mut self.log_pb);
        }
        batch_rewards(
            b,
            nb,
            self.fixed_pb.map(|p| p as &dyn BackwardPolicy),
            &self.log_pb,
            &mut self.rewards,
        );
        let dims = self.online.head_dims();
        self.grad.reset(2 * n, &dims);
        let (tq1, tq2) = (self.out_t.head(Q1), self.out_t.head(Q2));
        let (q1, q2) = (self.out.head(Q1), self.out.head(Q2));
        let inv = 1.0 / n.max(1) as f64;
        let mut total = 0.0;
        self.losses.clear();
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
            let y = self.rewards[i] + v_next;
            let leaf = if b.done[i] { self.cfg.leaf_coef } else { 1.0 };
            let w = if self.cfg.per_apply_weights {
                b.weights[i]
            } else {
                1.0
            };
            let (l1, d1) = self.cfg.loss.eval(f64::from(q1[i * na + a]) - y);
            let (l2, d2) = self.cfg.loss.eval(f64::from(q2[i * na + a]) - y);
            self.losses.push(leaf * 0.5 * (l1 + l2));
            total += w * leaf * (l1 + l2) * inv;
            self.grad.head_mut(Q1)[i * na + a] += (w * leaf * d1 * inv) as f32;
            self.grad.head_mut(Q2)[i * na + a] += (w * leaf * d2 * inv) as f32;
            if let (Some(h), false) = (self.head_backward, b.exit[i]) {
                let g = -w * leaf * (d1 + d2) * inv;
                log_softmax_backward_one(
                    &self.lpb[i * nb..(i + 1) * nb],
                    &b.next_backward_masks[i * nb..(i + 1) * nb],
                    b.backward_actions[i] as usize,
                    g,
                    &mut self.grad.head_mut(h)[next * nb..(next + 1) * nb],
                );
            }
            // Actor: maximise V(s) under the target critics (loss -mean V(s)).
            let v = sac_value_grad(
                &self.lp[i * na..(i + 1) * na],
                &tq1[i * na..(i + 1) * na],
                &tq2[i * na..(i + 1) * na],
                &b.forward_masks[i * na..(i + 1) * na],
                -inv,
                &mut self.grad.head_mut(ACTOR)[i * na..(i + 1) * na],
            );
            total -= v * inv;
        }
        self.online.backward(&self.grad, &[])?;
        self.online.step()?;
        if matches!(self.buffer.sampling(), Sampling::Prioritized(_)) {
            let idx = std::mem::take(&mut self.batch.indices);
            self.buffer.update_priorities(&idx, &self.losses)?;
            self.batch.indices = idx;
        }
        self.target.polyak_from(&self.online, self.cfg.tau as f32)?;
        Ok(total)
    }
}

impl ForwardPolicy for Sac {
    fn policy_logits(&mut self, features: &[f32], rows: usize, out: &mut [f32]) -> Result<()> {
        self.online.forward(features, rows, &mut self.out)?;
        out.copy_from_slice(&self.out.head(ACTOR)[..rows * self.num_actions]);
        Ok(())
    }
}

impl Algorithm for Sac {
    fn name(&self) -> &str {
        "sac"
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
        push_all(
            &mut self.buffer,
            &self.fresh,
            ctx.env.spec().state_width,
            None,
        )?;
        if ctx.iteration < self.cfg.learning_starts {
            return Ok(UpdateStats {
                loss: f64::NAN,
                grad_norm: f64::NAN,
            });
        }
        let loss = self.train_step(ctx.env, ctx.iteration, ctx.rng)?;
        Ok(UpdateStats {
            loss,
            grad_norm: f64::NAN,
        })
    }

    fn log_z_estimate(&mut self, env: &dyn Environment) -> Result<f64> {
        let (feats, mask) = initial_inputs(env)?;
        self.online.forward(&feats, 1, &mut self.out)?;
        let mut lp = vec![0.0; self.num_actions];
        masked_log_softmax(self.out.head(ACTOR), &mask, 1.0, &mut lp);
        Ok(sac_value(&lp, self.out.head(Q1), self.out.head(Q2), &mask))
    }

    fn save(&self, dir: &Path) -> Result<()> {
        self.online
            .save_safetensors(&dir.join(crate::dqn::ONLINE_FILE))?;
        Ok(self
            .target
            .save_safetensors(&dir.join(crate::dqn::TARGET_FILE))?)
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
            updates: 0,
        };
        Ok(AlgorithmState {
            tensors,
            bytes: encode_state("sac", &state)?,
        })
    }

    fn restore(&mut self, state: AlgorithmState) -> Result<()> {
        let saved: crate::common::Saved = decode_state("sac", &state.bytes)?;
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
                path: "sac".into(),
                message: "the saved replay buffer has another shape or capacity than this config"
                    .into(),
            });
        }
        self.buffer = saved.buffer;
        self.next_iteration = saved.next_iteration;
        Ok(())
    }

    fn load(&mut self, dir: &Path) -> Result<()> {
        self.online
            .load_safetensors(&dir.join(crate::dqn::ONLINE_FILE))?;
        Ok(self
            .target
            .load_safetensors(&dir.join(crate::dqn::TARGET_FILE))?)
    }
}
