//! The ring of transitions, its sampling and its priorities.

use serde::{Deserialize, Serialize};
use softgfn_core::rng::{below, uniform};
use softgfn_core::{Environment, NO_BACKWARD_ACTION, Rng, StateValue};

use super::tree::{MinTree, SumTree};

use crate::algorithm::check;
use crate::error::{Result, TrainError};

/// Shapes of what a buffer stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayShape {
    /// Width of a state row (`EnvSpec::state_width`).
    pub state_width: usize,
    /// Number of forward actions (length of the forward masks).
    pub num_actions: usize,
    /// Number of backward actions (length of the backward masks).
    pub num_backward_actions: usize,
}

impl ReplayShape {
    /// Bytes of storage per transition: two state rows, the forward and backward actions, the
    /// terminal log-reward and the two flags (priority trees aside, 32 bytes per slot when
    /// prioritized). Masks are not stored (see [`SampledBatch::fill_masks`]).
    pub fn bytes_per_transition(&self) -> usize {
        2 * self.state_width * std::mem::size_of::<StateValue>()
            + 2 * std::mem::size_of::<u32>()
            + std::mem::size_of::<f64>()
            + 2 * std::mem::size_of::<bool>()
    }

    /// What [`bytes_per_transition`](Self::bytes_per_transition) was when every transition also
    /// stored its three masks as one byte per action (forward at `s` and `s'`, backward at `s'`),
    /// as the buffer did before; kept for the comparison in the documentation.
    pub fn bytes_per_transition_with_masks(&self) -> usize {
        self.bytes_per_transition() + 2 * self.num_actions + self.num_backward_actions
    }
}

/// One transition to store (borrowed).
///
/// For an exit transition `next_state` is a copy of `state`. Masks are not part of a record:
/// they are recomputed from the states when sampled ([`SampledBatch::fill_masks`]).
#[derive(Clone, Copy, Debug)]
pub struct TransitionRecord<'a> {
    /// The state the action is taken in (`state_width` values).
    pub state: &'a [StateValue],
    /// The state reached (a copy of `state` for the exit action).
    pub next_state: &'a [StateValue],
    /// The forward action taken (`< num_actions`).
    pub action: u32,
    /// The backward action undoing it ([`NO_BACKWARD_ACTION`] for the exit).
    pub backward_action: u32,
    /// `log R(x)` when `done`, `0.0` otherwise.
    pub terminal_log_reward: f64,
    /// The episode ends with this transition (by the exit action or implicitly).
    pub done: bool,
    /// This transition is the exit action.
    pub exit: bool,
}

/// Prioritized-replay parameters (torchrl `PrioritizedSampler` semantics).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PerConfig {
    /// Priority exponent: a raw priority `p` is stored as `(p + eps)^alpha` (`0` = uniform).
    pub alpha: f64,
    /// Initial importance-sampling exponent, in `[0, 1]`.
    pub beta: f64,
    /// Final importance-sampling exponent, in `[0, 1]`; `beta` is annealed linearly to it ...
    pub beta_final: f64,
    /// ... over this many iterations (its own horizon, never the run length); `0` = no
    /// annealing (`beta` stays constant).
    pub beta_horizon: u64,
    /// Added to raw priorities before the exponent (torchrl's default is `1e-8`).
    pub eps: f64,
}

impl PerConfig {
    /// Checks the ranges: `alpha` finite and `>= 0`, `beta` and `beta_final` in `[0, 1]`, `eps`
    /// finite and `>= 0`. Errors name the config keys `algo.per_alpha`, `algo.per_beta`,
    /// `algo.per_beta_final` and `algo.per_eps`.
    pub fn validate(&self) -> Result<()> {
        check::non_negative("algo.per_alpha", self.alpha)?;
        check::probability("algo.per_beta", self.beta)?;
        check::probability("algo.per_beta_final", self.beta_final)?;
        check::non_negative("algo.per_eps", self.eps)?;
        Ok(())
    }

