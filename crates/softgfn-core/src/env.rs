//! The environment seam: [`EnvSpec`], [`Environment`] and the optional [`Enumerable`] capability.
//!
//! An environment is a DAG with a unique source `s0`. A state is a fixed-width row of `i32`
//! values; a batch of states is a row-major buffer of `rows * state_width` values that the caller
//! allocates. Every call is batched and writes into caller-allocated output buffers, so the same
//! calls cross a C ABI without copies (run-time plugins).
//!
//! Termination comes in two forms, and an environment may use both:
//! - an explicit **exit** action (`EnvSpec::exit_action`): a state where exit is valid is terminal
//!   (it belongs to the set `X` of objects) and the trajectory ends when exit is taken;
//! - an **implicit** end: a state with no valid forward action at all ends the trajectory by
//!   itself, with probability one (a full bit string). Such a state must have a finite reward.
//!
//! Forward and backward actions correspond one to one: `step` returns, for each transition, the
//! backward action that undoes it, and `backward_step` returns the forward action that redoes it.

use crate::error::{CoreError, Result};

/// The value type of a state row.
pub type StateValue = i32;

/// Static description of an environment's shapes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EnvSpec {
    /// Registered name of the environment (used in messages and records).
    pub name: String,
    /// Number of `i32` values in a state row.
    pub state_width: usize,
    /// Number of forward actions, the exit action included.
    pub num_actions: usize,
    /// Number of backward actions.
    pub num_backward_actions: usize,
    /// Length of the `f32` feature vector of a state ([`Environment::encode`]).
    pub feature_dim: usize,
    /// Upper bound on the number of forward actions of any complete trajectory, exit included.
    pub max_trajectory_length: usize,
    /// Index of the exit (stop) action, if the DAG has one.
    pub exit_action: Option<u32>,
}

impl EnvSpec {
    /// Number of rows in a state buffer, checking that its length is a multiple of the width.
    pub fn rows_of(&self, what: &str, states: &[StateValue]) -> Result<usize> {
        if self.state_width == 0 || !states.len().is_multiple_of(self.state_width) {
            return Err(CoreError::BufferLength {
                what: format!(
                    "{what} of {} (rows of width {})",
                    self.name, self.state_width
                ),
                expected: states.len().div_ceil(self.state_width.max(1)) * self.state_width,
                found: states.len(),
            });
        }
        Ok(states.len() / self.state_width)
    }

    /// Checks that `found` equals `rows * per_row` for an output or input buffer.
    pub fn check_len(&self, what: &str, rows: usize, per_row: usize, found: usize) -> Result<()> {
        if rows * per_row != found {
            return Err(CoreError::BufferLength {
                what: format!("{what} of {}", self.name),
                expected: rows * per_row,
                found,
            });
        }
        Ok(())
    }

    /// Whether `action` is the exit action.
    #[inline]
    pub fn is_exit(&self, action: u32) -> bool {
        self.exit_action == Some(action)
    }
}

/// A GFlowNet environment: a DAG over fixed-width integer states, batched and stateless.
///
/// Implementations must be deterministic. All methods take a batch of `rows` states as a
/// row-major slice of `rows * spec().state_width` values; outputs are caller-allocated. The
/// conformance checker [`crate::check_env`] verifies the contract.
pub trait Environment: Send + Sync {
    /// Shapes and name.
    fn spec(&self) -> &EnvSpec;

    /// The resolved parameters of this instance as JSON (recorded with every run).
    fn params(&self) -> serde_json::Value;

    /// Writes the initial state `s0` into `out` (one row).
    fn initial_state(&self, out: &mut [StateValue]);

    /// Valid forward actions: `out[r * num_actions + a]` is true when action `a` is valid in row `r`
    /// (the exit action included).
    fn forward_masks(&self, states: &[StateValue], out: &mut [bool]) -> Result<()>;

    /// Valid backward actions: `out[r * num_backward_actions + b]`; all false exactly at `s0`.
    fn backward_masks(&self, states: &[StateValue], out: &mut [bool]) -> Result<()>;

