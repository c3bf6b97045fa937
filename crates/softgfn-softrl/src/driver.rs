//! The off-policy driver: one [`Algorithm`] for any [`SoftRlAgent`].
//!
//! It owns what the agents share: transitions from trajectories, the rewards of the reduction
//! (one call to [`soft_reward`], fixed or learned `P_B` through [`BackwardLogProbs`]), replay
//! (uniform or prioritized, masks recomputed per batch), the learning warm-up
//! (`learning_starts` iterations and `learning_starts_transitions` transitions), the exploration
//! schedule over its own horizon, target updates, and the buffer's part of checkpoints. Each
//! state of a batch is encoded once per update.

use std::path::Path;

use serde::{Deserialize, Serialize};
use softgfn_core::soft::soft_reward;
use softgfn_core::{BackwardPolicyKind, Environment, Rng};
use softgfn_train::algorithm::{
    decode_state, encode_state, initial_inputs, model_tensors, restore_model,
};
use softgfn_train::replay::{ReplayBuffer, ReplayShape, SampledBatch, Sampling};
use softgfn_train::{
    Algorithm, AlgorithmState, BackwardLogProbs, BuildContext, Exploration, ForwardPolicy,
    LinearSchedule, Result, TrainError, UpdateContext, UpdateStats,
};

use crate::agent::{AgentContext, BatchFeatures, LossOutput, SoftRlAgent};
use crate::common::{NewPriority, push_all, transitions_of};

/// What the driver needs from an agent's config.
#[derive(Clone, Debug, PartialEq)]
pub struct OffPolicySettings {
    /// Rollouts per iteration.
    pub trajectories_per_iteration: usize,
    /// Transitions per gradient step.
    pub batch_size: usize,
    /// Replay capacity.
    pub buffer_capacity: usize,
    /// Replay sampling.
    pub sampling: Sampling,
    /// Priority of new transitions in a prioritized buffer.
    pub new_priority: NewPriority,
    /// Iterations before the first gradient step.
    pub learning_starts: u64,
    /// Transitions stored before the first gradient step (both gates must be passed).
    pub learning_starts_transitions: u64,
    /// Polyak coefficient of target updates (`>= 1`: hard copies).
    pub tau: f64,
    /// Gradient steps between target updates.
    pub target_update_interval: u64,
    /// Probability of a uniform action, by iteration.
    pub epsilon: LinearSchedule,
    /// Sampling temperature.
    pub temperature: f64,
    /// Backward policy (`learned` is the paper's naive mode: a head of the online network).
    pub backward_policy: BackwardPolicyKind,
}

/// Any [`SoftRlAgent`] driven off-policy as an [`Algorithm`].
#[derive(Debug)]
pub struct OffPolicy<A: SoftRlAgent> {
    name: &'static str,
    agent: A,
    settings: OffPolicySettings,
    backward: BackwardLogProbs,
    buffer: ReplayBuffer,
    next_iteration: u64,
    updates: u64,
    /// Transitions pushed since the start of the run.
    transitions_seen: u64,
    // Scratch, reused between calls.
    fresh: SampledBatch,
    batch: SampledBatch,
    feats: Vec<f32>,
    rewards: Vec<f64>,
    loss: LossOutput,
}

/// Non-tensor state, as written (borrowed). Layout 2; layout 1 (two networks, no transition
/// count) is still read.
#[derive(Serialize)]
struct SavedRef<'a> {
    magic: u64,
    steps: Vec<(String, Vec<(String, u64)>)>,
    buffer: &'a ReplayBuffer,
    next_iteration: u64,
    updates: u64,
    transitions_seen: u64,
}

/// Non-tensor state, as read back (same field order as [`SavedRef`]).
#[derive(Deserialize)]
struct Saved {
    magic: u64,
    steps: Vec<(String, Vec<(String, u64)>)>,
    buffer: ReplayBuffer,
    next_iteration: u64,
    updates: u64,
    transitions_seen: u64,
}

/// The state written before the driver existed (SoftDQN, M-DQN and SAC, format version 1).
#[derive(Deserialize)]
struct SavedV1 {
    online_steps: Vec<(String, u64)>,
    target_steps: Vec<(String, u64)>,
    buffer: ReplayBuffer,
    next_iteration: u64,
    updates: u64,
}

/// Marks layout 2 of the driver's state (`"SOFTRL02"`).
const MAGIC: u64 = u64::from_le_bytes(*b"SOFTRL02");