    /// The beta in force at `iteration`: linear from `beta` to `beta_final` over
    /// `beta_horizon` iterations, then constant; constant `beta` when `beta_horizon == 0`.
    pub fn beta_at(&self, iteration: u64) -> f64 {
        if self.beta_horizon == 0 {
            self.beta
        } else if iteration >= self.beta_horizon {
            self.beta_final
        } else {
            let frac = iteration as f64 / self.beta_horizon as f64;
            self.beta + (self.beta_final - self.beta) * frac
        }
    }

    /// The stored form `(p + eps)^alpha` of a raw priority, checked: `p` must be finite and
    /// `>= 0` and the result finite.
    fn transform(&self, field: &str, p: f64) -> Result<f64> {
        if !(p.is_finite() && p >= 0.0) {
            return Err(TrainError::invalid(field, p, "a finite priority >= 0"));
        }
        let stored = (p + self.eps).powf(self.alpha);
        if stored.is_finite() {
            Ok(stored)
        } else {
            Err(TrainError::invalid(
                field,
                p,
                &format!(
                    "a priority whose stored value (p + eps)^alpha is finite (alpha = {})",
                    self.alpha
                ),
            ))
        }
    }
}

/// Sampling scheme.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Sampling {
    /// Uniform sampling with replacement; importance weights are all `1.0`.
    Uniform,
    /// Proportional prioritized sampling with importance weights.
    Prioritized(PerConfig),
}

/// Sampled transitions, struct-of-arrays, reused between calls (no allocation once warm).
///
/// Row `k` of every column belongs to the `k`-th draw; per-transition columns of width `w` hold
/// `len() * w` values.
#[derive(Clone, Debug, Default)]
pub struct SampledBatch {
    /// Buffer slots drawn (for [`ReplayBuffer::update_priorities`]).
    pub indices: Vec<usize>,
    /// Importance-sampling weights `(p_i / p_min)^(-beta)`; all `1.0` for uniform sampling.
    pub weights: Vec<f64>,
    /// States (`len() * state_width`).
    pub states: Vec<StateValue>,
    /// Next states (`len() * state_width`).
    pub next_states: Vec<StateValue>,
    /// Forward masks at the states (`len() * num_actions`); filled by
    /// [`fill_masks`](SampledBatch::fill_masks), empty after [`ReplayBuffer::sample`].
    pub forward_masks: Vec<bool>,
    /// Forward masks at the next states (`len() * num_actions`; all false after an exit).
    pub next_forward_masks: Vec<bool>,
    /// Backward masks at the next states (`len() * num_backward_actions`; all false after an
    /// exit).
    pub next_backward_masks: Vec<bool>,
    /// Forward actions.
    pub actions: Vec<u32>,
    /// Backward actions ([`NO_BACKWARD_ACTION`] for exits).
    pub backward_actions: Vec<u32>,
    /// `log R(x)` of transitions that end an episode, `0.0` otherwise.
    pub terminal_log_rewards: Vec<f64>,
    /// Whether each transition ends its episode.
    pub done: Vec<bool>,
    /// Whether each transition is the exit action.
    pub exit: Vec<bool>,
}

impl SampledBatch {
    /// Number of sampled transitions.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the batch holds no transition.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Recomputes the three mask columns from the states with `env` (three batched calls), as
    /// the sampler computed them; the next masks of exit transitions are all false. Reuses the
    /// columns' storage (no allocation once warm).
    ///
    /// Errors if the environment refuses a state (which it accepted when the transition was
    /// sampled, so only with another environment than the one that filled the buffer).
    pub fn fill_masks(&mut self, env: &dyn Environment) -> Result<()> {
        let spec = env.spec();
        let (na, nb) = (spec.num_actions, spec.num_backward_actions);
        let n = self.actions.len();
        self.forward_masks.resize(n * na, false);
        self.next_forward_masks.resize(n * na, false);
        self.next_backward_masks.resize(n * nb, false);
        env.forward_masks(&self.states, &mut self.forward_masks)?;
        env.forward_masks(&self.next_states, &mut self.next_forward_masks)?;
        env.backward_masks(&self.next_states, &mut self.next_backward_masks)?;
        for (i, _) in self.exit.iter().enumerate().filter(|(_, e)| **e) {
            self.next_forward_masks[i * na..(i + 1) * na].fill(false);
            self.next_backward_masks[i * nb..(i + 1) * nb].fill(false);
        }
        Ok(())
    }

