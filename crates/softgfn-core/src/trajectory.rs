//! Containers for sampled trajectories and transitions.
//!
//! A batch of [`Trajectories`] stores every trajectory contiguously ("trajectory-major"): the
//! states `s_0 .. s_n` of trajectory `i` are rows `state_offsets[i] .. state_offsets[i + 1]`, and
//! its forward actions ("edges") are `edge_offsets[i] .. edge_offsets[i + 1]`. Edge `k` of a
//! trajectory leaves state `s_k`; it is either a step to `s_{k+1}` (with the backward action that
//! undoes it) or, for the last edge of a trajectory that ended by the exit action, the exit.
//! A trajectory ended implicitly (its last state has no valid forward action) has `n` edges for
//! `n + 1` states; one ended by exit has `n + 1` edges.
//!
//! Buffers are reused between iterations: [`Trajectories::clear`] keeps their capacity.

use crate::env::{EnvSpec, StateValue};

/// Marker stored as the backward action of an exit edge.
pub const NO_BACKWARD_ACTION: u32 = u32::MAX;

/// A batch of complete trajectories with everything training needs.
#[derive(Clone, Debug, Default)]
pub struct Trajectories {
    /// State width.
    pub state_width: usize,
    /// Feature length.
    pub feature_dim: usize,
    /// Number of forward actions.
    pub num_actions: usize,
    /// Number of backward actions.
    pub num_backward_actions: usize,
    /// All state rows (`num_states() * state_width`).
    pub states: Vec<StateValue>,
    /// Features of every state (`num_states() * feature_dim`).
    pub features: Vec<f32>,
    /// Forward masks of every state (`num_states() * num_actions`).
    pub forward_masks: Vec<bool>,
    /// Backward masks of every state (`num_states() * num_backward_actions`).
    pub backward_masks: Vec<bool>,
    /// Forward action of every edge.
    pub actions: Vec<u32>,
    /// Backward action of every edge ([`NO_BACKWARD_ACTION`] for exit edges).
    pub backward_actions: Vec<u32>,
    /// Log-probability of each edge's action under the behaviour policy that sampled it.
    pub behaviour_log_probs: Vec<f64>,
    /// Per trajectory: first state row (length `num_trajectories() + 1`).
    pub state_offsets: Vec<usize>,
    /// Per trajectory: first edge (length `num_trajectories() + 1`).
    pub edge_offsets: Vec<usize>,
    /// Per trajectory: log-reward of its terminal state.
    pub log_rewards: Vec<f64>,
}

impl Trajectories {
    /// An empty batch shaped for `spec`.
    pub fn new(spec: &EnvSpec) -> Self {
        let mut t = Self::default();
        t.reset(spec);
        t
    }

    /// Empties the batch and sets the shapes, keeping allocations.
    pub fn reset(&mut self, spec: &EnvSpec) {
        self.state_width = spec.state_width;
        self.feature_dim = spec.feature_dim;
        self.num_actions = spec.num_actions;
        self.num_backward_actions = spec.num_backward_actions;
        self.clear();
    }

    /// Empties the batch, keeping allocations and shapes.
    pub fn clear(&mut self) {
        self.states.clear();
        self.features.clear();
        self.forward_masks.clear();
        self.backward_masks.clear();
        self.actions.clear();
        self.backward_actions.clear();
        self.behaviour_log_probs.clear();
        self.state_offsets.clear();
        self.state_offsets.push(0);
        self.edge_offsets.clear();
        self.edge_offsets.push(0);
        self.log_rewards.clear();
    }

    /// Number of trajectories.
    pub fn num_trajectories(&self) -> usize {
        self.log_rewards.len()
    }

    /// Number of state rows over all trajectories.
    pub fn num_states(&self) -> usize {
        *self.state_offsets.last().unwrap_or(&0)
    }

    /// Number of edges (forward actions, exits included) over all trajectories.
    pub fn num_edges(&self) -> usize {
        *self.edge_offsets.last().unwrap_or(&0)
    }

    /// State row `r`.
    pub fn state(&self, r: usize) -> &[StateValue] {
        &self.states[r * self.state_width..(r + 1) * self.state_width]
    }

