//! The [`SoftRlAgent`] seam: what an entropy-regularized RL agent is on the soft MDP of the
//! GFlowNet reduction, with everything agents share left to the off-policy driver
//! ([`crate::driver::OffPolicy`]).
//!
//! # Who calls what
//!
//! The driver owns the replay buffer, the exploration schedule, the reduction's rewards and the
//! learned backward policy (if any). Per training iteration it
//!
//! 1. turns the sampled trajectories into transitions and, when new transitions enter a
//!    prioritized buffer with their TD loss, runs steps 3 to 5 on them without training;
//! 2. once learning has started, samples a batch and recomputes its masks;
//! 3. encodes `[s; s']` once and calls [`SoftRlAgent::forward`] (the online network on `s`, and
//!    on `s'` when [`SoftRlAgent::needs_next_online`] or a learned `P_B` asks for it; the agent's
//!    target networks as it needs);
//! 4. computes the rewards of the reduction (one call to [`softgfn_core::soft::soft_reward`]
//!    per transition, `log P_B` from [`softgfn_train::BackwardLogProbs`]) and calls
//!    [`SoftRlAgent::loss`], which returns per-transition losses (the new priorities) and
//!    `d loss / d r` (the gradient a learned `P_B` head receives, through
//!    [`SoftRlAgent::gradients_mut`]);
//! 5. calls [`SoftRlAgent::step`], updates the priorities, and every `target_update_interval`
//!    steps [`SoftRlAgent::update_target`].
//!
//! The sampler calls [`SoftRlAgent::policy_logits`]; the trainer's `log Z` estimate is
//! [`SoftRlAgent::soft_value`] at `s0`; checkpoints save [`SoftRlAgent::networks`].

use softgfn_core::{BackwardPolicyKind, Environment, Rng};
use softgfn_nn::{Device, HeadSpec, Model, OptimizerSpec, Outputs, ScalarSpec};
use softgfn_train::network::{NetworkChoice, build_model};
use softgfn_train::replay::SampledBatch;
use softgfn_train::{BuildContext, Result};

/// What [`SoftRlAgent::loss`] returns per transition of the batch.
#[derive(Clone, Debug, Default)]
pub struct LossOutput {
    /// Per-transition loss (unweighted by importance weights): the new priorities.
    pub losses: Vec<f64>,
    /// `d (mean loss) / d r_i`: the gradient of the batch loss with respect to each
    /// transition's reward (for a learned `P_B`, whose `log P_B` is part of the reward). Filled
    /// only when training.
    pub reward_grads: Vec<f64>,
}

impl LossOutput {
    /// Empties both columns (keeping their storage).
    pub fn clear(&mut self) {
        self.losses.clear();
        self.reward_grads.clear();
    }
}

/// An entropy-regularized RL agent on the soft MDP of the reduction (entropy coefficient of the
/// agent's own choosing; 1 makes the optimum the GFlowNet). Object-safe; see the
/// [module documentation](self) for the order of calls.
///
/// Rows of a batch of `n` transitions: the features given to [`forward`](Self::forward) hold
/// `2n` rows, `s_0..s_{n-1}` then `s'_0..s'_{n-1}`; masks and actions are those of the
/// [`SampledBatch`].
pub trait SoftRlAgent: Send + std::fmt::Debug {
    /// Logits of the behaviour policy (the sampler adds exploration) for `rows` states.
    fn policy_logits(&mut self, features: &[f32], rows: usize, out: &mut [f32]) -> Result<()>;

    /// Logits of the behaviour policy while sampling training trajectories: by default
    /// [`policy_logits`](Self::policy_logits); with `algo.transformer.sampling_dropout` the
    /// online network runs in train mode (dropout masks drawn from `rng`).
    fn sampling_logits(
        &mut self,
        features: &[f32],
        rows: usize,
        out: &mut [f32],
        rng: &mut Rng,
    ) -> Result<()> {
        let _ = rng;
        self.policy_logits(features, rows, out)
    }

