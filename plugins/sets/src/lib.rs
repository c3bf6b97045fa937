//! # softgfn-sets
//!
//! An example third-party environment plugin for softgfn, written the way an outside user would:
//! it depends on `softgfn-core`, `softgfn-plugin`, `serde` and `serde_json` only.
//!
//! States are subsets `S` of `{0..n-1}` with `|S| <= max_size`, built from the empty set by
//! adding one element at a time (forward action `i < n` adds `i`); the exit (action `n`) is
//! allowed at every non-empty set, so every non-empty set is a terminal object. A set of size
//! `m` is reached by `m!` orders: the state graph is a DAG, not a tree. Backward action `i`
//! removes `i`. The log-reward is additive,
//!
//! ```text
//! log R(S) = sum_{i in S} w_i,
//! ```
//!
//! so the partition function is known in closed form: `Z = sum_{k=1}^{max_size} e_k(e^{w_0},
//! ..., e^{w_{n-1}})` with `e_k` the elementary symmetric polynomials ([`Sets::log_partition`]).
//!
//! A state row has `n` values in `{0, 1}` (membership); features are the same values as `f32`.
//! States are enumerable with a bijective index: sets are ordered by size, and sets of one size
//! by the combinatorial number system (colex rank `sum_t C(c_t, t+1)` of the sorted elements).
//!
//! Config keys (`env.*`): `n`, `max_size`, and either `weights` (n numbers) or a seeded generator
//! (`seed`, `scale`: `w_i` uniform in `[-scale, scale)`).
//!
//! Build and load it as a plugin (see README.md):
//!
//! ```sh
//! cargo build --release -p softgfn-sets --features dynamic
//! softgfn --plugin target/release/libsoftgfn_sets.so check-env --env softgfn-sets/sets
//! ```
//!
//! ```
//! use softgfn_sets::{Sets, SetsConfig};
//! let env = Sets::new(SetsConfig::default()).unwrap();
//! softgfn_core::check_env(&env).unwrap();
//! ```

use serde::{Deserialize, Serialize};
use softgfn_core::{
    CoreError, Enumerable, EnvSpec, Environment, Readable, Result, StateValue, parse_params,
};

/// Largest `n` (every index fits in `u64`: at most `2^62` states).
pub const MAX_N: usize = 62;

/// Parameters of the sets environment (the `[env]` table of a run config).
///
/// | Name | Default | Meaning | Range |
/// |---|---|---|---|
/// | `n` | 6 | number of elements | 1..=62 |
/// | `max_size` | 4 | largest set | 1..=n |
/// | `weights` | unset | `w_i` of `log R(S) = sum_{i in S} w_i`; overrides the generator | n finite numbers |
/// | `seed` | 0 | seed of the generated weights | any u64 |
/// | `scale` | 1.0 | generated weights are uniform in `[-scale, scale)` | finite, >= 0 |
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SetsConfig {
    /// Number of elements.
    pub n: usize,
    /// Largest set size.
    pub max_size: usize,
    /// Explicit weights (n values); when unset they are generated from `seed` and `scale`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weights: Option<Vec<f64>>,
    /// Seed of the generated weights.
    pub seed: u64,
    /// Half-width of the range of generated weights.
    pub scale: f64,
}

impl Default for SetsConfig {
    fn default() -> Self {
        Self {
            n: 6,
            max_size: 4,
            weights: None,
            seed: 0,
            scale: 1.0,
        }
    }
}

fn invalid(field: &str, value: impl std::fmt::Display, expected: &str) -> CoreError {
    CoreError::InvalidParameter {
        env: "sets".into(),
        field: field.into(),
        value: value.to_string(),
        expected: expected.into(),
    }
}