    /// Forward mask of state row `r`.
    pub fn forward_mask(&self, r: usize) -> &[bool] {
        &self.forward_masks[r * self.num_actions..(r + 1) * self.num_actions]
    }

    /// Backward mask of state row `r`.
    pub fn backward_mask(&self, r: usize) -> &[bool] {
        &self.backward_masks[r * self.num_backward_actions..(r + 1) * self.num_backward_actions]
    }

    /// Row of the terminal state of trajectory `i`.
    pub fn terminal_row(&self, i: usize) -> usize {
        self.state_offsets[i + 1] - 1
    }

    /// Terminal state of trajectory `i`.
    pub fn terminal_state(&self, i: usize) -> &[StateValue] {
        self.state(self.terminal_row(i))
    }

    /// Whether edge `e` is an exit edge.
    pub fn is_exit_edge(&self, e: usize) -> bool {
        self.backward_actions[e] == NO_BACKWARD_ACTION
    }

    /// Source state row of edge `e` of trajectory `i`.
    pub fn edge_source(&self, i: usize, e: usize) -> usize {
        self.state_offsets[i] + (e - self.edge_offsets[i])
    }

    /// Appends one trajectory given its parts (used by samplers and tests). `edges` pairs each
    /// forward action with its backward action ([`NO_BACKWARD_ACTION`] for an exit).
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        states: &[StateValue],
        features: &[f32],
        forward_masks: &[bool],
        backward_masks: &[bool],
        edges: &[(u32, u32)],
        behaviour_log_probs: &[f64],
        log_reward: f64,
    ) {
        self.states.extend_from_slice(states);
        self.features.extend_from_slice(features);
        self.forward_masks.extend_from_slice(forward_masks);
        self.backward_masks.extend_from_slice(backward_masks);
        for &(a, b) in edges {
            self.actions.push(a);
            self.backward_actions.push(b);
        }
        self.behaviour_log_probs
            .extend_from_slice(behaviour_log_probs);
        self.state_offsets
            .push(self.state_offsets.last().unwrap_or(&0) + states.len() / self.state_width);
        self.edge_offsets
            .push(self.edge_offsets.last().unwrap_or(&0) + edges.len());
        self.log_rewards.push(log_reward);
    }

    /// Number of edges of trajectory `i`.
    pub fn len_of(&self, i: usize) -> usize {
        self.edge_offsets[i + 1] - self.edge_offsets[i]
    }

    /// Iterates over the transitions of the batch (every edge), for replay buffers.
    pub fn transitions(&self) -> impl Iterator<Item = Transition> + '_ {
        (0..self.num_trajectories()).flat_map(move |i| {
            let exit_ended = self.has_exit_edge(i);
            (self.edge_offsets[i]..self.edge_offsets[i + 1]).map(move |e| {
                let src = self.edge_source(i, e);
                let exit = self.is_exit_edge(e);
                let done = exit || (!exit_ended && src + 1 == self.terminal_row(i));
                Transition {
                    state_row: src,
                    next_row: if exit { None } else { Some(src + 1) },
                    action: self.actions[e],
                    backward_action: self.backward_actions[e],
                    done,
                    log_reward: if done { self.log_rewards[i] } else { f64::NAN },
                }
            })
        })
    }

    /// Whether trajectory `i` ended with an exit edge.
    pub fn has_exit_edge(&self, i: usize) -> bool {
        let n = self.edge_offsets[i + 1];
        n > self.edge_offsets[i] && self.is_exit_edge(n - 1)
    }
}

/// One transition of a [`Trajectories`] batch (rows refer to that batch).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Transition {
    /// Row of the source state.
    pub state_row: usize,
    /// Row of the next state (`None` for the exit).
    pub next_row: Option<usize>,
    /// Forward action.
    pub action: u32,
    /// Backward action ([`NO_BACKWARD_ACTION`] for the exit).
    pub backward_action: u32,
    /// Whether the episode ends with this transition (exit, or an implicit end at the next state).
    pub done: bool,
    /// Log-reward of the terminal object when `done`, NaN otherwise.
    pub log_reward: f64,
}
