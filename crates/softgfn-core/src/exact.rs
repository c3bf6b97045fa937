//! Exact answers for enumerable environments: the state graph, the target distribution `R/Z`,
//! the flow recursion for a fixed backward policy, and the exact terminal distribution of any
//! forward policy. Everything is computed by dynamic programming in topological order.
//!
//! For a fixed backward policy `P_B`, the state flow is defined backwards from the rewards:
//!
//! ```text
//! F(s)  = R(s) 1[s terminal] + sum_{s -> s'} F(s') P_B(s | s')
//! P_F(s' | s)   = F(s') P_B(s | s') / F(s),      P_F(exit | s) = R(s) / F(s)
//! F(s0) = Z = sum_x R(x)
//! ```
//!
//! and the forward policy so defined samples `x` with probability `R(x) / Z` (tested, not assumed).
//! In the soft-RL view `log F(s) = V*(s)`, the optimal soft value.

use crate::backward::BackwardPolicy;
use crate::env::{Environment, StateValue, is_terminal_mask};
use crate::error::{CoreError, Result};
use crate::math::{log_add_exp, logsumexp};

/// Default limit on the number of states an exact computation enumerates.
pub const DEFAULT_MAX_STATES: u64 = 5_000_000;

const CHUNK: usize = 4096;

/// A vector of `len` copies of `value`, or an error instead of an abort when memory is short.
fn try_vec<T: Clone>(len: usize, value: T, env: &str, states: u64, limit: u64) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| CoreError::TooManyStates {
            env: env.to_string(),
            states: format!("{states} (not enough memory for {len} values)"),
            limit,
        })?;
    v.resize(len, value);
    Ok(v)
}

/// The enumerated DAG of an environment, in index order, with children in CSR form.
#[derive(Clone, Debug)]
pub struct StateGraph {
    /// Environment name.
    pub env_name: String,
    /// State width.
    pub state_width: usize,
    /// Number of forward actions (exit included).
    pub num_actions: usize,
    /// Number of backward actions.
    pub num_backward_actions: usize,
    /// Exit action, if any.
    pub exit_action: Option<u32>,
    /// Every state row, row `i` has index `i`.
    pub states: Vec<StateValue>,
    /// Forward masks of every state.
    pub forward_masks: Vec<bool>,
    /// Backward masks of every state.
    pub backward_masks: Vec<bool>,
    /// CSR offsets of the children of each state (length `n + 1`).
    pub child_offsets: Vec<usize>,
    /// Child index of each edge.
    pub child_index: Vec<u32>,
    /// Forward action of each edge.
    pub child_action: Vec<u32>,
    /// Backward action (at the child) that undoes each edge.
    pub child_backward_action: Vec<u32>,
    /// Whether each state is terminal (an object `x`).
    pub terminal: Vec<bool>,
    /// Log-reward of terminal states (`-inf` for the others).
    pub log_reward: Vec<f64>,
    /// States in topological order (parents before children), starting at `s0`.
    pub topo_order: Vec<u32>,
    /// Index of `s0`.
    pub initial: u32,
    /// Number of terminal states.
    pub num_terminal: usize,
    /// Length (in forward actions, exit included) of the longest complete trajectory.
    pub longest_trajectory: usize,
}