/// File of a network: the first is `model.safetensors`, the others `<name>.safetensors`.
fn network_file(index: usize, name: &str) -> String {
    if index == 0 {
        "model.safetensors".into()
    } else {
        format!("{name}.safetensors")
    }
}

impl<A: SoftRlAgent> OffPolicy<A> {
    /// Builds the agent with `make` (given a context whose `build_online` adds a learned
    /// `P_B` head when asked for) and an empty buffer.
    pub fn new(
        name: &'static str,
        settings: OffPolicySettings,
        ctx: &mut BuildContext<'_>,
        make: impl FnOnce(&mut AgentContext<'_, '_>) -> Result<A>,
    ) -> Result<Self> {
        let spec = ctx.env.spec().clone();
        let mut actx = AgentContext::new(ctx, settings.backward_policy);
        let agent = make(&mut actx)?;
        let head = actx.backward_head();
        if settings.backward_policy.fixed().is_none() && head.is_none() {
            return Err(TrainError::Unsupported {
                algo: name.into(),
                message: "a learned backward policy needs the online network built with \
                          AgentContext::build_online"
                    .into(),
            });
        }
        let buffer = ReplayBuffer::new(
            ReplayShape {
                state_width: spec.state_width,
                num_actions: spec.num_actions,
                num_backward_actions: spec.num_backward_actions,
            },
            settings.buffer_capacity,
            settings.sampling,
        )?;
        Ok(Self {
            name,
            agent,
            backward: BackwardLogProbs::new(
                settings.backward_policy,
                head,
                spec.num_backward_actions,
            ),
            settings,
            buffer,
            next_iteration: 0,
            updates: 0,
            transitions_seen: 0,
            fresh: SampledBatch::default(),
            batch: SampledBatch::default(),
            feats: Vec::new(),
            rewards: Vec::new(),
            loss: LossOutput::default(),
        })
    }

    /// The agent.
    pub fn agent(&self) -> &A {
        &self.agent
    }

    /// The replay buffer.
    pub fn buffer(&self) -> &ReplayBuffer {
        &self.buffer
    }

    /// Gradient steps taken.
    pub fn updates(&self) -> u64 {
        self.updates
    }

    fn prioritized(&self) -> bool {
        matches!(self.buffer.sampling(), Sampling::Prioritized(_))
    }

    /// Forward passes, rewards and losses of the fresh transitions (`fresh`) or of the sampled
    /// batch; with `train`, also the gradient step. Returns the batch loss.
    fn pass(
        &mut self,
        env: &dyn Environment,
        fresh: bool,
        train: bool,
        rng: &mut Rng,
    ) -> Result<f64> {
        let b = if fresh { &self.fresh } else { &self.batch };
        let n = b.actions.len();
        let spec = env.spec();
        let (fd, nb) = (spec.feature_dim, spec.num_backward_actions);
        // Every state once: [s; s'].
        self.feats.resize(2 * n * fd, 0.0);
        env.encode(&b.states, &mut self.feats[..n * fd])?;
        env.encode(&b.next_states, &mut self.feats[n * fd..])?;
        let online_rows = if self.agent.needs_next_online() || self.backward.is_learned() {
            2 * n
        } else {
            n
        };
        let batch = BatchFeatures {
            features: &self.feats,
            n,
            online_rows,
            train,
        };
        self.agent.forward(&batch, rng)?;
        // Rewards of the reduction (a learned P_B: the online backward head at s').
        if let Some(h) = self.backward.head() {
            self.backward.prepare(
                self.agent.online_outputs().head(h),
                n,
                n,
                &b.next_backward_masks,
            );
        }
        self.rewards.clear();
        for i in 0..n {
            let r = self.backward.with_policy(i, |pb| {
                soft_reward(
                    pb,
                    &b.next_backward_masks[i * nb..(i + 1) * nb],
                    b.backward_actions[i],
                    b.exit[i],
                    b.done[i],
                    b.terminal_log_rewards[i],
                )
            });
            self.rewards.push(r);
        }
        self.loss.clear();
        let loss = self.agent.loss(b, &self.rewards, train, &mut self.loss)?;
        if train {
            if let Some(h) = self.backward.head() {
                // The reward holds +log P_B(s|s'): its gradient flows into the backward head.
                let grad = self.agent.gradients_mut().head_mut(h);
                for i in (0..n).filter(|&i| !b.exit[i]) {
                    self.backward.backward(
                        i,
                        &b.next_backward_masks[i * nb..(i + 1) * nb],
                        b.backward_actions[i],
                        self.loss.reward_grads[i],
                        &mut grad[(n + i) * nb..(n + i + 1) * nb],
                    );
                }
            }
            self.agent.step()?;
        }
        Ok(loss)
    }

