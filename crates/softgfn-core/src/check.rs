//! `check_env`: the conformance checker every environment must pass.
//!
//! It visits states (all of them when the environment is enumerable and small enough, plus the
//! states of random rollouts) and verifies, naming the first violated property:
//!
//! | property | meaning |
//! |---|---|
//! | `buffer shapes` | the spec is consistent and calls accept correctly sized buffers |
//! | `initial state has no parents` | the backward mask of `s0` is all false |
//! | `every non-initial state has a parent` | any other state has a valid backward action |
//! | `step rejects the exit action` | exit is not a transition: `step` with it is an error |
//! | `mask consistency` | a valid forward action's backward action is valid at the child, and vice versa |
//! | `backward_step inverts step` | `backward_step(step(s, a)) == (s, a)` |
//! | `step inverts backward_step` | `step(backward_step(s', b)) == (s', b)`; with a declared [`StateEquivalence`](crate::StateEquivalence): `step(backward_step(s', b)) = (s'', b'')` with `s''` equivalent to `s'`, `b''` valid at `s''` and `backward_step(s'', b'') == backward_step(s', b)` |
//! | `acyclicity` | no step returns to its own state; enumerated graphs have a topological order |
//! | `exit semantics` | the exit action is never produced by `backward_step`, terminal states have rewards |
//! | `length bound` | trajectories end within `max_trajectory_length` actions |
//! | `finite rewards` | terminal log-rewards are finite (rewards positive, no NaN/inf) |
//! | `finite features` | `encode` gives finite values |
//! | `graph layout` | with a [`GraphLayout`](crate::GraphLayout): it fits the spec, every state's graph fields are well formed (integer codes in range, nodes and stems listed first, edges complete and between present nodes), and every valid stem action has its stem |
//! | `state index bijection` | `state_index` and `states_from_index` are inverse (enumerable only) |

use crate::env::{Environment, EnvironmentExt, StateValue, is_dead_end, is_terminal_mask};
use crate::error::{CoreError, Result};
use crate::exact::StateGraph;
use crate::rng::{Rng, below};

/// Every property `check_env` verifies (the names used in its errors).
pub const PROPERTIES: &[&str] = &[
    "buffer shapes",
    "initial state has no parents",
    "every non-initial state has a parent",
    "step rejects the exit action",
    "mask consistency",
    "backward_step inverts step",
    "step inverts backward_step",
    "acyclicity",
    "exit semantics",
    "length bound",
    "finite rewards",
    "finite features",
    "graph layout",
    "state index bijection",
];

/// Options of [`check_env_with`].
#[derive(Clone, Debug, PartialEq)]
pub struct CheckOptions {
    /// Random rollouts from `s0` with uniformly random valid actions.
    pub rollouts: usize,
    /// Seed of the rollouts.
    pub seed: u64,
    /// Enumerate and check every state when the environment has at most this many.
    pub max_enumerated_states: u64,
    /// At most this many distinct rollout states are checked in depth.
    pub max_rollout_states: usize,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            rollouts: 64,
            seed: 0,
            max_enumerated_states: 200_000,
            max_rollout_states: 20_000,
        }
    }
}

/// What a passing check covered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckReport {
    /// Environment name.
    pub env: String,
    /// Distinct states checked in depth.
    pub states_checked: usize,
    /// Forward and backward transitions checked.
    pub transitions_checked: usize,
    /// Random rollouts run.
    pub rollouts: usize,
    /// Whether every state was enumerated and checked.
    pub exhaustive: bool,
    /// Properties verified.
    pub properties: Vec<&'static str>,
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "check_env passed for {}: {} states{}, {} transitions, {} rollouts; {} properties verified",
            self.env,
            self.states_checked,
            if self.exhaustive { " (all)" } else { "" },
            self.transitions_checked,
            self.rollouts,
            self.properties.len()
        )
    }
}

/// Runs the conformance checks with default options.
pub fn check_env(env: &dyn Environment) -> Result<CheckReport> {
    check_env_with(env, &CheckOptions::default())
}

struct Checker<'a> {
    env: &'a dyn Environment,
    name: String,
    transitions: usize,
}