    /// Applies one non-exit forward action per row, writing the next states and the backward
    /// action that undoes each step. Invalid actions (the exit action included) are errors.
    fn step(
        &self,
        states: &[StateValue],
        actions: &[u32],
        next: &mut [StateValue],
        backward_actions: &mut [u32],
    ) -> Result<()>;

    /// Applies one backward action per row, writing the parent states and the forward action that
    /// leads back. Invalid backward actions are errors.
    fn backward_step(
        &self,
        states: &[StateValue],
        backward_actions: &[u32],
        prev: &mut [StateValue],
        forward_actions: &mut [u32],
    ) -> Result<()>;

    /// Natural log of the reward of terminal states (one value per row).
    fn log_reward(&self, states: &[StateValue], out: &mut [f64]) -> Result<()>;

    /// Float features of states: `out` has `rows * feature_dim` values.
    fn encode(&self, states: &[StateValue], out: &mut [f32]) -> Result<()>;

    /// The enumeration capability, if the state space can be listed.
    fn as_enumerable(&self) -> Option<&dyn Enumerable> {
        None
    }

    /// How the features and actions read as a token sequence, for sequence models such as the
    /// transformer policy; `None` (the default) when they do not.
    fn sequence_layout(&self) -> Option<SequenceLayout> {
        None
    }

    /// How the features and actions read as a graph of typed nodes with typed edges and typed
    /// action slots ("stems"), for graph models such as the graph policy network; `None` (the
    /// default) when they do not.
    fn graph_layout(&self) -> Option<GraphLayout> {
        None
    }

    /// The environment's declared state equivalence, if two different rows can stand for the
    /// same object (see [`StateEquivalence`]); `None` (the default) when states are equal only
    /// when their rows are. Run-time plugins carry it across the C ABI from version 2 on.
    fn as_state_equivalence(&self) -> Option<&dyn StateEquivalence> {
        None
    }

    /// The readable form of states for people (see [`Readable`]); `None` (the default) when the
    /// environment has none, and [`readable_state`] shows the integer row instead.
    fn as_readable(&self) -> Option<&dyn Readable> {
        None
    }

    /// A fresh [`Monitor`](crate::Monitor) computing this environment's own evaluation metrics
    /// (the bit-sequence task: `modes_found` and `spearman`); `None` (the default) when it has
    /// none. The trainer asks once per run and feeds it every iteration's terminal states.
    /// Run-time plugins loaded across the C ABI have no monitor (the ABI does not carry one).
    fn monitor(&self) -> Option<Box<dyn crate::Monitor>> {
        None
    }
}

/// Features and actions of an environment read as a sequence of tokens.
///
/// The feature vector of a state ([`Environment::encode`]) is `tokens` consecutive blocks of
/// `token_features` values, one per token (typically a one-hot of the token's value, which a
/// sequence model multiplies by a learned embedding matrix). Token 0 is a summary position (a BOS
/// token) whose output a sequence model reads for state-level quantities such as `log F(s)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SequenceLayout {
    /// Number of tokens per state (the BOS token included).
    pub tokens: usize,
    /// Features per token; `tokens * token_features` equals `EnvSpec::feature_dim`.
    pub token_features: usize,
    /// How forward actions index tokens.
    pub forward: TokenActions,
    /// How backward actions index tokens.
    pub backward: TokenActions,
}

/// How a set of actions maps onto the tokens of a [`SequenceLayout`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TokenActions {
    /// Action `token * words + word`: one of `words` values written at a token (`tokens * words`
    /// actions). A sequence model scores it as `position_logit[token] + word_logit[token, word]`.
    TokenWord {
        /// Values per token.
        words: usize,
    },
    /// Action `token`: one action per token (`tokens` actions).
    Token,
}

impl TokenActions {
    /// Number of actions this layout describes for `tokens` tokens.
    pub fn num_actions(&self, tokens: usize) -> usize {
        match self {
            TokenActions::TokenWord { words } => tokens * words,
            TokenActions::Token => tokens,
        }
    }
}