    fn clear(&mut self) {
        self.indices.clear();
        self.weights.clear();
        self.states.clear();
        self.next_states.clear();
        self.forward_masks.clear();
        self.next_forward_masks.clear();
        self.next_backward_masks.clear();
        self.actions.clear();
        self.backward_actions.clear();
        self.terminal_log_rewards.clear();
        self.done.clear();
        self.exit.clear();
    }
}

// ---------------------------------------------------------------------------------------------
// Replay buffer
// ---------------------------------------------------------------------------------------------

/// Priority state of a prioritized buffer.
#[derive(Clone, Debug)]
pub(super) struct PerState {
    pub(super) config: PerConfig,
    /// Stored priorities of the filled slots.
    pub(super) sum: SumTree,
    /// Stored priorities of the filled slots, `+inf` where the stored priority is zero.
    pub(super) min: MinTree,
    /// Largest raw priority seen (initially 1.0).
    pub(super) max_priority: f64,
}

impl PerState {
    fn set(&mut self, slot: usize, stored: f64) {
        self.sum.set(slot, stored);
        self.min
            .set(slot, if stored > 0.0 { stored } else { f64::INFINITY });
    }
}

/// FIFO ring of transitions with optional prioritized sampling (masks are not stored).
///
/// See the [module documentation](self) for the semantics. Serializable for checkpoints: the
/// contents, the write position, the stored priorities and the running maximum priority are
/// saved (exactly, see the module documentation) and validated when loaded.
#[derive(Clone, Debug)]
pub struct ReplayBuffer {
    pub(super) shape: ReplayShape,
    pub(super) capacity: usize,
    pub(super) sampling: Sampling,
    /// Number of filled slots.
    pub(super) len: usize,
    /// Next slot to write (`== len` until the ring is full).
    pub(super) cursor: usize,
    pub(super) states: Vec<StateValue>,
    pub(super) next_states: Vec<StateValue>,
    pub(super) actions: Vec<u32>,
    pub(super) backward_actions: Vec<u32>,
    pub(super) terminal_log_rewards: Vec<f64>,
    pub(super) done: Vec<bool>,
    pub(super) exit: Vec<bool>,
    pub(super) per: Option<PerState>,
}

/// Makes room for `add` more values in a column that will hold at most `limit`: doubling, but
/// never beyond `limit`, so a full ring holds exactly its contents and then never reallocates.
fn grow<T>(v: &mut Vec<T>, add: usize, limit: usize) {
    if v.capacity() - v.len() < add {
        let want = v
            .len()
            .saturating_mul(2)
            .max(v.len() + add)
            .max(64)
            .min(limit);
        v.reserve_exact(want.max(v.len() + add) - v.len());
    }
}

/// An error for a slice of the wrong length.
fn length_error(field: &str, found: usize, expected: usize, what: &str) -> TrainError {
    TrainError::invalid(
        field,
        format!("a slice of length {found}"),
        &format!("length {expected} ({what})"),
    )
}