impl Checker<'_> {
    fn fail(&self, property: &'static str, details: String) -> CoreError {
        CoreError::CheckFailed {
            env: self.name.clone(),
            property,
            details,
        }
    }

    /// Wraps an environment error as a violation of `property`.
    fn call<T>(&self, property: &'static str, what: &str, r: Result<T>) -> Result<T> {
        r.map_err(|e| self.fail(property, format!("{what} failed: {e}")))
    }

    fn check_state(&mut self, s: &[StateValue], is_initial: bool) -> Result<()> {
        let spec = self.env.spec();
        let fm = self.call(
            "buffer shapes",
            &format!("forward_masks({s:?})"),
            self.env.forward_mask_of(s),
        )?;
        let bm = self.call(
            "buffer shapes",
            &format!("backward_masks({s:?})"),
            self.env.backward_mask_of(s),
        )?;
        let mut feats = vec![0f32; spec.feature_dim];
        self.call(
            "buffer shapes",
            &format!("encode({s:?})"),
            self.env.encode(s, &mut feats),
        )?;
        if let Some(v) = feats.iter().find(|v| !v.is_finite()) {
            return Err(self.fail("finite features", format!("encode({s:?}) contains {v}")));
        }
        if let Some(layout) = self.env.graph_layout() {
            check_graph(&layout, &feats, &fm)
                .map_err(|m| self.fail("graph layout", format!("state {s:?}: {m}")))?;
        }
        if is_initial && bm.iter().any(|&v| v) {
            return Err(self.fail(
                "initial state has no parents",
                format!("backward mask of s0 {s:?} is {bm:?}"),
            ));
        }
        if !is_initial && !bm.iter().any(|&v| v) {
            return Err(self.fail(
                "every non-initial state has a parent",
                format!("state {s:?} is not s0 but has no valid backward action"),
            ));
        }
        if is_terminal_mask(spec, &fm) {
            let lr = self.call(
                "finite rewards",
                &format!("log_reward({s:?})"),
                self.env.log_reward_of(s),
            )?;
            if !lr.is_finite() {
                return Err(self.fail(
                    "finite rewards",
                    format!("terminal state {s:?} has log_reward {lr} (reward must be finite and positive)"),
                ));
            }
        }
        if let Some(e) = spec.exit_action.filter(|&e| fm[e as usize]) {
            let mut next = vec![0; spec.state_width];
            let mut b = [0u32];
            if self.env.step(s, &[e], &mut next, &mut b).is_ok() {
                return Err(self.fail(
                    "step rejects the exit action",
                    format!("step({s:?}, exit action {e}) succeeded; the exit ends a trajectory and has no next state"),
                ));
            }
        }
        // Forward transitions.
        for (a, &valid) in fm.iter().enumerate() {
            let a = a as u32;
            if !valid || spec.is_exit(a) {
                continue;
            }
            self.transitions += 1;
            let (next, b) = self.call(
                "mask consistency",
                &format!("step({s:?}, {a}) with a valid action"),
                self.env.step_one(s, a),
            )?;
            if next == s {
                return Err(self.fail(
                    "acyclicity",
                    format!("step({s:?}, {a}) returns the same state"),
                ));
            }
            if b as usize >= spec.num_backward_actions {
                return Err(self.fail(
                    "mask consistency",
                    format!(
                        "step({s:?}, {a}) returned backward action {b} outside 0..{}",
                        spec.num_backward_actions
                    ),
                ));
            }
            let nbm = self.call(
                "buffer shapes",
                &format!("backward_masks({next:?})"),
                self.env.backward_mask_of(&next),
            )?;
            if !nbm[b as usize] {
                return Err(self.fail(
                    "mask consistency",
                    format!("step({s:?}, {a}) = {next:?} with backward action {b}, which the backward mask of {next:?} marks invalid"),
                ));
            }
            let (prev, a2) = self.call(
                "backward_step inverts step",
                &format!("backward_step({next:?}, {b})"),
                self.env.backward_step_one(&next, b),
            )?;
            if prev != s || a2 != a {
                return Err(self.fail(
                    "backward_step inverts step",
                    format!("step({s:?}, {a}) = ({next:?}, b={b}) but backward_step({next:?}, {b}) = ({prev:?}, a={a2})"),
                ));
            }
        }
        // Backward transitions.
        for (b, &valid) in bm.iter().enumerate() {
            let b = b as u32;
            if !valid {
                continue;
            }
            self.transitions += 1;
            let (prev, a) = self.call(
                "mask consistency",
                &format!("backward_step({s:?}, {b}) with a valid backward action"),
                self.env.backward_step_one(s, b),
            )?;
            if spec.is_exit(a) || a as usize >= spec.num_actions {
                return Err(self.fail(
                    "exit semantics",
                    format!("backward_step({s:?}, {b}) returned forward action {a}, which is the exit or out of range"),
                ));
            }
            let pfm = self.call(
                "buffer shapes",
                &format!("forward_masks({prev:?})"),
                self.env.forward_mask_of(&prev),
            )?;
            if !pfm[a as usize] {
                return Err(self.fail(
                    "mask consistency",
                    format!("backward_step({s:?}, {b}) = ({prev:?}, a={a}) but action {a} is invalid in {prev:?}"),
                ));
            }
            let (next, b2) = self.call(
                "step inverts backward_step",
                &format!("step({prev:?}, {a})"),
                self.env.step_one(&prev, a),
            )?;
            if next != s || b2 != b {
                self.check_equivalent(s, b, &prev, a, &next, b2)?;
            }
        }
        Ok(())
    }
}