impl StateGraph {
    /// Enumerates `env` (which must be [`Environment::as_enumerable`]) with at most `max_states`.
    pub fn build(env: &dyn Environment, max_states: u64) -> Result<Self> {
        let spec = env.spec().clone();
        let name = spec.name.clone();
        let en = env.as_enumerable().ok_or_else(|| CoreError::Unsupported {
            env: name.clone(),
            capability: "enumeration".into(),
        })?;
        let n64 = en.num_states();
        if n64 > max_states || n64 >= u64::from(u32::MAX) {
            return Err(CoreError::TooManyStates {
                env: name,
                states: n64.to_string(),
                limit: max_states.min(u64::from(u32::MAX) - 1),
            });
        }
        let n = n64 as usize;
        let (w, na, nb) = (
            spec.state_width,
            spec.num_actions,
            spec.num_backward_actions,
        );
        let mut states = try_vec(n * w, 0, &name, n64, max_states)?;
        let mut forward_masks = try_vec(n * na, false, &name, n64, max_states)?;
        let mut backward_masks = try_vec(n * nb, false, &name, n64, max_states)?;
        let mut idx_buf: Vec<u64> = Vec::with_capacity(CHUNK);
        let mut back_idx = vec![0u64; CHUNK];
        for start in (0..n).step_by(CHUNK) {
            let end = (start + CHUNK).min(n);
            idx_buf.clear();
            idx_buf.extend(start as u64..end as u64);
            let rows = &mut states[start * w..end * w];
            en.states_from_index(&idx_buf, rows)?;
            en.state_index(rows, &mut back_idx[..end - start])?;
            for (k, &bi) in back_idx[..end - start].iter().enumerate() {
                if bi != (start + k) as u64 {
                    return Err(CoreError::Structure {
                        env: name,
                        property: "state index bijection".into(),
                        details: format!(
                            "states_from_index({}) = {:?} but state_index of it is {bi}",
                            start + k,
                            &rows[k * w..(k + 1) * w]
                        ),
                    });
                }
            }
            env.forward_masks(rows, &mut forward_masks[start * na..end * na])?;
            env.backward_masks(rows, &mut backward_masks[start * nb..end * nb])?;
        }

        // Children in CSR form.
        let mut child_offsets = Vec::with_capacity(n + 1);
        child_offsets.push(0usize);
        let mut child_index = Vec::new();
        let mut child_action = Vec::new();
        let mut child_backward_action = Vec::new();
        let mut src_rows: Vec<StateValue> = Vec::new();
        let mut acts: Vec<u32> = Vec::new();
        let mut next: Vec<StateValue> = Vec::new();
        let mut bacts: Vec<u32> = Vec::new();
        let mut next_idx: Vec<u64> = Vec::new();
        let mut counts: Vec<usize> = Vec::with_capacity(CHUNK);
        for start in (0..n).step_by(CHUNK) {
            let end = (start + CHUNK).min(n);
            src_rows.clear();
            acts.clear();
            counts.clear();
            for s in start..end {
                let mask = &forward_masks[s * na..(s + 1) * na];
                let mut c = 0;
                for (a, &valid) in mask.iter().enumerate() {
                    if valid && !spec.is_exit(a as u32) {
                        src_rows.extend_from_slice(&states[s * w..(s + 1) * w]);
                        acts.push(a as u32);
                        c += 1;
                    }
                }
                counts.push(c);
            }
            next.resize(src_rows.len(), 0);
            bacts.resize(acts.len(), 0);
            next_idx.resize(acts.len(), 0);
            if !acts.is_empty() {
                env.step(&src_rows, &acts, &mut next, &mut bacts)?;
                en.state_index(&next, &mut next_idx)?;
            }
            let mut e = 0;
            for &c in &counts {
                for _ in 0..c {
                    if next_idx[e] >= n64 {
                        return Err(CoreError::Structure {
                            env: name,
                            property: "state index range".into(),
                            details: format!(
                                "state {:?} has index {} outside 0..{n}",
                                &next[e * w..(e + 1) * w],
                                next_idx[e]
                            ),
                        });
                    }
                    child_index.push(next_idx[e] as u32);
                    child_action.push(acts[e]);
                    child_backward_action.push(bacts[e]);
                    e += 1;
                }
                child_offsets.push(child_index.len());
            }
        }

        let terminal: Vec<bool> = (0..n)
            .map(|s| is_terminal_mask(&spec, &forward_masks[s * na..(s + 1) * na]))
            .collect();
        let num_terminal = terminal.iter().filter(|&&t| t).count();

        // Rewards of terminal states, batched.
        let mut log_reward = vec![f64::NEG_INFINITY; n];
        let term_idx: Vec<usize> = (0..n).filter(|&s| terminal[s]).collect();
        let mut rows_buf: Vec<StateValue> = Vec::with_capacity(CHUNK * w);
        let mut lr_buf = vec![0.0; CHUNK];
        for chunk in term_idx.chunks(CHUNK) {
            rows_buf.clear();
            for &s in chunk {
                rows_buf.extend_from_slice(&states[s * w..(s + 1) * w]);
            }
            env.log_reward(&rows_buf, &mut lr_buf[..chunk.len()])?;
            for (k, &s) in chunk.iter().enumerate() {
                let v = lr_buf[k];
                if !v.is_finite() {
                    return Err(CoreError::NonFiniteReward {
                        env: name,
                        state: states[s * w..(s + 1) * w].to_vec(),
                        value: v,
                    });
                }
                log_reward[s] = v;
            }
        }

        // Topological order from s0 (Kahn).
        let mut s0 = vec![0; w];
        env.initial_state(&mut s0);
        let mut i0 = [0u64];
        en.state_index(&s0, &mut i0)?;
        let initial = i0[0] as u32;
        let mut indeg = vec![0u32; n];
        for &c in &child_index {
            indeg[c as usize] += 1;
        }
        if indeg[initial as usize] != 0 {
            return Err(CoreError::Structure {
                env: name,
                property: "unique source".into(),
                details: format!("the initial state {s0:?} has a parent"),
            });
        }
        let mut topo_order = Vec::with_capacity(n);
        topo_order.push(initial);
        let mut head = 0;
        while head < topo_order.len() {
            let s = topo_order[head] as usize;
            head += 1;
            for &c in &child_index[child_offsets[s]..child_offsets[s + 1]] {
                let c = c as usize;
                indeg[c] -= 1;
                if indeg[c] == 0 {
                    topo_order.push(c as u32);
                }
            }
        }
        if topo_order.len() != n {
            let mut seen = vec![false; n];
            for &s in &topo_order {
                seen[s as usize] = true;
            }
            let bad = (0..n).find(|&s| !seen[s]);
            return Err(CoreError::Structure {
                env: name,
                property: "acyclicity and reachability from s0".into(),
                details: format!(
                    "{} of {n} states are unreachable from s0 or lie on a cycle, e.g. {:?}",
                    n - topo_order.len(),
                    bad.map(|s| states[s * w..(s + 1) * w].to_vec())
                ),
            });
        }

        // Longest trajectory (in actions, exit counted) by DP in reverse order.
        let mut longest = vec![0usize; n];
        for &s in topo_order.iter().rev() {
            let s = s as usize;
            let mut best = 0;
            if terminal[s]
                && spec.exit_action.is_some()
                && forward_masks[s * na..(s + 1) * na][spec.exit_action.unwrap_or(0) as usize]
            {
                best = 1;
            }
            for &c in &child_index[child_offsets[s]..child_offsets[s + 1]] {
                best = best.max(1 + longest[c as usize]);
            }
            longest[s] = best;
        }

        Ok(Self {
            env_name: spec.name.clone(),
            state_width: w,
            num_actions: na,
            num_backward_actions: nb,
            exit_action: spec.exit_action,
            states,
            forward_masks,
            backward_masks,
            child_offsets,
            child_index,
            child_action,
            child_backward_action,
            terminal,
            log_reward,
            topo_order,
            initial,
            num_terminal,
            longest_trajectory: longest[initial as usize],
        })
    }