impl ReplayBuffer {
    /// An empty buffer of `capacity` transitions shaped `shape`.
    ///
    /// Errors ([`TrainError::InvalidValue`]) on `capacity == 0` or a capacity too large to
    /// address (`algo.buffer_capacity`), and on prioritized parameters out of range (see
    /// [`PerConfig::validate`]). Storage grows with the contents; the segment trees of a
    /// prioritized buffer are allocated here.
    pub fn new(shape: ReplayShape, capacity: usize, sampling: Sampling) -> Result<Self> {
        if capacity == 0 {
            return Err(TrainError::invalid(
                "algo.buffer_capacity",
                0,
                "an integer >= 1",
            ));
        }
        let widest = shape
            .state_width
            .max(shape.num_actions)
            .max(shape.num_backward_actions)
            .max(1);
        let too_large = || {
            TrainError::invalid(
                "algo.buffer_capacity",
                capacity,
                &format!("a capacity whose storage fits in memory (rows of up to {widest} values)"),
            )
        };
        match capacity.checked_mul(widest) {
            Some(cells)
                if cells
                    .checked_mul(8)
                    .is_some_and(|b| b <= isize::MAX as usize) => {}
            _ => return Err(too_large()),
        }
        let per = match sampling {
            Sampling::Uniform => None,
            Sampling::Prioritized(config) => {
                config.validate()?;
                Some(PerState {
                    config,
                    sum: SumTree::try_new(capacity).ok_or_else(too_large)?,
                    min: MinTree::try_new(capacity).ok_or_else(too_large)?,
                    max_priority: 1.0,
                })
            }
        };
        Ok(Self {
            shape,
            capacity,
            sampling,
            len: 0,
            cursor: 0,
            states: Vec::new(),
            next_states: Vec::new(),
            actions: Vec::new(),
            backward_actions: Vec::new(),
            terminal_log_rewards: Vec::new(),
            done: Vec::new(),
            exit: Vec::new(),
            per,
        })
    }

    /// Number of stored transitions (at most [`capacity`](ReplayBuffer::capacity)).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no transition is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maximum number of stored transitions.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Shapes of the stored transitions.
    pub fn shape(&self) -> ReplayShape {
        self.shape
    }

    /// The sampling scheme.
    pub fn sampling(&self) -> Sampling {
        self.sampling
    }

    /// Checks a record against the shape.
    fn check_record(&self, t: &TransitionRecord<'_>) -> Result<()> {
        let s = self.shape;
        let lengths = [
            (
                "transition.state",
                t.state.len(),
                s.state_width,
                "state_width",
            ),
            (
                "transition.next_state",
                t.next_state.len(),
                s.state_width,
                "state_width",
            ),
        ];
        for (field, found, expected, what) in lengths {
            if found != expected {
                return Err(length_error(field, found, expected, what));
            }
        }
        if t.action as usize >= s.num_actions {
            return Err(TrainError::invalid(
                "transition.action",
                t.action,
                &format!("an action < num_actions = {}", s.num_actions),
            ));
        }
        if t.exit {
            if t.backward_action != NO_BACKWARD_ACTION {
                return Err(TrainError::invalid(
                    "transition.backward_action",
                    t.backward_action,
                    "NO_BACKWARD_ACTION for an exit transition",
                ));
            }
            if !t.done {
                return Err(TrainError::invalid(
                    "transition.done",
                    false,
                    "true for an exit transition",
                ));
            }
        } else if t.backward_action as usize >= s.num_backward_actions {
            return Err(TrainError::invalid(
                "transition.backward_action",
                t.backward_action,
                &format!(
                    "a backward action < num_backward_actions = {} for a non-exit transition",
                    s.num_backward_actions
                ),
            ));
        }
        if t.terminal_log_reward.is_nan() {
            return Err(TrainError::invalid(
                "transition.terminal_log_reward",
                f64::NAN,
                "a number (log R(x) when done, 0.0 otherwise)",
            ));
        }
        Ok(())
    }