impl SequenceLayout {
    /// Checks the layout against the environment's spec.
    ///
    /// # Errors
    /// [`CoreError::Structure`] naming the mismatching size.
    pub fn validate(&self, spec: &EnvSpec) -> Result<()> {
        let bad = |details: String| {
            Err(CoreError::Structure {
                env: spec.name.clone(),
                property: "sequence layout".into(),
                details,
            })
        };
        if self.tokens == 0 || self.token_features == 0 {
            return bad(format!(
                "tokens and token_features must be at least 1, found {} and {}",
                self.tokens, self.token_features
            ));
        }
        if self.tokens * self.token_features != spec.feature_dim {
            return bad(format!(
                "tokens * token_features = {} * {} must equal feature_dim {}",
                self.tokens, self.token_features, spec.feature_dim
            ));
        }
        if self.forward.num_actions(self.tokens) != spec.num_actions {
            return bad(format!(
                "forward layout {:?} gives {} actions, the spec has {}",
                self.forward,
                self.forward.num_actions(self.tokens),
                spec.num_actions
            ));
        }
        if self.backward.num_actions(self.tokens) != spec.num_backward_actions {
            return bad(format!(
                "backward layout {:?} gives {} actions, the spec has {}",
                self.backward,
                self.backward.num_actions(self.tokens),
                spec.num_backward_actions
            ));
        }
        Ok(())
    }
}

/// Features and actions of an environment read as a graph (the block graph of a molecule).
///
/// A state is a graph of at most `max_nodes` **nodes**, each with a type in `0..node_types`;
/// at most `max_edges` directed **edges** `src -> dst`, each with a pair of end types
/// `(type_src, type_dst)` in `0..edge_types` (the paper's molecule network: the stem types of
/// the two atoms a junction joins); and at most `max_stems` **stems**, action slots each on a
/// node and with a type in `0..stem_types`.
///
/// **Features.** The graph is written in the feature vector of [`Environment::encode`] from
/// index `offset` on, as exact small integers stored as `f32`, each field holding `value + 1`
/// and `0` where the item is absent:
///
/// | Fields | Count | Meaning |
/// |---|---|---|
/// | node type + 1 | `max_nodes` | nodes `0..n` present, the rest 0 |
/// | `(src + 1, dst + 1, type_src + 1, type_dst + 1)` | `4 * max_edges` | edges, absent ones all 0 |
/// | `(node + 1, type + 1)` | `2 * max_stems` | stems `0..k` present, the rest 0 |
///
/// Present nodes and stems come first (nodes `0..n`, stems `0..k`); edges may have gaps.
///
/// **Forward actions.** Action `a < graph_actions` is a per-graph action (stop); action
/// `graph_actions + k * stem_actions + j` is the `j`-th action of stem slot `k`, so
/// `num_actions = graph_actions + max_stems * stem_actions`.
///
/// **Backward actions.** With `node_backward_actions`, backward action `i` acts on node `i`
/// (removes it) and `num_backward_actions = max_nodes`; otherwise a graph model cannot score
/// backward actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GraphLayout {
    /// Index of the first graph field in the feature vector.
    pub offset: usize,
    /// Most nodes of a state.
    pub max_nodes: usize,
    /// Number of node types.
    pub node_types: usize,
    /// Most edges of a state.
    pub max_edges: usize,
    /// Number of edge-end types.
    pub edge_types: usize,
    /// Most stems (action slots) of a state.
    pub max_stems: usize,
    /// Number of stem types.
    pub stem_types: usize,
    /// Forward actions per stem.
    pub stem_actions: usize,
    /// Per-graph forward actions (numbered first).
    pub graph_actions: usize,
    /// Whether backward action `i` acts on node `i`.
    pub node_backward_actions: bool,
}

impl GraphLayout {
    /// Number of feature values the graph takes (from `offset` on).
    pub fn graph_features(&self) -> usize {
        self.max_nodes + 4 * self.max_edges + 2 * self.max_stems
    }