/// SplitMix64: a tiny, well-mixed generator (the weights must not depend on any other crate).
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl SetsConfig {
    /// Checks every field; the error names the field, the value and the allowed range.
    pub fn validate(&self) -> Result<()> {
        if self.n == 0 || self.n > MAX_N {
            return Err(invalid("n", self.n, "an integer in 1..=62"));
        }
        if self.max_size == 0 || self.max_size > self.n {
            return Err(invalid(
                "max_size",
                self.max_size,
                &format!("an integer in 1..={} (n)", self.n),
            ));
        }
        if let Some(w) = &self.weights {
            if w.len() != self.n {
                return Err(invalid(
                    "weights",
                    format!("a list of {} numbers", w.len()),
                    &format!("a list of n = {} finite numbers", self.n),
                ));
            }
            if let Some(v) = w.iter().find(|v| !v.is_finite()) {
                return Err(invalid("weights", v, "finite numbers"));
            }
        }
        if !(self.scale.is_finite() && self.scale >= 0.0) {
            return Err(invalid("scale", self.scale, "a finite number >= 0"));
        }
        Ok(())
    }

    /// The weights in force: the given ones, or `n` values uniform in `[-scale, scale)` drawn
    /// from `seed`.
    pub fn resolved_weights(&self) -> Vec<f64> {
        if let Some(w) = &self.weights {
            return w.clone();
        }
        let mut state = self.seed;
        (0..self.n)
            .map(|_| {
                let u = (splitmix64(&mut state) >> 11) as f64 / (1u64 << 53) as f64;
                self.scale * (2.0 * u - 1.0)
            })
            .collect()
    }
}

/// The sets environment.
#[derive(Clone, Debug)]
pub struct Sets {
    config: SetsConfig,
    weights: Vec<f64>,
    spec: EnvSpec,
    /// `binom[m][k] = C(m, k)` for `m <= n`, `k <= max_size`.
    binom: Vec<Vec<u64>>,
    /// `offset[k]`: number of sets smaller than `k` (`offset[max_size + 1]` = all states).
    offset: Vec<u64>,
}

impl Sets {
    /// Builds a validated environment.
    pub fn new(config: SetsConfig) -> Result<Self> {
        config.validate()?;
        let (n, k_max) = (config.n, config.max_size);
        let mut binom = vec![vec![0u64; k_max + 2]; n + 1];
        for m in 0..=n {
            binom[m][0] = 1;
            for k in 1..=(k_max + 1).min(m) {
                // C(62, k) <= C(62, 31) < 2^62: no overflow.
                binom[m][k] = binom[m - 1][k - 1] + if k < m { binom[m - 1][k] } else { 0 };
            }
        }
        let mut offset = vec![0u64; k_max + 2];
        for k in 1..=k_max + 1 {
            offset[k] = offset[k - 1] + binom[n][k - 1];
        }
        let weights = config.resolved_weights();
        Ok(Self {
            spec: EnvSpec {
                name: "sets".into(),
                state_width: n,
                num_actions: n + 1,
                num_backward_actions: n,
                feature_dim: n,
                max_trajectory_length: k_max + 1,
                exit_action: Some(n as u32),
            },
            config,
            weights,
            binom,
            offset,
        })
    }

    /// Builds from JSON parameters (missing keys take their defaults).
    pub fn from_params(params: &serde_json::Value) -> Result<Self> {
        Self::new(parse_params("sets", params)?)
    }

    /// The configuration.
    pub fn config(&self) -> &SetsConfig {
        &self.config
    }

    /// The weights in force.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// `log Z` in closed form: `log sum_{k=1}^{max_size} e_k(e^{w_0}, ..., e^{w_{n-1}})`,
    /// computed in log space (`le[k] = log e_k` of the elements seen so far).
    pub fn log_partition(&self) -> f64 {
        let k_max = self.config.max_size;
        let mut le = vec![f64::NEG_INFINITY; k_max + 1];
        le[0] = 0.0;
        for &w in &self.weights {
            for k in (1..=k_max).rev() {
                le[k] = log_add_exp(le[k], le[k - 1] + w);
            }
        }
        le[1..]
            .iter()
            .fold(f64::NEG_INFINITY, |a, &b| log_add_exp(a, b))
    }

    /// Size of a valid row, or an error naming what is wrong with it.
    fn size_of(&self, s: &[StateValue]) -> Result<usize> {
        if s.iter().any(|&x| x != 0 && x != 1) {
            return Err(self.bad_state(s, "values must be 0 or 1 (membership)"));
        }
        let size = s.iter().filter(|&&x| x == 1).count();
        if size > self.config.max_size {
            return Err(self.bad_state(
                s,
                &format!(
                    "the set has {size} elements, max_size is {}",
                    self.config.max_size
                ),
            ));
        }
        Ok(size)
    }

