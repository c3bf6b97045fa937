//! Replay buffers for the soft-RL agents (SoftDQN, Munchausen DQN, SAC).
//!
//! A [`ReplayBuffer`] is a FIFO ring of fixed capacity holding single transitions
//! ([`TransitionRecord`]): once full, every [`push`](ReplayBuffer::push) overwrites the oldest
//! slot (slots are written `0, 1, .., capacity - 1, 0, 1, ..`). Sampling draws `n` slots **with
//! replacement**, either uniformly or, with [`Sampling::Prioritized`], proportionally to a stored
//! priority.
//!
//! # Prioritized replay (torchrl parity)
//!
//! The semantics follow torchrl 0.1.1's `PrioritizedSampler`, which the paper's code uses:
//!
//! - a raw priority `p` (usually an absolute TD error) is stored as `(p + eps)^alpha` in a
//!   [`SumTree`] (for sampling) and a [`MinTree`] (for importance weights);
//! - a transition pushed without a priority gets `(max_p + eps)^alpha`, where `max_p` is the
//!   largest raw priority seen so far (initially `1.0`); only raw priorities given to
//!   [`push`](ReplayBuffer::push) or [`update_priorities`](ReplayBuffer::update_priorities) raise
//!   `max_p`;
//! - each draw takes a mass `u * total` with `u ~ U[0, 1)` and returns the smallest slot whose
//!   prefix sum exceeds it ([`SumTree::find_prefix`]), clamped to the filled slots;
//! - the importance-sampling weight of a sampled slot is `(p_i / p_min)^(-beta)`, the usual
//!   `(N P(i))^(-beta)` normalised by its maximum, with `p_min` the smallest positive stored
//!   priority; `beta` is annealed linearly from [`PerConfig::beta`] to [`PerConfig::beta_final`]
//!   over [`PerConfig::beta_horizon`] iterations ([`ReplayBuffer::beta`]).
//!
//! Deviations from torchrl are guards only: a slot whose stored priority is `0` (possible with
//! `eps = 0`) is never sampled and does not count as `p_min`, and rounding in the prefix search
//! can never select an unfilled or zero-priority slot.
//!
//! The importance weights are always filled in, but an agent may ignore them: the paper's
//! hypergrid code computes them and never applies them to the loss.
//!
//! # Determinism and allocation
//!
//! All randomness comes from the caller's [`Rng`], one draw per sampled transition in order
//! ([`below`] for uniform sampling, [`uniform`] for prioritized sampling), so a seed fixes the
//! samples. Storage grows with the contents up to `capacity` and is then overwritten in place;
//! [`SampledBatch`] keeps its vectors between calls, so a warm buffer neither allocates per
//! `push` nor per `sample`.
//!
//! # Checkpoints
//!
//! [`ReplayBuffer`], [`SumTree`] and [`MinTree`] implement serde. Floating-point contents
//! (rewards, priorities) are written as their IEEE-754 bit patterns and boolean columns as packed
//! 64-bit words, so that a round trip through any format (including `serde_json`, whose default
//! float parsing is not exact) gives a buffer that samples bit-for-bit identically. The segment
//! trees are rebuilt from their leaves when loading, and loaded contents are validated.

use std::borrow::Cow;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use softgfn_core::rng::{below, uniform};
use softgfn_core::{NO_BACKWARD_ACTION, Rng, StateValue};

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

/// One transition to store (borrowed).
///
/// For an exit transition `next_state` is a copy of `state` and the next masks are all false.
#[derive(Clone, Copy, Debug)]
pub struct TransitionRecord<'a> {
    /// The state the action is taken in (`state_width` values).
    pub state: &'a [StateValue],
    /// The state reached (a copy of `state` for the exit action).
    pub next_state: &'a [StateValue],
    /// Valid forward actions at `state` (`num_actions` values).
    pub forward_mask: &'a [bool],
    /// Valid forward actions at `next_state` (`num_actions` values; all false after an exit).
    pub next_forward_mask: &'a [bool],
    /// Valid backward actions at `next_state` (`num_backward_actions` values; all false after
    /// an exit).
    pub next_backward_mask: &'a [bool],
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
    /// Forward masks at the states (`len() * num_actions`).
    pub forward_masks: Vec<bool>,
    /// Forward masks at the next states (`len() * num_actions`).
    pub next_forward_masks: Vec<bool>,
    /// Backward masks at the next states (`len() * num_backward_actions`).
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
// Segment trees
// ---------------------------------------------------------------------------------------------