    /// Checks the layout against the environment's spec.
    ///
    /// # Errors
    /// [`CoreError::Structure`] naming the mismatching size.
    pub fn validate(&self, spec: &EnvSpec) -> Result<()> {
        let bad = |details: String| {
            Err(CoreError::Structure {
                env: spec.name.clone(),
                property: "graph layout".into(),
                details,
            })
        };
        for (name, v) in [
            ("max_nodes", self.max_nodes),
            ("node_types", self.node_types),
            ("edge_types", self.edge_types),
            ("max_stems", self.max_stems),
            ("stem_types", self.stem_types),
            ("stem_actions", self.stem_actions),
        ] {
            if v == 0 {
                return bad(format!("{name} must be at least 1, found 0"));
            }
        }
        // Values are stored as exact f32 integers.
        let limit = 1usize << 24;
        for (name, v) in [
            ("max_nodes", self.max_nodes),
            ("node_types", self.node_types),
            ("edge_types", self.edge_types),
            ("max_stems", self.max_stems),
            ("stem_types", self.stem_types),
        ] {
            if v >= limit {
                return bad(format!(
                    "{name} = {v} is too large to store exactly in f32 features"
                ));
            }
        }
        if self.offset + self.graph_features() > spec.feature_dim {
            return bad(format!(
                "graph fields {}..{} lie past feature_dim {}",
                self.offset,
                self.offset + self.graph_features(),
                spec.feature_dim
            ));
        }
        let actions = self.graph_actions + self.max_stems * self.stem_actions;
        if actions != spec.num_actions {
            return bad(format!(
                "graph_actions + max_stems * stem_actions = {} + {} * {} = {actions}, the spec \
                 has {} actions",
                self.graph_actions, self.max_stems, self.stem_actions, spec.num_actions
            ));
        }
        if self.node_backward_actions && self.max_nodes != spec.num_backward_actions {
            return bad(format!(
                "node backward actions need num_backward_actions = max_nodes = {}, found {}",
                self.max_nodes, spec.num_backward_actions
            ));
        }
        Ok(())
    }
}

/// Optional capability: an equivalence of states declared by the environment, as a canonical key.
///
/// Some environments keep, in a state row, how the object was built (the order in which the
/// blocks of a molecule were added), while their backward actions follow the object (remove any
/// leaf block). Removing an earlier block and adding it back then gives another row of the same
/// object. With this capability [`crate::check_env`] checks the property `step inverts
/// backward_step` up to the equivalence: for `(s, a) = backward_step(s', b)` and
/// `(s'', b'') = step(s, a)`, it requires `canonical_key(s'') == canonical_key(s')`, `b''` valid
/// at `s''`, and `backward_step(s'', b'') == (s, a)` exactly. Every other property, `backward_step
/// inverts step` included, stays exact.
pub trait StateEquivalence: Send + Sync {
    /// The canonical key of one state: two states are equivalent exactly when their keys are
    /// equal.
    ///
    /// # Errors
    /// An invalid state row.
    fn canonical_key(&self, state: &[StateValue]) -> Result<Vec<StateValue>>;
}

/// Optional capability: a readable form of a state for people (a hypergrid's coordinates, a bit
/// string, a molecule string, a set).
///
/// The text is for display and files (`softgfn sample`): one line, no tabs. It need not be
/// parseable back into a row.
pub trait Readable: Send + Sync {
    /// The readable form of one state row.
    ///
    /// # Errors
    /// An invalid state row.
    fn readable(&self, state: &[StateValue]) -> Result<String>;
}

/// The readable form of one state: the environment's [`Readable`] text, or the integer row
/// (`[3, 0, 5]`) when it has none.
///
/// # Errors
/// A row of the wrong width, or the environment's error for an invalid row.
pub fn readable_state(env: &dyn Environment, state: &[StateValue]) -> Result<String> {
    let spec = env.spec();
    spec.check_len("state", 1, spec.state_width, state.len())?;
    match env.as_readable() {
        Some(r) => r.readable(state),
        None => Ok(integer_row(state)),
    }
}

/// The integer form of a state row: `[3, 0, 5]`.
pub fn integer_row(state: &[StateValue]) -> String {
    let mut out = String::with_capacity(2 + 4 * state.len());
    out.push('[');
    for (i, v) in state.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&v.to_string());
    }
    out.push(']');
    out
}

/// Optional capability: a bijection between all states and `0..num_states()`.
///
/// It powers exact answers (target distribution, flows, the exact terminal distribution of a
/// policy) and the empirical metrics. Indices are `u64` and computed with checked arithmetic, so
/// large instances never overflow silently: an environment too large to index returns `None`
/// from [`Environment::as_enumerable`].
pub trait Enumerable: Send + Sync {
    /// Number of states (all of them, not only terminal ones).
    fn num_states(&self) -> u64;