    fn bad_state(&self, s: &[StateValue], reason: &str) -> CoreError {
        CoreError::InvalidState {
            env: "sets".into(),
            state: s.to_vec(),
            reason: reason.into(),
        }
    }

    fn bad_action(&self, s: &[StateValue], a: u32, reason: String) -> CoreError {
        CoreError::InvalidAction {
            env: "sets".into(),
            state: s.to_vec(),
            action: a,
            reason,
        }
    }
}

fn log_add_exp(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        hi
    } else {
        hi + (lo - hi).exp().ln_1p()
    }
}

impl Environment for Sets {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn params(&self) -> serde_json::Value {
        let mut c = self.config.clone();
        c.weights = Some(self.weights.clone());
        serde_json::to_value(c).unwrap_or(serde_json::Value::Null)
    }

    fn initial_state(&self, out: &mut [StateValue]) {
        out.fill(0);
    }

    fn forward_masks(&self, states: &[StateValue], out: &mut [bool]) -> Result<()> {
        let n = self.config.n;
        let rows = self.spec.rows_of("states of forward_masks", states)?;
        self.spec
            .check_len("forward mask buffer", rows, n + 1, out.len())?;
        for (s, m) in states.chunks_exact(n).zip(out.chunks_exact_mut(n + 1)) {
            let room = self.size_of(s)? < self.config.max_size;
            for (mi, &x) in m.iter_mut().zip(s) {
                *mi = room && x == 0;
            }
            m[n] = s.contains(&1);
        }
        Ok(())
    }

    fn backward_masks(&self, states: &[StateValue], out: &mut [bool]) -> Result<()> {
        let n = self.config.n;
        let rows = self.spec.rows_of("states of backward_masks", states)?;
        self.spec
            .check_len("backward mask buffer", rows, n, out.len())?;
        for (s, m) in states.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
            self.size_of(s)?;
            for (mi, &x) in m.iter_mut().zip(s) {
                *mi = x == 1;
            }
        }
        Ok(())
    }

    fn step(
        &self,
        states: &[StateValue],
        actions: &[u32],
        next: &mut [StateValue],
        backward_actions: &mut [u32],
    ) -> Result<()> {
        let n = self.config.n;
        let rows = self.spec.rows_of("states of step", states)?;
        self.spec
            .check_len("actions of step", rows, 1, actions.len())?;
        self.spec
            .check_len("next-state buffer of step", rows, n, next.len())?;
        self.spec.check_len(
            "backward-action buffer of step",
            rows,
            1,
            backward_actions.len(),
        )?;
        for (r, &a) in actions.iter().enumerate() {
            let s = &states[r * n..(r + 1) * n];
            let size = self.size_of(s)?;
            let ai = a as usize;
            if ai == n {
                return Err(self.bad_action(
                    s,
                    a,
                    "the exit action ends the trajectory and has no next state".into(),
                ));
            }
            if ai > n {
                return Err(self.bad_action(s, a, format!("actions are 0..={n}")));
            }
            if s[ai] == 1 {
                return Err(self.bad_action(s, a, format!("element {ai} is already in the set")));
            }
            if size >= self.config.max_size {
                return Err(self.bad_action(
                    s,
                    a,
                    format!("the set is full (max_size {})", self.config.max_size),
                ));
            }
            let out = &mut next[r * n..(r + 1) * n];
            out.copy_from_slice(s);
            out[ai] = 1;
            backward_actions[r] = a;
        }
        Ok(())
    }

    fn backward_step(
        &self,
        states: &[StateValue],
        backward_actions: &[u32],
        prev: &mut [StateValue],
        forward_actions: &mut [u32],
    ) -> Result<()> {
        let n = self.config.n;
        let rows = self.spec.rows_of("states of backward_step", states)?;
        self.spec.check_len(
            "backward actions of backward_step",
            rows,
            1,
            backward_actions.len(),
        )?;
        self.spec
            .check_len("parent buffer of backward_step", rows, n, prev.len())?;
        self.spec.check_len(
            "forward-action buffer of backward_step",
            rows,
            1,
            forward_actions.len(),
        )?;
        for (r, &b) in backward_actions.iter().enumerate() {
            let s = &states[r * n..(r + 1) * n];
            self.size_of(s)?;
            let bi = b as usize;
            if bi >= n || s[bi] != 1 {
                return Err(self.bad_action(
                    s,
                    b,
                    format!("backward action {b} removes element {b}, which must be in the set"),
                ));
            }
            let out = &mut prev[r * n..(r + 1) * n];
            out.copy_from_slice(s);
            out[bi] = 0;
            forward_actions[r] = b;
        }
        Ok(())
    }

    fn log_reward(&self, states: &[StateValue], out: &mut [f64]) -> Result<()> {
        let n = self.config.n;
        let rows = self.spec.rows_of("states of log_reward", states)?;
        self.spec
            .check_len("log-reward buffer", rows, 1, out.len())?;
        for (s, o) in states.chunks_exact(n).zip(out.iter_mut()) {
            self.size_of(s)?;
            *o = s
                .iter()
                .zip(&self.weights)
                .filter(|(x, _)| **x == 1)
                .map(|(_, w)| w)
                .sum();
        }
        Ok(())
    }

    fn encode(&self, states: &[StateValue], out: &mut [f32]) -> Result<()> {
        let n = self.config.n;
        let rows = self.spec.rows_of("states of encode", states)?;
        self.spec.check_len("feature buffer", rows, n, out.len())?;
        for (s, o) in states.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
            self.size_of(s)?;
            for (oi, &x) in o.iter_mut().zip(s) {
                *oi = x as f32;
            }
        }
        Ok(())
    }

    fn as_enumerable(&self) -> Option<&dyn Enumerable> {
        Some(self)
    }

    fn as_readable(&self) -> Option<&dyn Readable> {
        Some(self)
    }
}