    /// Number of states.
    pub fn num_states(&self) -> usize {
        self.terminal.len()
    }

    /// State row of index `s`.
    pub fn state(&self, s: usize) -> &[StateValue] {
        &self.states[s * self.state_width..(s + 1) * self.state_width]
    }

    /// Forward mask of index `s`.
    pub fn forward_mask(&self, s: usize) -> &[bool] {
        &self.forward_masks[s * self.num_actions..(s + 1) * self.num_actions]
    }

    /// Backward mask of index `s`.
    pub fn backward_mask(&self, s: usize) -> &[bool] {
        &self.backward_masks[s * self.num_backward_actions..(s + 1) * self.num_backward_actions]
    }

    /// Whether exit is a valid action at `s`.
    pub fn can_exit(&self, s: usize) -> bool {
        self.exit_action
            .is_some_and(|e| self.forward_mask(s)[e as usize])
    }

    /// The target distribution `R(x)/Z` over all states (zero for non-terminal ones).
    pub fn target(&self) -> Target {
        let log_z = logsumexp(&self.log_reward);
        let probs = self
            .log_reward
            .iter()
            .map(|&lr| {
                if lr == f64::NEG_INFINITY {
                    0.0
                } else {
                    (lr - log_z).exp()
                }
            })
            .collect();
        Target { log_z, probs }
    }