/// Number of leaves (a power of two, at least 1) of a tree with `n` usable leaves.
fn leaf_count(n: usize) -> Option<usize> {
    n.max(1).checked_next_power_of_two()
}

/// A sum segment tree over `len()` non-negative values, padded with zeros to a power-of-two
/// number of leaves.
///
/// Node `1` is the root, node `j` has children `2j` and `2j + 1`, and leaf `i` is node
/// `size + i`. Every internal node always holds exactly `left + right` (as computed in `f64`),
/// so a tree rebuilt from its leaves is bit-identical to one built by successive [`set`]s.
///
/// [`set`]: SumTree::set
#[derive(Clone, Debug)]
pub struct SumTree {
    len: usize,
    size: usize,
    nodes: Vec<f64>,
}

impl SumTree {
    /// A tree of `n` leaves, all `0.0`.
    ///
    /// # Panics
    ///
    /// If `n` rounded up to a power of two overflows `usize`.
    pub fn new(n: usize) -> Self {
        Self::try_new(n).unwrap_or_else(|| panic!("sum tree of {n} leaves is too large"))
    }

    /// A tree of `n` zero leaves, or `None` when its size overflows or cannot be allocated.
    fn try_new(n: usize) -> Option<Self> {
        let size = leaf_count(n)?;
        let nodes = try_filled(size.checked_mul(2)?, 0.0)?;
        Some(Self {
            len: n,
            size,
            nodes,
        })
    }

    /// Number of usable leaves (the `n` given to [`SumTree::new`]).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the tree has no usable leaf.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sets leaf `i` to `v` and updates its ancestors (`O(log n)`).
    ///
    /// # Panics
    ///
    /// If `i >= len()` or `v` is negative, infinite or NaN.
    pub fn set(&mut self, i: usize, v: f64) {
        assert!(
            i < self.len,
            "sum tree leaf {i} out of range; expected < {}",
            self.len
        );
        assert!(
            v.is_finite() && v >= 0.0,
            "sum tree value {v} invalid; expected a finite number >= 0"
        );
        let mut j = self.size + i;
        self.nodes[j] = v;
        j /= 2;
        while j >= 1 {
            self.nodes[j] = self.nodes[2 * j] + self.nodes[2 * j + 1];
            j /= 2;
        }
    }

    /// The value of leaf `i` (`0.0` for `i >= len()`).
    pub fn get(&self, i: usize) -> f64 {
        if i < self.len {
            self.nodes[self.size + i]
        } else {
            0.0
        }
    }

    /// The sum of all leaves.
    pub fn total(&self) -> f64 {
        self.nodes[1]
    }

    /// The smallest `i` with `prefix_sum(0..=i) > mass`, by descent from the root (`O(log n)`).
    ///
    /// Guarded against rounding: the descent never enters a subtree whose sum is zero, so when
    /// [`total`](SumTree::total) is positive the result is always a leaf with a positive value
    /// (for `mass >= total` or NaN, the last positive leaf; for `mass < 0`, the first). When
    /// the total is zero it returns `0`.
    pub fn find_prefix(&self, mass: f64) -> usize {
        let mut mass = mass;
        let mut j = 1;
        while j < self.size {
            let left = self.nodes[2 * j];
            let right = self.nodes[2 * j + 1];
            // Go left when the mass falls in the left subtree, or when the right one is empty
            // (`mass >= total` after rounding); never step into an all-zero subtree otherwise.
            if (mass < left && left > 0.0) || right <= 0.0 {
                j *= 2;
            } else {
                mass -= left;
                j = 2 * j + 1;
            }
        }
        (j - self.size).min(self.len.saturating_sub(1))
    }