    /// Whether the online network must also be evaluated at the next states (double
    /// bootstrapping, an actor's policy at `s'`).
    fn needs_next_online(&self) -> bool;

    /// Forward passes for a batch: the online network on the batch's online rows
    /// ([`BatchFeatures::forward_online`], in training mode when `batch.train`, dropout drawn
    /// from `rng`), and the agent's target networks on the rows they need
    /// ([`BatchFeatures::states`], [`BatchFeatures::next_states`]).
    fn forward(&mut self, batch: &BatchFeatures<'_>, rng: &mut Rng) -> Result<()>;

    /// The loss of the batch given the rewards of the reduction (`rewards[i]` of transition `i`).
    /// Fills `out.losses` and, when `train`, writes the head gradients (then read through
    /// [`gradients_mut`](Self::gradients_mut)) and `out.reward_grads`. Returns the batch loss.
    fn loss(
        &mut self,
        batch: &SampledBatch,
        rewards: &[f64],
        train: bool,
        out: &mut LossOutput,
    ) -> Result<f64>;

    /// The soft value `V(s)` of one state (`features`, valid actions `mask`) under the online
    /// networks; at `s0` it estimates `log Z`.
    fn soft_value(&mut self, features: &[f32], mask: &[bool]) -> Result<f64>;

    /// The agent's online network and its target copy, with the buffers of the online passes
    /// ([`OnlineTarget`]): the methods below work on them. An agent with other networks
    /// overrides the ones they concern.
    fn nets(&self) -> &OnlineTarget;

    /// Mutable [`nets`](Self::nets).
    fn nets_mut(&mut self) -> &mut OnlineTarget;

    /// Outputs of the last online forward pass (the driver reads a learned `P_B` head from them).
    fn online_outputs(&self) -> &Outputs {
        &self.nets().out
    }

    /// Head gradients of the online network written by the last training [`loss`](Self::loss)
    /// (rows as in [`BatchFeatures::online_rows`]); the driver adds a learned `P_B` head's
    /// gradient here.
    fn gradients_mut(&mut self) -> &mut Outputs {
        &mut self.nets_mut().grad
    }

    /// Backpropagates the head gradients and takes an optimizer step.
    fn step(&mut self) -> Result<()> {
        let nets = self.nets_mut();
        nets.online.backward(&nets.grad, &[])?;
        nets.online.step()?;
        Ok(())
    }

    /// Moves the target networks toward the online ones: `target <- tau online + (1 - tau)
    /// target` (`tau >= 1`: an exact copy).
    fn update_target(&mut self, tau: f64) -> Result<()> {
        let nets = self.nets_mut();
        soft_update(&mut nets.target, &nets.online, tau)
    }

    /// Every network with a stable name (the first is the online network, saved as
    /// `model.safetensors`; the others as `<name>.safetensors`), for checkpoints.
    fn networks(&self) -> Vec<(&'static str, &Model)> {
        let nets = self.nets();
        vec![("online", &nets.online), ("target", &nets.target)]
    }

    /// Mutable [`networks`](Self::networks), same order.
    fn networks_mut(&mut self) -> Vec<(&'static str, &mut Model)> {
        let nets = self.nets_mut();
        vec![("online", &mut nets.online), ("target", &mut nets.target)]
    }
}

/// An agent's online network, its target copy, and the buffers of its online passes: what the
/// provided methods of [`SoftRlAgent`] work on.
#[derive(Debug)]
pub struct OnlineTarget {
    /// The online network (trained).
    pub online: Model,
    /// Its target copy (moved toward it by [`SoftRlAgent::update_target`]).
    pub target: Model,
    /// Outputs of the last online forward pass.
    pub out: Outputs,
    /// Head gradients of the online network for the next [`SoftRlAgent::step`].
    pub grad: Outputs,
}

impl OnlineTarget {
    /// The online network and a target copy of it, with empty buffers.
    pub fn new(online: Model) -> Self {
        let target = online.clone_model();
        Self {
            online,
            target,
            out: Outputs::new(),
            grad: Outputs::new(),
        }
    }
}

/// The encoded states of a batch of `n` transitions, as [`SoftRlAgent::forward`] receives them:
/// `2n` feature rows, `s_0..s_{n-1}` then `s'_0..s'_{n-1}`, each state encoded once.
#[derive(Clone, Copy, Debug)]
pub struct BatchFeatures<'a> {
    /// The `2n` rows of features.
    pub features: &'a [f32],
    /// Number of transitions.
    pub n: usize,
    /// Rows the online network runs on: `n`, or `2n` when the next states are needed
    /// ([`SoftRlAgent::needs_next_online`], a learned `P_B`).
    pub online_rows: usize,
    /// Whether this pass trains (the online network in training mode).
    pub train: bool,
}