    /// The flow recursion for a fixed backward policy (see the module docs).
    pub fn flows(&self, backward: &dyn BackwardPolicy) -> Flows {
        let n = self.num_states();
        let mut log_flow = vec![f64::NEG_INFINITY; n];
        for &s in self.topo_order.iter().rev() {
            let s = s as usize;
            let mut acc = if self.terminal[s] {
                self.log_reward[s]
            } else {
                f64::NEG_INFINITY
            };
            for e in self.child_offsets[s]..self.child_offsets[s + 1] {
                let c = self.child_index[e] as usize;
                let lpb = backward.log_prob(self.backward_mask(c), self.child_backward_action[e]);
                acc = log_add_exp(acc, log_flow[c] + lpb);
            }
            log_flow[s] = acc;
        }
        let na = self.num_actions;
        let mut log_pf = vec![f64::NEG_INFINITY; n * na];
        for s in 0..n {
            let f = log_flow[s];
            let row = &mut log_pf[s * na..(s + 1) * na];
            if self.can_exit(s) {
                row[self.exit_action.unwrap_or(0) as usize] = self.log_reward[s] - f;
            }
            for e in self.child_offsets[s]..self.child_offsets[s + 1] {
                let c = self.child_index[e] as usize;
                let lpb = backward.log_prob(self.backward_mask(c), self.child_backward_action[e]);
                row[self.child_action[e] as usize] = log_flow[c] + lpb - f;
            }
        }
        Flows {
            log_z: log_flow[self.initial as usize],
            log_flow,
            log_pf,
            num_actions: na,
        }
    }

    /// The exact terminal distribution of a forward policy given as log-probabilities of every
    /// action in every state (`num_states * num_actions`, in index order). Returns the
    /// probability of ending at each state. Probability put on invalid actions is ignored.
    pub fn terminal_distribution(&self, log_pf: &[f64]) -> Result<Vec<f64>> {
        let n = self.num_states();
        let na = self.num_actions;
        if log_pf.len() != n * na {
            return Err(CoreError::BufferLength {
                what: format!(
                    "policy log-probabilities over the states of {}",
                    self.env_name
                ),
                expected: n * na,
                found: log_pf.len(),
            });
        }
        let mut mass = vec![0.0f64; n];
        let mut out = vec![0.0f64; n];
        mass[self.initial as usize] = 1.0;
        for &s in &self.topo_order {
            let s = s as usize;
            let m = mass[s];
            if m == 0.0 {
                continue;
            }
            let row = &log_pf[s * na..(s + 1) * na];
            if self.child_offsets[s] == self.child_offsets[s + 1] && !self.can_exit(s) {
                // Implicit end: the trajectory stops here with probability one.
                out[s] += m;
                continue;
            }
            if self.can_exit(s) {
                out[s] += m * row[self.exit_action.unwrap_or(0) as usize].exp();
            }
            for e in self.child_offsets[s]..self.child_offsets[s + 1] {
                let c = self.child_index[e] as usize;
                mass[c] += m * row[self.child_action[e] as usize].exp();
            }
        }
        Ok(out)
    }
    /// `log P_B(b | s)` of every backward action of every state under a fixed backward policy
    /// (`num_states * num_backward_actions`, `-inf` where invalid): the table that
    /// [`StateGraph::log_z_bounds`] takes.
    pub fn log_pb_table(&self, backward: &dyn BackwardPolicy) -> Vec<f64> {
        let nb = self.num_backward_actions;
        let mut out = vec![f64::NEG_INFINITY; self.num_states() * nb];
        for s in 0..self.num_states() {
            let mask = self.backward_mask(s);
            for (b, o) in out[s * nb..(s + 1) * nb].iter_mut().enumerate() {
                if mask[b] {
                    *o = backward.log_prob(mask, b as u32);
                }
            }
        }
        out
    }