    /// Recomputes every internal node from the leaves.
    fn rebuild(&mut self) {
        for j in (1..self.size).rev() {
            self.nodes[j] = self.nodes[2 * j] + self.nodes[2 * j + 1];
        }
    }
}

/// A min segment tree over `len()` values, padded with `+inf` (the neutral element) to a
/// power-of-two number of leaves.
#[derive(Clone, Debug)]
pub struct MinTree {
    len: usize,
    size: usize,
    nodes: Vec<f64>,
}

impl MinTree {
    /// A tree of `n` leaves, all `+inf` (so [`min`](MinTree::min) is `+inf` until a leaf is set).
    ///
    /// # Panics
    ///
    /// If `n` rounded up to a power of two overflows `usize`.
    pub fn new(n: usize) -> Self {
        Self::try_new(n).unwrap_or_else(|| panic!("min tree of {n} leaves is too large"))
    }

    /// A tree of `n` `+inf` leaves, or `None` when its size overflows or cannot be allocated.
    fn try_new(n: usize) -> Option<Self> {
        let size = leaf_count(n)?;
        let nodes = try_filled(size.checked_mul(2)?, f64::INFINITY)?;
        Some(Self {
            len: n,
            size,
            nodes,
        })
    }

    /// Number of usable leaves (the `n` given to [`MinTree::new`]).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the tree has no usable leaf.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sets leaf `i` to `v` (`+inf` clears it) and updates its ancestors (`O(log n)`).
    ///
    /// # Panics
    ///
    /// If `i >= len()` or `v` is NaN.
    pub fn set(&mut self, i: usize, v: f64) {
        assert!(
            i < self.len,
            "min tree leaf {i} out of range; expected < {}",
            self.len
        );
        assert!(!v.is_nan(), "min tree value is NaN; expected a number");
        let mut j = self.size + i;
        self.nodes[j] = v;
        j /= 2;
        while j >= 1 {
            self.nodes[j] = self.nodes[2 * j].min(self.nodes[2 * j + 1]);
            j /= 2;
        }
    }

    /// The value of leaf `i` (`+inf` for `i >= len()`).
    pub fn get(&self, i: usize) -> f64 {
        if i < self.len {
            self.nodes[self.size + i]
        } else {
            f64::INFINITY
        }
    }

    /// The smallest leaf (`+inf` when no leaf is set).
    pub fn min(&self) -> f64 {
        self.nodes[1]
    }

    /// Recomputes every internal node from the leaves.
    fn rebuild(&mut self) {
        for j in (1..self.size).rev() {
            self.nodes[j] = self.nodes[2 * j].min(self.nodes[2 * j + 1]);
        }
    }
}

/// `vec![value; n]`, or `None` if the allocation fails.
fn try_filled(n: usize, value: f64) -> Option<Vec<f64>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).ok()?;
    v.resize(n, value);
    Some(v)
}

/// Serialized form of a segment tree: its usable leaves as IEEE-754 bit patterns.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TreeRepr {
    len: usize,
    leaves_bits: Vec<u64>,
}

