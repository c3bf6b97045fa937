//! Batched on-policy rollouts with exploration.
//!
//! The [`Sampler`] runs `n` trajectories from `s0` in lock-step: each step encodes the active
//! states, asks the policy for logits in one batched call, samples actions and steps the
//! environment in one batched call. Exploration belongs here, not to the policy: the behaviour
//! distribution is `(1 - epsilon) * softmax(logits / temperature) + epsilon * uniform(valid)`.
//! All buffers are kept between calls, so steady-state sampling does not allocate.

use serde::{Deserialize, Serialize};
use softgfn_core::env::{is_dead_end, is_terminal_mask};
use softgfn_core::math::{masked_softmax, sample_from_probs};
use softgfn_core::rng::uniform;
use softgfn_core::{CoreError, Environment, NO_BACKWARD_ACTION, Rng, StateValue, Trajectories};

use crate::error::Result;

/// Something that gives forward-policy logits for a batch of encoded states.
///
/// The policy is `softmax(logits)` over the valid actions (masking is the caller's job).
pub trait ForwardPolicy {
    /// Writes `rows * num_actions` logits for `rows` feature rows.
    fn policy_logits(&mut self, features: &[f32], rows: usize, out: &mut [f32]) -> Result<()>;

    /// Logits for sampling *training* trajectories ([`Sampler::sample_training`]). By default
    /// the evaluation-mode [`policy_logits`](ForwardPolicy::policy_logits); a policy configured
    /// to sample with train-mode dropout (`algo.transformer.sampling_dropout`) draws its dropout
    /// masks from `rng` here.
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
}

/// Exploration applied by the sampler on top of the policy.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Exploration {
    /// Probability of a uniformly random valid action at each step.
    pub epsilon: f64,
    /// Temperature dividing the logits.
    pub temperature: f64,
}

impl Default for Exploration {
    fn default() -> Self {
        Self {
            epsilon: 0.0,
            temperature: 1.0,
        }
    }
}

#[derive(Clone, Debug, Default)]
struct TrajBuf {
    states: Vec<StateValue>,
    features: Vec<f32>,
    fmasks: Vec<bool>,
    bmasks: Vec<bool>,
    edges: Vec<(u32, u32)>,
    blp: Vec<f64>,
    done: bool,
}

impl TrajBuf {
    fn clear(&mut self) {
        self.states.clear();
        self.features.clear();
        self.fmasks.clear();
        self.bmasks.clear();
        self.edges.clear();
        self.blp.clear();
        self.done = false;
    }
}

/// Reusable batched sampler.
#[derive(Debug, Default)]
pub struct Sampler {
    bufs: Vec<TrajBuf>,
    active: Vec<usize>,
    cur: Vec<StateValue>,
    feats: Vec<f32>,
    fmask: Vec<bool>,
    bmask: Vec<bool>,
    logits: Vec<f32>,
    /// Probabilities of the row being sampled.
    probs: Vec<f64>,
    step_rows: Vec<usize>,
    step_states: Vec<StateValue>,
    step_actions: Vec<u32>,
    next: Vec<StateValue>,
    bacts: Vec<u32>,
    term_states: Vec<StateValue>,
    log_r: Vec<f64>,
}

impl Sampler {
    /// A sampler with empty buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Samples `n` complete trajectories into `out` (which is reset first), with the policy's
    /// evaluation-mode logits.
    pub fn sample(
        &mut self,
        env: &dyn Environment,
        policy: &mut dyn ForwardPolicy,
        n: usize,
        exploration: Exploration,
        rng: &mut Rng,
        out: &mut Trajectories,
    ) -> Result<()> {
        self.sample_mode(env, policy, n, exploration, rng, out, false)
    }