impl Checker<'_> {
    /// `step(prev, a) = (next, b2)` differs from `(s, b)`: passes only when the environment
    /// declares `next` and `s` equivalent and `backward_step(next, b2)` leads back to `(prev, a)`.
    fn check_equivalent(
        &mut self,
        s: &[StateValue],
        b: u32,
        prev: &[StateValue],
        a: u32,
        next: &[StateValue],
        b2: u32,
    ) -> Result<()> {
        let property = "step inverts backward_step";
        let mismatch = format!(
            "backward_step({s:?}, {b}) = ({prev:?}, a={a}) but step({prev:?}, {a}) = ({next:?}, b={b2})"
        );
        let Some(eq) = self.env.as_state_equivalence() else {
            return Err(self.fail(property, mismatch));
        };
        let key = |st: &[StateValue]| {
            self.call(
                property,
                &format!("canonical_key({st:?})"),
                eq.canonical_key(st),
            )
        };
        let (k_next, k_s) = (key(next)?, key(s)?);
        if k_next != k_s {
            return Err(self.fail(
                property,
                format!("{mismatch}, and the two are not equivalent: canonical keys {k_next:?} and {k_s:?}"),
            ));
        }
        let nbm = self.call(
            "buffer shapes",
            &format!("backward_masks({next:?})"),
            self.env.backward_mask_of(next),
        )?;
        if nbm.get(b2 as usize) != Some(&true) {
            return Err(self.fail(
                "mask consistency",
                format!("{mismatch}, and b={b2} is not a valid backward action of {next:?}"),
            ));
        }
        let (back, a3) = self.call(
            property,
            &format!("backward_step({next:?}, {b2})"),
            self.env.backward_step_one(next, b2),
        )?;
        if back != prev || a3 != a {
            return Err(self.fail(
                property,
                format!("{mismatch} (equivalent), but backward_step({next:?}, {b2}) = ({back:?}, a={a3})"),
            ));
        }
        Ok(())
    }
}

/// Runs the conformance checks; the error names the first violated property.
pub fn check_env_with(env: &dyn Environment, opts: &CheckOptions) -> Result<CheckReport> {
    let spec = env.spec().clone();
    let mut ck = Checker {
        env,
        name: spec.name.clone(),
        transitions: 0,
    };
    if spec.state_width == 0 || spec.num_actions == 0 || spec.feature_dim == 0 {
        return Err(ck.fail("buffer shapes", format!("spec has a zero size: {spec:?}")));
    }
    if let Some(e) = spec.exit_action.filter(|&e| e as usize >= spec.num_actions) {
        return Err(ck.fail(
            "buffer shapes",
            format!("exit action {e} is outside 0..{}", spec.num_actions),
        ));
    }
    if let Some(layout) = env.graph_layout() {
        layout
            .validate(&spec)
            .map_err(|e| ck.fail("graph layout", e.to_string()))?;
    }
    let s0 = env.initial_row();
    let mut checked = std::collections::HashSet::new();
    ck.check_state(&s0, true)?;
    checked.insert(s0.clone());

    // Exhaustive pass when small enough.
    let mut exhaustive = false;
    if let Some(en) = env.as_enumerable() {
        let n = en.num_states();
        if n <= opts.max_enumerated_states {
            for i in 0..n {
                let mut row = vec![0; spec.state_width];
                ck.call(
                    "state index bijection",
                    &format!("states_from_index([{i}])"),
                    en.states_from_index(&[i], &mut row),
                )?;
                let mut back = [0u64];
                ck.call(
                    "state index bijection",
                    &format!("state_index({row:?})"),
                    en.state_index(&row, &mut back),
                )?;
                if back[0] != i {
                    return Err(ck.fail(
                        "state index bijection",
                        format!(
                            "states_from_index({i}) = {row:?} but state_index of it is {}",
                            back[0]
                        ),
                    ));
                }
                if row != s0 {
                    ck.check_state(&row, false)?;
                }
                checked.insert(row);
            }
            let graph =
                StateGraph::build(env, opts.max_enumerated_states).map_err(|e| match e {
                    CoreError::Structure {
                        property, details, ..
                    } => ck.fail(
                        if property.contains("acycl") {
                            "acyclicity"
                        } else {
                            "state index bijection"
                        },
                        format!("{property}: {details}"),
                    ),
                    CoreError::NonFiniteReward { state, value, .. } => ck.fail(
                        "finite rewards",
                        format!("terminal state {state:?} has log_reward {value}"),
                    ),
                    other => other,
                })?;
            if graph.longest_trajectory > spec.max_trajectory_length {
                return Err(ck.fail(
                    "length bound",
                    format!(
                        "the longest complete trajectory has {} actions but max_trajectory_length is {}",
                        graph.longest_trajectory, spec.max_trajectory_length
                    ),
                ));
            }
            exhaustive = true;
        }
    }

    // Random rollouts.
    let mut rng: Rng = crate::rng::stream(opts.seed, crate::rng::Stream::Eval);
    for r in 0..opts.rollouts {
        let mut s = s0.clone();
        let mut length = 0usize;
        loop {
            let fm = env.forward_mask_of(&s)?;
            if is_dead_end(&fm) {
                break;
            }
            let valid: Vec<u32> = (0..fm.len() as u32).filter(|&a| fm[a as usize]).collect();
            let a = valid[below(&mut rng, valid.len() as u64) as usize];
            length += 1;
            if length > spec.max_trajectory_length {
                return Err(ck.fail(
                    "length bound",
                    format!(
                        "rollout {r} exceeded max_trajectory_length {} at state {s:?}",
                        spec.max_trajectory_length
                    ),
                ));
            }
            if spec.is_exit(a) {
                break;
            }
            let (next, _) = ck.call(
                "mask consistency",
                &format!("step({s:?}, {a}) with a valid action"),
                env.step_one(&s, a),
            )?;
            s = next;
            if !exhaustive && checked.len() < opts.max_rollout_states && !checked.contains(&s) {
                ck.check_state(&s, false)?;
                checked.insert(s.clone());
            }
        }
    }

    Ok(CheckReport {
        env: spec.name,
        states_checked: checked.len(),
        transitions_checked: ck.transitions,
        rollouts: opts.rollouts,
        exhaustive,
        properties: PROPERTIES.to_vec(),
    })
}