    /// Whether both warm-up gates are passed at `iteration`.
    fn learning(&self, iteration: u64) -> bool {
        iteration >= self.settings.learning_starts
            && self.transitions_seen >= self.settings.learning_starts_transitions
    }
}

impl<A: SoftRlAgent> ForwardPolicy for OffPolicy<A> {
    fn policy_logits(&mut self, features: &[f32], rows: usize, out: &mut [f32]) -> Result<()> {
        self.agent.policy_logits(features, rows, out)
    }

    fn sampling_logits(
        &mut self,
        features: &[f32],
        rows: usize,
        out: &mut [f32],
        rng: &mut Rng,
    ) -> Result<()> {
        self.agent.sampling_logits(features, rows, out, rng)
    }
}

impl<A: SoftRlAgent> Algorithm for OffPolicy<A> {
    /// The fixed `P_B` of the reduction (`uniform`, `tree`), or, in the naive learned mode, the
    /// online network's backward head (masked log-softmax, evaluation mode): the `P_B` the
    /// agent trains with.
    fn backward_log_probs(
        &mut self,
        features: &[f32],
        backward_masks: &[bool],
        rows: usize,
        out: &mut [f64],
    ) -> Result<()> {
        // Checks the lengths of the masks and of `out`.
        softgfn_train::algorithm::uniform_backward_log_probs(backward_masks, rows, out)?;
        if rows == 0 {
            return Ok(());
        }
        let nb = backward_masks.len() / rows;
        if let Some(h) = self.backward.head() {
            if features.is_empty() || !features.len().is_multiple_of(rows) {
                return Err(softgfn_core::CoreError::BufferLength {
                    what: format!("features of {rows} states"),
                    expected: rows * (features.len() / rows).max(1),
                    found: features.len(),
                }
                .into());
            }
            // The agent's forward pass takes a batch of transitions, [s; s']: the states twice
            // (its target networks read the second half; only the online outputs are used).
            self.feats.clear();
            self.feats.extend_from_slice(features);
            self.feats.extend_from_slice(features);
            // Evaluation mode draws nothing from the generator.
            let mut rng = softgfn_core::rng::stream(0, softgfn_core::rng::Stream::Init);
            let batch = BatchFeatures {
                features: &self.feats,
                n: rows,
                online_rows: rows,
                train: false,
            };
            self.agent.forward(&batch, &mut rng)?;
            self.backward
                .prepare(self.agent.online_outputs().head(h), 0, rows, backward_masks);
        }
        for r in 0..rows {
            let mask = &backward_masks[r * nb..(r + 1) * nb];
            let row = &mut out[r * nb..(r + 1) * nb];
            self.backward.with_policy(r, |pb| pb.log_probs(mask, row));
        }
        Ok(())
    }

    fn name(&self) -> &str {
        self.name
    }

    fn exploration(&self) -> Exploration {
        Exploration {
            epsilon: self.settings.epsilon.value(self.next_iteration),
            temperature: self.settings.temperature,
        }
    }

    fn trajectories_per_iteration(&self) -> usize {
        self.settings.trajectories_per_iteration
    }