    /// The exact evidence bounds of `log Z` for a forward policy `log_pf` (as in
    /// [`StateGraph::terminal_distribution`]) and a backward policy `log_pb` (as
    /// [`StateGraph::log_pb_table`] gives it), by dynamic programming over the graph.
    ///
    /// With `log w(tau) = log R(x) + sum log P_B - sum log P_F` over a complete trajectory `tau`
    /// ending at `x` (the exit included in `P_F`):
    ///
    /// ```text
    /// ELBO = E_{tau ~ P_F}[log w(tau)]                     = log Z - KL(P_F || P*) <= log Z
    /// EUBO = E_{tau ~ P*}[log w(tau)],  P*(tau) = R(x)/Z prod P_B
    ///                                                      = log Z + KL(P* || P_F) >= log Z
    /// ```
    ///
    /// Both are sums of per-edge terms weighted by the probability that the trajectory crosses
    /// the edge: forward visit probabilities for the ELBO, backward ones (starting at `x` with
    /// `R(x)/Z`) for the EUBO. The ELBO is `-inf` when `P_F` reaches an edge that `P_B` never
    /// takes back; the EUBO is `+inf` when `P*` crosses an edge that `P_F` never takes.
    ///
    /// # Errors
    /// A table of the wrong length.
    pub fn log_z_bounds(&self, log_pf: &[f64], log_pb: &[f64]) -> Result<LogZBounds> {
        let n = self.num_states();
        let (na, nb) = (self.num_actions, self.num_backward_actions);
        let check = |what: &str, expected: usize, found: usize| {
            if expected == found {
                Ok(())
            } else {
                Err(CoreError::BufferLength {
                    what: format!("{what} over the states of {}", self.env_name),
                    expected,
                    found,
                })
            }
        };
        check("forward log-probabilities", n * na, log_pf.len())?;
        check("backward log-probabilities", n * nb, log_pb.len())?;
        // A term `p * value` with the convention 0 * anything = 0.
        let term = |p: f64, value: f64| if p > 0.0 { p * value } else { 0.0 };
        let ends_implicitly =
            |s: usize| self.child_offsets[s] == self.child_offsets[s + 1] && !self.can_exit(s);

        // ELBO: forward visit probabilities.
        let mut mass = vec![0.0f64; n];
        mass[self.initial as usize] = 1.0;
        let mut elbo = 0.0;
        for &s in &self.topo_order {
            let s = s as usize;
            let m = mass[s];
            if m == 0.0 {
                continue;
            }
            let row = &log_pf[s * na..(s + 1) * na];
            if ends_implicitly(s) {
                elbo += term(m, self.log_reward[s]);
                continue;
            }
            if let Some(e) = self.exit_action.filter(|_| self.can_exit(s)) {
                let lp = row[e as usize];
                elbo += term(m * lp.exp(), self.log_reward[s] - lp);
            }
            for e in self.child_offsets[s]..self.child_offsets[s + 1] {
                let c = self.child_index[e] as usize;
                let lp = row[self.child_action[e] as usize];
                let p = m * lp.exp();
                let lpb = log_pb[c * nb + self.child_backward_action[e] as usize];
                elbo += term(p, lpb - lp);
                mass[c] += p;
            }
        }

        // EUBO: visit probabilities of P* (x ~ R/Z, then P_B back to s0). In reverse
        // topological order every child is final before its parents pull from it.
        let target = self.target();
        let mut back = target.probs.clone();
        let mut eubo = 0.0;
        for &s in self.topo_order.iter().rev() {
            let s = s as usize;
            let row = &log_pf[s * na..(s + 1) * na];
            let q_end = target.probs[s];
            if q_end > 0.0 {
                // Trajectories whose object is s: the exit (none when s ends implicitly).
                let lp = if ends_implicitly(s) {
                    0.0
                } else {
                    row[self.exit_action.unwrap_or(0) as usize]
                };
                eubo += q_end * (self.log_reward[s] - lp);
            }
            for e in self.child_offsets[s]..self.child_offsets[s + 1] {
                let c = self.child_index[e] as usize;
                let lpb = log_pb[c * nb + self.child_backward_action[e] as usize];
                let p = back[c] * lpb.exp();
                if p > 0.0 {
                    eubo += p * (lpb - row[self.child_action[e] as usize]);
                    back[s] += p;
                }
            }
        }
        Ok(LogZBounds {
            log_z: target.log_z,
            elbo,
            eubo,
        })
    }
}

/// Exact `log Z` bounds of a policy ([`StateGraph::log_z_bounds`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogZBounds {
    /// The true `log Z`.
    pub log_z: f64,
    /// `E_{P_F}[log w] <= log Z`.
    pub elbo: f64,
    /// `E_{P*}[log w] >= log Z`.
    pub eubo: f64,
}

/// The target distribution of an enumerable environment.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// `log Z = log sum_x R(x)`.
    pub log_z: f64,
    /// `R(x)/Z` for every state (zero for non-terminal states).
    pub probs: Vec<f64>,
}

/// Result of the flow recursion for a fixed backward policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Flows {
    /// `log F(s0) = log Z`.
    pub log_z: f64,
    /// `log F(s)` of every state.
    pub log_flow: Vec<f64>,
    /// `log P_F(a | s)` of every action of every state (`-inf` where invalid).
    pub log_pf: Vec<f64>,
    /// Row width of `log_pf`.
    pub num_actions: usize,
}

impl Flows {
    /// `log P_F(. | s)` of state index `s`.
    pub fn log_pf_of(&self, s: usize) -> &[f64] {
        &self.log_pf[s * self.num_actions..(s + 1) * self.num_actions]
    }
}