/// Checks one state's graph fields against its layout and forward mask (see
/// [`GraphLayout`](crate::GraphLayout)); the error says what is wrong.
fn check_graph(
    layout: &crate::GraphLayout,
    features: &[f32],
    forward_mask: &[bool],
) -> std::result::Result<(), String> {
    let g = &features[layout.offset..layout.offset + layout.graph_features()];
    let code = |what: &str, v: f32, limit: usize| -> std::result::Result<Option<usize>, String> {
        if v == v.round() && v >= 0.0 && v <= limit as f32 {
            Ok((v > 0.0).then(|| v as usize - 1))
        } else {
            Err(format!("{what} holds {v}, not a code in 0..={limit}"))
        }
    };
    let (nodes, rest) = g.split_at(layout.max_nodes);
    let (edges, stems) = rest.split_at(4 * layout.max_edges);
    let mut n = 0;
    for (i, &v) in nodes.iter().enumerate() {
        if code(&format!("node {i}"), v, layout.node_types)?.is_some() {
            if n != i {
                return Err(format!("node {i} is present after an absent node"));
            }
            n += 1;
        }
    }
    if n == 0 {
        return Err("the graph has no node".into());
    }
    for (e, f) in edges.chunks_exact(4).enumerate() {
        let what = format!("edge {e}");
        let fields = [
            code(&what, f[0], n)?,
            code(&what, f[1], n)?,
            code(&what, f[2], layout.edge_types)?,
            code(&what, f[3], layout.edge_types)?,
        ];
        let present = fields.iter().filter(|v| v.is_some()).count();
        if present != 0 && present != 4 {
            return Err(format!("edge {e} has {present} of its 4 fields"));
        }
    }
    let mut k = 0;
    for (i, f) in stems.chunks_exact(2).enumerate() {
        let what = format!("stem {i}");
        match (code(&what, f[0], n)?, code(&what, f[1], layout.stem_types)?) {
            (Some(_), Some(_)) if k == i => k += 1,
            (Some(_), Some(_)) => return Err(format!("stem {i} is present after an absent stem")),
            (None, None) => {}
            _ => return Err(format!("stem {i} has one of its 2 fields")),
        }
    }
    let first_absent = layout.graph_actions + k * layout.stem_actions;
    if let Some(a) = (first_absent..forward_mask.len()).find(|&a| forward_mask[a]) {
        return Err(format!(
            "action {a} (stem {}) is valid but the graph has {k} stems",
            (a - layout.graph_actions) / layout.stem_actions
        ));
    }
    Ok(())
}