/// The set, elements in increasing order: `{0, 2, 5}` (`{}` for the empty set).
impl Readable for Sets {
    fn readable(&self, state: &[StateValue]) -> Result<String> {
        self.spec
            .check_len("state", 1, self.spec.state_width, state.len())?;
        self.size_of(state)?;
        let members: Vec<String> = state
            .iter()
            .enumerate()
            .filter(|&(_, &x)| x == 1)
            .map(|(i, _)| i.to_string())
            .collect();
        Ok(format!("{{{}}}", members.join(", ")))
    }
}

impl Enumerable for Sets {
    fn num_states(&self) -> u64 {
        self.offset[self.config.max_size + 1]
    }

    fn state_index(&self, states: &[StateValue], out: &mut [u64]) -> Result<()> {
        let n = self.config.n;
        let rows = self.spec.rows_of("states of state_index", states)?;
        self.spec.check_len("index buffer", rows, 1, out.len())?;
        for (s, o) in states.chunks_exact(n).zip(out.iter_mut()) {
            let size = self.size_of(s)?;
            let rank: u64 = s
                .iter()
                .enumerate()
                .filter(|(_, x)| **x == 1)
                .enumerate()
                .map(|(t, (c, _))| self.binom[c][t + 1])
                .sum();
            *o = self.offset[size] + rank;
        }
        Ok(())
    }

    fn states_from_index(&self, indices: &[u64], out: &mut [StateValue]) -> Result<()> {
        let n = self.config.n;
        self.spec.check_len(
            "state buffer of states_from_index",
            indices.len(),
            n,
            out.len(),
        )?;
        let total = self.num_states();
        for (&i, row) in indices.iter().zip(out.chunks_exact_mut(n)) {
            if i >= total {
                return Err(self.bad_state(&[], &format!("index {i} is outside 0..{total}")));
            }
            // The size: the largest k with offset[k] <= i.
            let k = (0..=self.config.max_size)
                .rev()
                .find(|&k| self.offset[k] <= i)
                .unwrap_or(0);
            let mut rank = i - self.offset[k];
            row.fill(0);
            let mut c = n;
            for t in (0..k).rev() {
                // The largest c with C(c, t+1) <= rank (c >= t, where C(t, t+1) = 0).
                c -= 1;
                while self.binom[c][t + 1] > rank {
                    c -= 1;
                }
                row[c] = 1;
                rank -= self.binom[c][t + 1];
            }
        }
        Ok(())
    }
}

// The environment, registered for binaries that link this crate and, built with `--features
// dynamic`, exported as a run-time plugin (`softgfn --plugin`).
softgfn_plugin::environments!("sets" => Sets(SetsConfig): "subsets of {0..n-1} of size <= max_size built element by element; additive log-reward");