    /// Appends a transition, overwriting the oldest one when the buffer is full, and returns
    /// its slot.
    ///
    /// `priority`: `None` gives the largest raw priority seen so far (initially `1.0`), as
    /// torchrl; `Some(p)` gives the raw priority `p` (stored as `(p + eps)^alpha`, and raising
    /// the running maximum). Ignored for [`Sampling::Uniform`].
    ///
    /// Errors, leaving the buffer unchanged, on slices whose lengths do not match the shape
    /// (naming which), an action out of range, an exit without [`NO_BACKWARD_ACTION`] or not
    /// `done`, a NaN reward, or (prioritized) a NaN, negative or infinite priority.
    pub fn push(&mut self, t: &TransitionRecord<'_>, priority: Option<f64>) -> Result<usize> {
        self.check_record(t)?;
        let stored = match &self.per {
            None => None,
            Some(per) => Some(match priority {
                Some(p) => (per.config.transform("priority", p)?, p),
                None => (
                    per.config.transform("priority", per.max_priority)?,
                    per.max_priority,
                ),
            }),
        };

        let slot = self.cursor;
        let s = self.shape;
        if self.len < self.capacity {
            // Filling: `slot == len`, append (growth capped at the full ring's size).
            let (c, w) = (self.capacity, s.state_width);
            grow(&mut self.states, w, c * w);
            grow(&mut self.next_states, w, c * w);
            grow(&mut self.actions, 1, c);
            grow(&mut self.backward_actions, 1, c);
            grow(&mut self.terminal_log_rewards, 1, c);
            grow(&mut self.done, 1, c);
            grow(&mut self.exit, 1, c);
            self.states.extend_from_slice(t.state);
            self.next_states.extend_from_slice(t.next_state);
            self.actions.push(t.action);
            self.backward_actions.push(t.backward_action);
            self.terminal_log_rewards.push(t.terminal_log_reward);
            self.done.push(t.done);
            self.exit.push(t.exit);
            self.len += 1;
        } else {
            let w = s.state_width;
            self.states[slot * w..(slot + 1) * w].copy_from_slice(t.state);
            self.next_states[slot * w..(slot + 1) * w].copy_from_slice(t.next_state);
            self.actions[slot] = t.action;
            self.backward_actions[slot] = t.backward_action;
            self.terminal_log_rewards[slot] = t.terminal_log_reward;
            self.done[slot] = t.done;
            self.exit[slot] = t.exit;
        }
        self.cursor = (slot + 1) % self.capacity;

        if let (Some(per), Some((value, raw))) = (self.per.as_mut(), stored) {
            per.set(slot, value);
            per.max_priority = per.max_priority.max(raw);
        }
        Ok(slot)
    }

    /// The beta in force at `iteration` (linear from `beta` to `beta_final` over
    /// `beta_horizon` iterations, then constant; constant `beta` when `beta_horizon == 0`).
    /// `0.0` for uniform sampling, whose weights are all `1.0`.
    pub fn beta(&self, iteration: u64) -> f64 {
        match self.sampling {
            Sampling::Uniform => 0.0,
            Sampling::Prioritized(c) => c.beta_at(iteration),
        }
    }

    /// Samples `n` transitions with replacement into `out` (cleared first; its mask columns stay
    /// empty until [`SampledBatch::fill_masks`]).
    ///
    /// Uniform: one [`below`]`(rng, len)` per draw, weights `1.0`. Prioritized: for each draw a
    /// mass `uniform(rng) * total` located by prefix sum in the sum tree, and the weight
    /// `(p_i / p_min)^(-beta(iteration))` with `p_min` from the min tree.
    ///
    /// Errors if the buffer is empty, or if the stored priorities sum to zero or overflow.
    pub fn sample(
        &self,
        n: usize,
        iteration: u64,
        rng: &mut Rng,
        out: &mut SampledBatch,
    ) -> Result<()> {
        out.clear();
        if self.len == 0 {
            return Err(TrainError::invalid(
                "replay buffer length",
                0,
                "at least one stored transition before sampling",
            ));
        }
        match &self.per {
            None => {
                for _ in 0..n {
                    let slot = below(rng, self.len as u64) as usize;
                    out.indices.push(slot);
                    out.weights.push(1.0);
                }
            }
            Some(per) => {
                let total = per.sum.total();
                if !(total.is_finite() && total > 0.0) {
                    return Err(TrainError::invalid(
                        "replay priorities",
                        format!("a total of {total}"),
                        "a finite, positive sum of stored priorities",
                    ));
                }
                let p_min = per.min.min();
                let beta = per.config.beta_at(iteration);
                for _ in 0..n {
                    let mass = uniform(rng) * total;
                    let slot = per.sum.find_prefix(mass).min(self.len - 1);
                    let p = per.sum.get(slot);
                    out.indices.push(slot);
                    out.weights.push((p / p_min).powf(-beta));
                }
            }
        }
        self.gather(out);
        Ok(())
    }