    fn update(&mut self, ctx: &mut UpdateContext<'_>) -> Result<UpdateStats> {
        self.next_iteration = ctx.iteration + 1;
        transitions_of(ctx.trajectories, &mut self.fresh);
        let with_loss = self.prioritized() && self.settings.new_priority == NewPriority::Loss;
        if with_loss {
            self.pass(ctx.env, true, false, ctx.rng)?;
            finite_td_errors(&self.loss.losses, ctx.iteration)?;
        }
        push_all(
            &mut self.buffer,
            &self.fresh,
            ctx.env.spec().state_width,
            with_loss.then_some(self.loss.losses.as_slice()),
        )?;
        self.transitions_seen += self.fresh.actions.len() as u64;
        if !self.learning(ctx.iteration) {
            return Ok(UpdateStats {
                loss: f64::NAN,
                grad_norm: f64::NAN,
            });
        }
        self.buffer.sample(
            self.settings.batch_size,
            ctx.iteration,
            ctx.rng,
            &mut self.batch,
        )?;
        self.batch.fill_masks(ctx.env)?;
        let loss = self.pass(ctx.env, false, true, ctx.rng)?;
        if self.prioritized() {
            finite_td_errors(&self.loss.losses, ctx.iteration)?;
            self.buffer
                .update_priorities(&self.batch.indices, &self.loss.losses)?;
        }
        self.updates += 1;
        if self
            .updates
            .is_multiple_of(self.settings.target_update_interval)
        {
            self.agent.update_target(self.settings.tau)?;
        }
        Ok(UpdateStats {
            loss,
            grad_norm: f64::NAN,
        })
    }

    fn log_z_estimate(&mut self, env: &dyn Environment) -> Result<f64> {
        let (feats, mask) = initial_inputs(env)?;
        self.agent.soft_value(&feats, &mask)
    }

    fn save(&self, dir: &Path) -> Result<()> {
        for (i, (name, m)) in self.agent.networks().into_iter().enumerate() {
            m.save_safetensors(&dir.join(network_file(i, name)))?;
        }
        Ok(())
    }

    fn load(&mut self, dir: &Path) -> Result<()> {
        for (i, (name, m)) in self.agent.networks_mut().into_iter().enumerate() {
            m.load_safetensors(&dir.join(network_file(i, name)))?;
        }
        Ok(())
    }

    fn state(&self) -> Result<AlgorithmState> {
        let mut tensors = Vec::new();
        let mut steps = Vec::new();
        for (name, m) in self.agent.networks() {
            let (t, s) = model_tensors(name, m);
            tensors.extend(t);
            steps.push((name.to_string(), s));
        }
        let state = SavedRef {
            magic: MAGIC,
            steps,
            buffer: &self.buffer,
            next_iteration: self.next_iteration,
            updates: self.updates,
            transitions_seen: self.transitions_seen,
        };
        Ok(AlgorithmState {
            tensors,
            bytes: encode_state(self.name, &state)?,
        })
    }

    fn restore(&mut self, state: AlgorithmState) -> Result<()> {
        let saved = match decode_state::<Saved>(self.name, &state.bytes) {
            Ok(s) if s.magic == MAGIC => s,
            _ => {
                // Layout 1: the online and target networks, no transition count (the buffer's
                // length then counts the transitions seen, exact until the ring wrapped).
                let v1: SavedV1 = decode_state(self.name, &state.bytes)?;
                Saved {
                    magic: MAGIC,
                    steps: vec![
                        ("online".into(), v1.online_steps),
                        ("target".into(), v1.target_steps),
                    ],
                    transitions_seen: v1.buffer.len() as u64,
                    buffer: v1.buffer,
                    next_iteration: v1.next_iteration,
                    updates: v1.updates,
                }
            }
        };
        let mut networks = self.agent.networks_mut();
        if networks.len() != saved.steps.len() {
            return Err(TrainError::Checkpoint {
                path: self.name.into(),
                message: format!(
                    "the saved state has {} networks; this agent has {}",
                    saved.steps.len(),
                    networks.len()
                ),
            });
        }
        for ((name, m), (saved_name, steps)) in networks.iter_mut().zip(&saved.steps) {
            if name != saved_name {
                return Err(TrainError::Checkpoint {
                    path: self.name.into(),
                    message: format!(
                        "the saved state has network `{saved_name}` where this agent has `{name}`"
                    ),
                });
            }
            restore_model(name, m, &state.tensors, steps)?;
        }
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
        self.transitions_seen = saved.transitions_seen;
        Ok(())
    }
}

/// Checks the per-transition TD errors before they become priorities: an infinite one comes from
/// an infinite reward of the soft MDP (an infinite `log P_B` of inconsistent masks, or an infinite
/// `log R`), and is reported as the non-finite value it is (at the 1-based `iteration + 1`, as the
/// trainer counts).
fn finite_td_errors(losses: &[f64], iteration: u64) -> Result<()> {
    match losses.iter().find(|l| !l.is_finite()) {
        Some(&value) => Err(TrainError::NonFinite {
            what: "TD error".into(),
            iteration: iteration + 1,
            value,
        }),
        None => Ok(()),
    }
}