impl Serialize for SumTree {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let leaves = &self.nodes[self.size..self.size + self.len];
        TreeRepr {
            len: self.len,
            leaves_bits: leaves.iter().map(|v| v.to_bits()).collect(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for SumTree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let r = TreeRepr::deserialize(d)?;
        if r.leaves_bits.len() != r.len {
            return Err(D::Error::custom(format!(
                "sum tree has {} leaves; expected {}",
                r.leaves_bits.len(),
                r.len
            )));
        }
        let mut t = SumTree::try_new(r.len).ok_or_else(|| {
            D::Error::custom(format!("sum tree of {} leaves is too large", r.len))
        })?;
        for (i, &b) in r.leaves_bits.iter().enumerate() {
            let v = f64::from_bits(b);
            if !(v.is_finite() && v >= 0.0) {
                return Err(D::Error::custom(format!(
                    "sum tree leaf {i} is {v}; expected a finite number >= 0"
                )));
            }
            t.nodes[t.size + i] = v;
        }
        t.rebuild();
        Ok(t)
    }
}

impl Serialize for MinTree {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let leaves = &self.nodes[self.size..self.size + self.len];
        TreeRepr {
            len: self.len,
            leaves_bits: leaves.iter().map(|v| v.to_bits()).collect(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for MinTree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let r = TreeRepr::deserialize(d)?;
        if r.leaves_bits.len() != r.len {
            return Err(D::Error::custom(format!(
                "min tree has {} leaves; expected {}",
                r.leaves_bits.len(),
                r.len
            )));
        }
        let mut t = MinTree::try_new(r.len).ok_or_else(|| {
            D::Error::custom(format!("min tree of {} leaves is too large", r.len))
        })?;
        for (i, &b) in r.leaves_bits.iter().enumerate() {
            let v = f64::from_bits(b);
            if v.is_nan() {
                return Err(D::Error::custom(format!(
                    "min tree leaf {i} is NaN; expected a number"
                )));
            }
            t.nodes[t.size + i] = v;
        }
        t.rebuild();
        Ok(t)
    }
}

// ---------------------------------------------------------------------------------------------
// Replay buffer
// ---------------------------------------------------------------------------------------------

/// Priority state of a prioritized buffer.
#[derive(Clone, Debug)]
struct PerState {
    config: PerConfig,
    /// Stored priorities of the filled slots.
    sum: SumTree,
    /// Stored priorities of the filled slots, `+inf` where the stored priority is zero.
    min: MinTree,
    /// Largest raw priority seen (initially 1.0).
    max_priority: f64,
}

impl PerState {
    fn set(&mut self, slot: usize, stored: f64) {
        self.sum.set(slot, stored);
        self.min
            .set(slot, if stored > 0.0 { stored } else { f64::INFINITY });
    }
}

/// FIFO ring of transitions with optional prioritized sampling.
///
/// See the [module documentation](self) for the semantics. Serializable for checkpoints: the
/// contents, the write position, the stored priorities and the running maximum priority are
/// saved (exactly, see the module documentation) and validated when loaded.
#[derive(Clone, Debug)]
pub struct ReplayBuffer {
    shape: ReplayShape,
    capacity: usize,
    sampling: Sampling,
    /// Number of filled slots.
    len: usize,
    /// Next slot to write (`== len` until the ring is full).
    cursor: usize,
    states: Vec<StateValue>,
    next_states: Vec<StateValue>,
    forward_masks: Vec<bool>,
    next_forward_masks: Vec<bool>,
    next_backward_masks: Vec<bool>,
    actions: Vec<u32>,
    backward_actions: Vec<u32>,
    terminal_log_rewards: Vec<f64>,
    done: Vec<bool>,
    exit: Vec<bool>,
    per: Option<PerState>,
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
            forward_masks: Vec::new(),
            next_forward_masks: Vec::new(),
            next_backward_masks: Vec::new(),
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
            (
                "transition.forward_mask",
                t.forward_mask.len(),
                s.num_actions,
                "num_actions",
            ),
            (
                "transition.next_forward_mask",
                t.next_forward_mask.len(),
                s.num_actions,
                "num_actions",
            ),
            (
                "transition.next_backward_mask",
                t.next_backward_mask.len(),
                s.num_backward_actions,
                "num_backward_actions",
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
            let (c, w, a, b) = (
                self.capacity,
                s.state_width,
                s.num_actions,
                s.num_backward_actions,
            );
            grow(&mut self.states, w, c * w);
            grow(&mut self.next_states, w, c * w);
            grow(&mut self.forward_masks, a, c * a);
            grow(&mut self.next_forward_masks, a, c * a);
            grow(&mut self.next_backward_masks, b, c * b);
            grow(&mut self.actions, 1, c);
            grow(&mut self.backward_actions, 1, c);
            grow(&mut self.terminal_log_rewards, 1, c);
            grow(&mut self.done, 1, c);
            grow(&mut self.exit, 1, c);
            self.states.extend_from_slice(t.state);
            self.next_states.extend_from_slice(t.next_state);
            self.forward_masks.extend_from_slice(t.forward_mask);
            self.next_forward_masks
                .extend_from_slice(t.next_forward_mask);
            self.next_backward_masks
                .extend_from_slice(t.next_backward_mask);
            self.actions.push(t.action);
            self.backward_actions.push(t.backward_action);
            self.terminal_log_rewards.push(t.terminal_log_reward);
            self.done.push(t.done);
            self.exit.push(t.exit);
            self.len += 1;
        } else {
            let (w, a, b) = (s.state_width, s.num_actions, s.num_backward_actions);
            self.states[slot * w..(slot + 1) * w].copy_from_slice(t.state);
            self.next_states[slot * w..(slot + 1) * w].copy_from_slice(t.next_state);
            self.forward_masks[slot * a..(slot + 1) * a].copy_from_slice(t.forward_mask);
            self.next_forward_masks[slot * a..(slot + 1) * a].copy_from_slice(t.next_forward_mask);
            self.next_backward_masks[slot * b..(slot + 1) * b]
                .copy_from_slice(t.next_backward_mask);
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

    /// Samples `n` transitions with replacement into `out` (cleared first).
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

    /// Copies the rows of `out.indices` into the other columns of `out`.
    fn gather(&self, out: &mut SampledBatch) {
        let s = self.shape;
        let (w, a, b) = (s.state_width, s.num_actions, s.num_backward_actions);
        for &slot in &out.indices {
            out.states
                .extend_from_slice(&self.states[slot * w..(slot + 1) * w]);
            out.next_states
                .extend_from_slice(&self.next_states[slot * w..(slot + 1) * w]);
            out.forward_masks
                .extend_from_slice(&self.forward_masks[slot * a..(slot + 1) * a]);
            out.next_forward_masks
                .extend_from_slice(&self.next_forward_masks[slot * a..(slot + 1) * a]);
            out.next_backward_masks
                .extend_from_slice(&self.next_backward_masks[slot * b..(slot + 1) * b]);
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

// ---------------------------------------------------------------------------------------------
// Serialization
// ---------------------------------------------------------------------------------------------

/// Version of the serialized buffer layout.
const REPR_VERSION: u32 = 1;

/// Bits packed into 64-bit words (bit `k % 64` of word `k / 64`).
fn pack_bits(bits: &[bool]) -> Vec<u64> {
    let mut words = vec![0u64; bits.len().div_ceil(64)];
    for (k, &b) in bits.iter().enumerate() {
        if b {
            words[k / 64] |= 1 << (k % 64);
        }
    }
    words
}

/// The first `n` bits of `words`, or `None` if the word count does not match `n`.
fn unpack_bits(words: &[u64], n: usize) -> Option<Vec<bool>> {
    if words.len() != n.div_ceil(64) {
        return None;
    }
    Some((0..n).map(|k| words[k / 64] >> (k % 64) & 1 == 1).collect())
}

/// Serialized form of a [`ReplayBuffer`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BufferRepr<'a> {
    version: u32,
    shape: ReplayShape,
    capacity: usize,
    sampling: Sampling,
    len: usize,
    cursor: usize,
    states: Cow<'a, [StateValue]>,
    next_states: Cow<'a, [StateValue]>,
    forward_masks: Vec<u64>,
    next_forward_masks: Vec<u64>,
    next_backward_masks: Vec<u64>,
    actions: Cow<'a, [u32]>,
    backward_actions: Cow<'a, [u32]>,
    terminal_log_rewards_bits: Vec<u64>,
    done: Vec<u64>,
    exit: Vec<u64>,
    /// Stored priorities of slots `0..len` (prioritized buffers only).
    priorities_bits: Option<Vec<u64>>,
    /// Running maximum raw priority (prioritized buffers only).
    max_priority_bits: Option<u64>,
}

impl Serialize for ReplayBuffer {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        BufferRepr {
            version: REPR_VERSION,
            shape: self.shape,
            capacity: self.capacity,
            sampling: self.sampling,
            len: self.len,
            cursor: self.cursor,
            states: Cow::Borrowed(&self.states),
            next_states: Cow::Borrowed(&self.next_states),
            forward_masks: pack_bits(&self.forward_masks),
            next_forward_masks: pack_bits(&self.next_forward_masks),
            next_backward_masks: pack_bits(&self.next_backward_masks),
            actions: Cow::Borrowed(&self.actions),
            backward_actions: Cow::Borrowed(&self.backward_actions),
            terminal_log_rewards_bits: self
                .terminal_log_rewards
                .iter()
                .map(|v| v.to_bits())
                .collect(),
            done: pack_bits(&self.done),
            exit: pack_bits(&self.exit),
            priorities_bits: self
                .per
                .as_ref()
                .map(|p| (0..self.len).map(|i| p.sum.get(i).to_bits()).collect()),
            max_priority_bits: self.per.as_ref().map(|p| p.max_priority.to_bits()),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for ReplayBuffer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let r = BufferRepr::deserialize(d)?;
        ReplayBuffer::from_repr(r).map_err(|e| D::Error::custom(format!("replay buffer: {e}")))
    }
}

impl ReplayBuffer {
    /// Rebuilds and validates a buffer from its serialized form.
    fn from_repr(r: BufferRepr<'_>) -> std::result::Result<Self, String> {
        if r.version != REPR_VERSION {
            return Err(format!(
                "layout version {}; expected {REPR_VERSION}",
                r.version
            ));
        }
        let mut b =
            ReplayBuffer::new(r.shape, r.capacity, r.sampling).map_err(|e| e.to_string())?;
        let n = r.len;
        if n > r.capacity {
            return Err(format!("len {n}; expected at most capacity {}", r.capacity));
        }
        let cursor_ok = if n < r.capacity {
            r.cursor == n
        } else {
            r.cursor < r.capacity
        };
        if !cursor_ok {
            return Err(format!(
                "write position {} with {n} of {} slots filled; expected {}",
                r.cursor,
                r.capacity,
                if n < r.capacity {
                    format!("{n}")
                } else {
                    format!("a slot < {}", r.capacity)
                }
            ));
        }
        let s = r.shape;
        let column =
            |name: &str, found: usize, per_row: usize| -> std::result::Result<(), String> {
                if found == n * per_row {
                    Ok(())
                } else {
                    Err(format!(
                        "column `{name}` has {found} values; expected {}",
                        n * per_row
                    ))
                }
            };
        column("states", r.states.len(), s.state_width)?;
        column("next_states", r.next_states.len(), s.state_width)?;
        column("actions", r.actions.len(), 1)?;
        column("backward_actions", r.backward_actions.len(), 1)?;
        column(
            "terminal_log_rewards_bits",
            r.terminal_log_rewards_bits.len(),
            1,
        )?;
        let unpack = |name: &str, words: &[u64], bits: usize| {
            unpack_bits(words, bits).ok_or_else(|| {
                format!(
                    "column `{name}` has {} words; expected {} for {bits} flags",
                    words.len(),
                    bits.div_ceil(64)
                )
            })
        };
        b.forward_masks = unpack("forward_masks", &r.forward_masks, n * s.num_actions)?;
        b.next_forward_masks = unpack(
            "next_forward_masks",
            &r.next_forward_masks,
            n * s.num_actions,
        )?;
        b.next_backward_masks = unpack(
            "next_backward_masks",
            &r.next_backward_masks,
            n * s.num_backward_actions,
        )?;
        b.done = unpack("done", &r.done, n)?;
        b.exit = unpack("exit", &r.exit, n)?;
        b.states = r.states.into_owned();
        b.next_states = r.next_states.into_owned();
        b.actions = r.actions.into_owned();
        b.backward_actions = r.backward_actions.into_owned();
        b.terminal_log_rewards = r
            .terminal_log_rewards_bits
            .iter()
            .map(|&x| f64::from_bits(x))
            .collect();
        for i in 0..n {
            let (action, back) = (b.actions[i], b.backward_actions[i]);
            if action as usize >= s.num_actions {
                return Err(format!(
                    "slot {i} has action {action}; expected < num_actions = {}",
                    s.num_actions
                ));
            }
            let back_ok = if b.exit[i] {
                back == NO_BACKWARD_ACTION && b.done[i]
            } else {
                (back as usize) < s.num_backward_actions
            };
            if !back_ok {
                return Err(format!(
                    "slot {i} has backward action {back} (exit = {}, done = {}); expected \
                     NO_BACKWARD_ACTION with done for an exit, < {} otherwise",
                    b.exit[i], b.done[i], s.num_backward_actions
                ));
            }
            if b.terminal_log_rewards[i].is_nan() {
                return Err(format!(
                    "slot {i} has a NaN terminal log-reward; expected a number"
                ));
            }
        }
        b.len = n;
        b.cursor = r.cursor;
        match (b.per.as_mut(), r.priorities_bits, r.max_priority_bits) {
            (None, None, None) => {}
            (Some(per), Some(priorities), Some(max_bits)) => {
                if priorities.len() != n {
                    return Err(format!(
                        "{} stored priorities; expected {n}",
                        priorities.len()
                    ));
                }
                let max_priority = f64::from_bits(max_bits);
                if !(max_priority.is_finite() && max_priority >= 0.0) {
                    return Err(format!(
                        "maximum priority {max_priority}; expected a finite number >= 0"
                    ));
                }
                per.max_priority = max_priority;
                for (i, &bits) in priorities.iter().enumerate() {
                    let v = f64::from_bits(bits);
                    if !(v.is_finite() && v >= 0.0) {
                        return Err(format!(
                            "slot {i} has stored priority {v}; expected a finite number >= 0"
                        ));
                    }
                    per.sum.nodes[per.sum.size + i] = v;
                    per.min.nodes[per.min.size + i] = if v > 0.0 { v } else { f64::INFINITY };
                }
                per.sum.rebuild();
                per.min.rebuild();
            }
            _ => {
                return Err(
                    "priorities present or missing against the sampling scheme; expected them \
                     exactly for prioritized sampling"
                        .into(),
                );
            }
        }
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_round_trip() {
        let bits: Vec<bool> = (0..130).map(|k| k % 3 == 0 || k == 129).collect();
        let words = pack_bits(&bits);
        assert_eq!(words.len(), 3);
        assert_eq!(unpack_bits(&words, 130).unwrap(), bits);
        assert!(unpack_bits(&words, 200).is_none());
        assert!(unpack_bits(&[], 0).unwrap().is_empty());
    }

    #[test]
    fn find_prefix_stays_on_positive_leaves() {
        let mut t = SumTree::new(5);
        t.set(1, 2.0);
        t.set(3, 1.0);
        // mass beyond the total (rounding) lands on the last positive leaf, negative on the first.
        assert_eq!(t.find_prefix(3.0), 3);
        assert_eq!(t.find_prefix(1e9), 3);
        assert_eq!(t.find_prefix(-1.0), 1);
        assert_eq!(t.find_prefix(f64::NAN), 3);
        assert_eq!(SumTree::new(3).find_prefix(0.5), 0);
    }

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
            forward_mask: &[true, false, true],
            next_forward_mask: &[false, true, true],
            next_backward_mask: &[true],
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
        assert_eq!(b.forward_masks.capacity(), 300);
        assert_eq!(b.exit.capacity(), 100);
        let ptr = b.states.as_ptr();
        for _ in 0..250 {
            b.push(&t, None).unwrap();
        }
        assert_eq!(b.states.as_ptr(), ptr);
        assert_eq!((b.len(), b.cursor), (100, 50));
    }

    #[test]
    fn rebuilt_tree_is_bit_identical() {
        let mut t = SumTree::new(7);
        for i in 0..7 {
            t.set(i, 0.1 * (i as f64 + 1.0).sqrt());
        }
        let mut u = t.clone();
        u.nodes[1..u.size].iter_mut().for_each(|x| *x = 0.0);
        u.rebuild();
        assert_eq!(
            t.nodes.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            u.nodes.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }
}
