//! Replay buffers for the soft-RL agents (SoftDQN, Munchausen DQN, SAC).
//!
//! A [`ReplayBuffer`] is a FIFO ring of fixed capacity holding single transitions
//! ([`TransitionRecord`]): once full, every [`push`](ReplayBuffer::push) overwrites the oldest
//! slot (slots are written `0, 1, .., capacity - 1, 0, 1, ..`). Sampling draws `n` slots **with
//! replacement**, either uniformly or, with [`Sampling::Prioritized`], proportionally to a stored
//! priority.
//!
//! The module is split by concern: [`tree`] (one segment tree generic over its combine
//! operation: [`SumTree`] and [`MinTree`]), `buffer` (the ring, sampling and priorities) and
//! `persist` (the checkpoint form).
//!
//! # What a transition stores
//!
//! Only what cannot be recomputed cheaply: the state and the next state, the forward and backward
//! actions, the terminal log-reward and the `done`/`exit` flags. Action masks are **not** stored
//! (at bit sequences with k = 8 they were 8 KB of a transition's 8.4 KB):
//! [`SampledBatch::fill_masks`] recomputes them for a sampled batch, in three batched calls to the
//! environment, exactly as the sampler computed them ([`ReplayShape::bytes_per_transition`]
//! gives the storage per transition).
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
//! All randomness comes from the caller's [`Rng`](softgfn_core::Rng), one draw per sampled
//! transition in order ([`below`](softgfn_core::rng::below) for uniform sampling,
//! [`uniform`](softgfn_core::rng::uniform) for prioritized sampling), so a seed fixes the samples.
//! Storage grows with the contents up to `capacity` and is then overwritten in place;
//! [`SampledBatch`] keeps its vectors between calls, so a warm buffer neither allocates per
//! `push` nor per `sample`.
//!
//! # Checkpoints
//!
//! [`ReplayBuffer`], [`SumTree`] and [`MinTree`] implement serde. Floating-point contents
//! (rewards, priorities) are written as their IEEE-754 bit patterns and boolean columns as packed
//! 64-bit words, so that a round trip through any format (including `serde_json`, whose default
//! float parsing is not exact) gives a buffer that samples bit-for-bit identically. The segment
//! trees are rebuilt from their leaves when loading, and loaded contents are validated. Layout
//! version 1 (which stored masks) still loads: its mask columns are checked and dropped.

mod buffer;
mod persist;
pub mod tree;

pub use buffer::{PerConfig, ReplayBuffer, ReplayShape, SampledBatch, Sampling, TransitionRecord};
pub use tree::{Combine, Min, MinTree, SegmentTree, Sum, SumTree};