    /// Samples `n` training trajectories: like [`sample`](Sampler::sample), but the logits come
    /// from [`ForwardPolicy::sampling_logits`] (train-mode dropout where the policy asks for it,
    /// with masks drawn from `rng`).
    pub fn sample_training(
        &mut self,
        env: &dyn Environment,
        policy: &mut dyn ForwardPolicy,
        n: usize,
        exploration: Exploration,
        rng: &mut Rng,
        out: &mut Trajectories,
    ) -> Result<()> {
        self.sample_mode(env, policy, n, exploration, rng, out, true)
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the two public entry points differ only in the last flag"
    )]
    fn sample_mode(
        &mut self,
        env: &dyn Environment,
        policy: &mut dyn ForwardPolicy,
        n: usize,
        exploration: Exploration,
        rng: &mut Rng,
        out: &mut Trajectories,
        training: bool,
    ) -> Result<()> {
        let spec = env.spec();
        let (w, na, nb, fd) = (
            spec.state_width,
            spec.num_actions,
            spec.num_backward_actions,
            spec.feature_dim,
        );
        out.reset(spec);
        if self.bufs.len() < n {
            self.bufs.resize_with(n, TrajBuf::default);
        }
        let mut s0 = vec![0; w];
        env.initial_state(&mut s0);
        self.active.clear();
        self.cur.clear();
        for (i, b) in self.bufs.iter_mut().take(n).enumerate() {
            b.clear();
            self.active.push(i);
            self.cur.extend_from_slice(&s0);
        }
        let eps = exploration.epsilon;
        let temp = exploration.temperature;
        self.probs.resize(na, 0.0);
        let probs = &mut self.probs;
        let mut steps = 0usize;
        while !self.active.is_empty() {
            let rows = self.active.len();
            self.feats.resize(rows * fd, 0.0);
            self.fmask.resize(rows * na, false);
            self.bmask.resize(rows * nb, false);
            env.encode(&self.cur, &mut self.feats)?;
            env.forward_masks(&self.cur, &mut self.fmask)?;
            env.backward_masks(&self.cur, &mut self.bmask)?;
            for (r, &i) in self.active.iter().enumerate() {
                let b = &mut self.bufs[i];
                b.states.extend_from_slice(&self.cur[r * w..(r + 1) * w]);
                b.features
                    .extend_from_slice(&self.feats[r * fd..(r + 1) * fd]);
                b.fmasks
                    .extend_from_slice(&self.fmask[r * na..(r + 1) * na]);
                b.bmasks
                    .extend_from_slice(&self.bmask[r * nb..(r + 1) * nb]);
            }
            self.logits.resize(rows * na, 0.0);
            if training {
                policy.sampling_logits(&self.feats, rows, &mut self.logits, rng)?;
            } else {
                policy.policy_logits(&self.feats, rows, &mut self.logits)?;
            }
            self.step_rows.clear();
            self.step_states.clear();
            self.step_actions.clear();
            for r in 0..rows {
                let i = self.active[r];
                let mask = &self.fmask[r * na..(r + 1) * na];
                if is_dead_end(mask) {
                    self.bufs[i].done = true;
                    continue;
                }
                if steps >= spec.max_trajectory_length {
                    return Err(CoreError::Structure {
                        env: spec.name.clone(),
                        property: "length bound".into(),
                        details: format!(
                            "a trajectory reached state {:?} after {steps} actions without ending (max_trajectory_length = {})",
                            &self.cur[r * w..(r + 1) * w],
                            spec.max_trajectory_length
                        ),
                    }
                    .into());
                }
                let logits = &self.logits[r * na..(r + 1) * na];
                // Each valid entry's exponential once: the probabilities are sampled from, and
                // the drawn action's log-probability is its scaled logit minus the normaliser.
                let log_norm = masked_softmax(logits, mask, temp, probs);
                if !log_norm.is_finite() {
                    return Err(crate::TrainError::NonFinite {
                        what: "policy logits".into(),
                        iteration: 0,
                        value: log_norm,
                    });
                }
                if eps > 0.0 {
                    let nvalid = mask.iter().filter(|&&v| v).count() as f64;
                    for (p, &v) in probs.iter_mut().zip(mask) {
                        if v {
                            *p = (1.0 - eps) * *p + eps / nvalid;
                        }
                    }
                }
                let u = uniform(rng);
                let a = sample_from_probs(probs, u).unwrap_or(0);
                let log_p = if eps > 0.0 {
                    probs[a].ln()
                } else {
                    f64::from(logits[a]) * (1.0 / temp) - log_norm
                };
                let b = &mut self.bufs[i];
                b.blp.push(log_p);
                if spec.is_exit(a as u32) {
                    b.edges.push((a as u32, NO_BACKWARD_ACTION));
                    b.done = true;
                } else {
                    self.step_rows.push(r);
                    self.step_states
                        .extend_from_slice(&self.cur[r * w..(r + 1) * w]);
                    self.step_actions.push(a as u32);
                }
            }
            let k = self.step_rows.len();
            self.next.resize(k * w, 0);
            self.bacts.resize(k, 0);
            if k > 0 {
                env.step(
                    &self.step_states,
                    &self.step_actions,
                    &mut self.next,
                    &mut self.bacts,
                )?;
            }
            for (j, &r) in self.step_rows.iter().enumerate() {
                let i = self.active[r];
                self.bufs[i]
                    .edges
                    .push((self.step_actions[j], self.bacts[j]));
                self.cur[r * w..(r + 1) * w].copy_from_slice(&self.next[j * w..(j + 1) * w]);
            }
            // Compact the active set.
            let mut keep = 0;
            for r in 0..rows {
                let i = self.active[r];
                if !self.bufs[i].done {
                    self.active[keep] = i;
                    if keep != r {
                        self.cur.copy_within(r * w..(r + 1) * w, keep * w);
                    }
                    keep += 1;
                }
            }
            self.active.truncate(keep);
            self.cur.truncate(keep * w);
            steps += 1;
        }
        // Rewards of the terminal states, in one batched call.
        self.term_states.clear();
        for b in &self.bufs[..n] {
            let len = b.states.len();
            self.term_states.extend_from_slice(&b.states[len - w..]);
            debug_assert!(is_terminal_mask(spec, &b.fmasks[b.fmasks.len() - na..]));
        }
        self.log_r.resize(n, 0.0);
        env.log_reward(&self.term_states, &mut self.log_r)?;
        for (i, b) in self.bufs[..n].iter().enumerate() {
            let lr = self.log_r[i];
            if !lr.is_finite() {
                return Err(CoreError::NonFiniteReward {
                    env: spec.name.clone(),
                    state: b.states[b.states.len() - w..].to_vec(),
                    value: lr,
                }
                .into());
            }
            out.push(
                &b.states,
                &b.features,
                &b.fmasks,
                &b.bmasks,
                &b.edges,
                &b.blp,
                lr,
            );
        }
        Ok(())
    }
}