impl BatchFeatures<'_> {
    /// Features per row.
    pub fn width(&self) -> usize {
        self.features.len() / (2 * self.n).max(1)
    }

    /// The rows of the states `s_i`.
    pub fn states(&self) -> &[f32] {
        &self.features[..self.n * self.width()]
    }

    /// The rows of the next states `s'_i`.
    pub fn next_states(&self) -> &[f32] {
        &self.features[self.n * self.width()..2 * self.n * self.width()]
    }

    /// The online pass every agent makes: `online` on the first `online_rows` rows (in training
    /// mode, dropout drawn from `rng`, when `train`) into `out`.
    pub fn forward_online(
        &self,
        online: &mut Model,
        out: &mut Outputs,
        rng: &mut Rng,
    ) -> Result<()> {
        let rows = &self.features[..self.online_rows * self.width()];
        if self.train {
            online.forward_train(rows, self.online_rows, out, rng)?;
        } else {
            online.forward(rows, self.online_rows, out)?;
        }
        Ok(())
    }
}

/// `target <- tau source + (1 - tau) target`, an exact copy when `tau >= 1`.
pub fn soft_update(target: &mut Model, source: &Model, tau: f64) -> Result<()> {
    if tau >= 1.0 {
        target.copy_from(source)?;
    } else {
        target.polyak_from(source, tau as f32)?;
    }
    Ok(())
}

/// What an agent needs to build its networks; [`AgentContext::build_online`] adds the learned
/// backward head when the run asks for one (the driver reads it).
pub struct AgentContext<'a, 'b> {
    /// The environment.
    pub env: &'a dyn Environment,
    /// Where tensors live.
    pub device: Device,
    /// Generator for parameter initialisation.
    pub rng: &'b mut Rng,
    backward: BackwardPolicyKind,
    backward_head: Option<usize>,
}

impl<'a, 'b> AgentContext<'a, 'b> {
    /// A context for `build` with the run's backward policy.
    pub fn new(build: &'b mut BuildContext<'a>, backward: BackwardPolicyKind) -> Self {
        Self {
            env: build.env,
            device: build.device,
            rng: build.rng,
            backward,
            backward_head: None,
        }
    }

    /// Builds the online network with `heads` (and `scalars`), appending the backward head of a
    /// learned `P_B` (the naive mode) as its last head.
    pub fn build_online(
        &mut self,
        algo: &str,
        network: &NetworkChoice<'_>,
        mut heads: Vec<HeadSpec>,
        scalars: Vec<ScalarSpec>,
        optimizer: &OptimizerSpec,
    ) -> Result<Model> {
        if self.backward.fixed().is_none() {
            heads.push(HeadSpec::backward_actions(
                "backward",
                self.env.spec().num_backward_actions,
            ));
            self.backward_head = Some(heads.len() - 1);
        }
        build_model(
            algo,
            network,
            self.env,
            heads,
            scalars,
            optimizer,
            self.device,
            self.rng,
        )
    }

    /// The learned backward head added by [`build_online`](Self::build_online), if any.
    pub fn backward_head(&self) -> Option<usize> {
        self.backward_head
    }
}