    /// Index of each state row, in `0..num_states()`.
    fn state_index(&self, states: &[StateValue], out: &mut [u64]) -> Result<()>;

    /// The state rows of the given indices.
    fn states_from_index(&self, indices: &[u64], out: &mut [StateValue]) -> Result<()>;
}

/// Convenience helpers available on every environment (single-row wrappers and allocation-owning
/// variants for tests, tools and examples; hot loops use the batched trait methods).
pub trait EnvironmentExt: Environment {
    /// The initial state as an owned row.
    fn initial_row(&self) -> Vec<StateValue> {
        let mut s = vec![0; self.spec().state_width];
        self.initial_state(&mut s);
        s
    }

    /// Forward mask of one state.
    fn forward_mask_of(&self, state: &[StateValue]) -> Result<Vec<bool>> {
        let mut m = vec![false; self.spec().num_actions];
        self.forward_masks(state, &mut m)?;
        Ok(m)
    }

    /// Backward mask of one state.
    fn backward_mask_of(&self, state: &[StateValue]) -> Result<Vec<bool>> {
        let mut m = vec![false; self.spec().num_backward_actions];
        self.backward_masks(state, &mut m)?;
        Ok(m)
    }

    /// One forward step from one state: `(next state, backward action)`.
    fn step_one(&self, state: &[StateValue], action: u32) -> Result<(Vec<StateValue>, u32)> {
        let mut next = vec![0; self.spec().state_width];
        let mut b = [0u32];
        self.step(state, &[action], &mut next, &mut b)?;
        Ok((next, b[0]))
    }

    /// One backward step from one state: `(parent state, forward action)`.
    fn backward_step_one(
        &self,
        state: &[StateValue],
        backward_action: u32,
    ) -> Result<(Vec<StateValue>, u32)> {
        let mut prev = vec![0; self.spec().state_width];
        let mut a = [0u32];
        self.backward_step(state, &[backward_action], &mut prev, &mut a)?;
        Ok((prev, a[0]))
    }

    /// Log-reward of one state.
    fn log_reward_of(&self, state: &[StateValue]) -> Result<f64> {
        let mut r = [0.0];
        self.log_reward(state, &mut r)?;
        Ok(r[0])
    }

    /// Whether a state is terminal: exit is valid there, or it has no valid forward action.
    fn is_terminal_state(&self, state: &[StateValue]) -> Result<bool> {
        let m = self.forward_mask_of(state)?;
        Ok(is_terminal_mask(self.spec(), &m))
    }
}

impl<E: Environment + ?Sized> EnvironmentExt for E {}

/// Whether a forward mask row describes a terminal state (exit valid, or no valid action).
#[inline]
pub fn is_terminal_mask(spec: &EnvSpec, mask: &[bool]) -> bool {
    match spec.exit_action {
        Some(e) if mask[e as usize] => true,
        _ => !mask.iter().any(|&v| v),
    }
}

/// Whether a forward mask row ends the trajectory by itself (no valid action at all).
#[inline]
pub fn is_dead_end(mask: &[bool]) -> bool {
    !mask.iter().any(|&v| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::SetEnv;

    struct Shown(SetEnv);

    impl Readable for Shown {
        fn readable(&self, state: &[StateValue]) -> Result<String> {
            let size = state.iter().filter(|&&v| v != 0).count();
            Ok(format!("{size} of {}", self.0.spec().state_width))
        }
    }

    #[test]
    fn readable_state_falls_back_to_the_integer_row() {
        let env = SetEnv::new(vec![0.5, 1.0, 2.0]);
        let s = env.step_one(&env.initial_row(), 1).unwrap().0;
        assert!(env.as_readable().is_none());
        assert_eq!(readable_state(&env, &s).unwrap(), integer_row(&s));
        assert_eq!(integer_row(&[3, 0, -5]), "[3, 0, -5]");
        assert_eq!(integer_row(&[]), "[]");
        assert!(readable_state(&env, &[0]).is_err());
        let shown = Shown(env);
        assert_eq!(shown.readable(&s).unwrap(), "1 of 3");
    }
}