    /// Copies the rows of `out.indices` into the other columns of `out` (masks aside: see
    /// [`SampledBatch::fill_masks`]).
    fn gather(&self, out: &mut SampledBatch) {
        let w = self.shape.state_width;
        for &slot in &out.indices {
            out.states
                .extend_from_slice(&self.states[slot * w..(slot + 1) * w]);
            out.next_states
                .extend_from_slice(&self.next_states[slot * w..(slot + 1) * w]);
            out.actions.push(self.actions[slot]);
            out.backward_actions.push(self.backward_actions[slot]);
            out.terminal_log_rewards
                .push(self.terminal_log_rewards[slot]);
            out.done.push(self.done[slot]);
            out.exit.push(self.exit[slot]);
        }
    }

    /// Sets new raw priorities for sampled slots: `priorities[k]` for slot `indices[k]`,
    /// stored as `(p + eps)^alpha`; the running maximum raw priority is raised accordingly.
    /// A slot listed twice keeps its last priority.
    ///
    /// Errors, changing nothing, when the lengths differ, a slot is not filled, or a priority
    /// is NaN, negative or infinite. A no-op (after the same checks) for uniform sampling.
    pub fn update_priorities(&mut self, indices: &[usize], priorities: &[f64]) -> Result<()> {
        if indices.len() != priorities.len() {
            return Err(length_error(
                "priorities",
                priorities.len(),
                indices.len(),
                "one per index",
            ));
        }
        for &slot in indices {
            if slot >= self.len {
                return Err(TrainError::invalid(
                    "indices",
                    format!("slot {slot}"),
                    &format!("a filled slot < {}", self.len),
                ));
            }
        }
        let Some(per) = self.per.as_mut() else {
            for &p in priorities {
                if !(p.is_finite() && p >= 0.0) {
                    return Err(TrainError::invalid(
                        "priorities",
                        p,
                        "a finite priority >= 0",
                    ));
                }
            }
            return Ok(());
        };
        for &p in priorities {
            per.config.transform("priorities", p)?;
        }
        for (&slot, &p) in indices.iter().zip(priorities) {
            let stored = per.config.transform("priorities", p)?;
            per.set(slot, stored);
            per.max_priority = per.max_priority.max(p);
        }
        Ok(())
    }

    /// The stored (transformed) priority `(p + eps)^alpha` of a slot, for tests and
    /// diagnostics: `1.0` for a filled slot of a uniform buffer, `0.0` for an unfilled slot.
    pub fn stored_priority(&self, slot: usize) -> f64 {
        if slot >= self.len {
            return 0.0;
        }
        match &self.per {
            None => 1.0,
            Some(per) => per.sum.get(slot),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_ring_holds_exactly_its_contents_and_stops_allocating() {
        let shape = ReplayShape {
            state_width: 2,
            num_actions: 3,
            num_backward_actions: 1,
        };
        let mut b = ReplayBuffer::new(shape, 100, Sampling::Uniform).unwrap();
        let t = TransitionRecord {
            state: &[1, 2],
            next_state: &[3, 4],
            action: 0,
            backward_action: 0,
            terminal_log_reward: 0.0,
            done: false,
            exit: false,
        };
        for _ in 0..100 {
            b.push(&t, None).unwrap();
        }
        assert_eq!(b.states.capacity(), 200);
        assert_eq!(b.exit.capacity(), 100);
        let ptr = b.states.as_ptr();
        for _ in 0..250 {
            b.push(&t, None).unwrap();
        }
        assert_eq!(b.states.as_ptr(), ptr);
        assert_eq!((b.len(), b.cursor), (100, 50));
    }
}
