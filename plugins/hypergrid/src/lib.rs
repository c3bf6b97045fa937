//! # softgfn-hypergrid
//!
//! The hypergrid of Bengio et al. (2021) as used by torchgfn and by Tiapkin et al. (2024):
//! states are points `x in {0..H-1}^D` starting at the origin; forward action `d < D` increments
//! coordinate `d` (masked at `H-1`), action `D` is the exit, allowed at every state, so every
//! state is a terminal object. Backward action `d` decrements coordinate `d` (valid where
//! `x_d > 0`). With `a_d = |x_d/(H-1) - 0.5|`, the reward is
//!
//! ```text
//! R(x) = R0 + R1 * prod_d 1[a_d > 0.25] + R2 * prod_d 1[0.3 < a_d < 0.4]
//! ```
//!
//! with presets `standard` (R0, R1, R2) = (1e-3, 0.5, 2.0) and `hard` (1e-4, 1.0, 3.0), or custom
//! constants. Features are K-hot: the concatenated one-hot codes of the coordinates (size `D*H`).
//! State indices are `sum_d x_d H^d` in `u64` with checked arithmetic: a grid with more than
//! `u64::MAX` states is simply not enumerable, never silently wrapped.
//!
//! Config keys (`env.*`): `dim`, `side`, `reward` (`standard` | `hard` | `custom`), and `r0`,
//! `r1`, `r2` with `custom`.
//!
//! ```
//! use softgfn_hypergrid::{Hypergrid, HypergridConfig};
//! let env = Hypergrid::new(HypergridConfig { dim: 2, side: 8, ..Default::default() }).unwrap();
//! softgfn_core::check_env(&env).unwrap();
//! ```

use serde::{Deserialize, Serialize};
use softgfn_core::{
    CoreError, Enumerable, EnvSpec, Environment, Readable, Result, StateValue, parse_params,
};

/// Largest feature size `dim * side` accepted (keeps absurd grids from aborting on allocation).
pub const MAX_FEATURES: usize = 1 << 24;

/// Reward preset of the hypergrid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RewardKind {
    /// (R0, R1, R2) = (1e-3, 0.5, 2.0).
    #[default]
    Standard,
    /// (R0, R1, R2) = (1e-4, 1.0, 3.0).
    Hard,
    /// The constants `r0`, `r1`, `r2` given in the config.
    Custom,
}

/// Hypergrid parameters (the `[env]` table of a run config).
///
/// | Name | Default | Meaning | Range |
/// |---|---|---|---|
/// | `dim` | 4 | number of dimensions D | >= 1 |
/// | `side` | 20 | side length H | >= 2 |
/// | `reward` | `standard` | reward preset | `standard`, `hard`, `custom` |
/// | `r0`, `r1`, `r2` | unset | reward constants, only with `custom` | r0 > 0; r1, r2 >= 0 |
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HypergridConfig {
    /// Number of dimensions D.
    pub dim: usize,
    /// Side length H.
    pub side: usize,
    /// Reward preset.
    pub reward: RewardKind,
    /// R0 (custom rewards only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r0: Option<f64>,
    /// R1 (custom rewards only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r1: Option<f64>,
    /// R2 (custom rewards only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r2: Option<f64>,
}

impl Default for HypergridConfig {
    fn default() -> Self {
        Self {
            dim: 4,
            side: 20,
            reward: RewardKind::Standard,
            r0: None,
            r1: None,
            r2: None,
        }
    }
}

fn invalid(field: &str, value: impl std::fmt::Display, expected: &str) -> CoreError {
    CoreError::InvalidParameter {
        env: "hypergrid".into(),
        field: field.into(),
        value: value.to_string(),
        expected: expected.into(),
    }
}

impl HypergridConfig {
    /// The reward constants `(R0, R1, R2)` after validation.
    pub fn constants(&self) -> Result<(f64, f64, f64)> {
        let given = [self.r0, self.r1, self.r2];
        match self.reward {
            RewardKind::Standard | RewardKind::Hard => {
                for (name, v) in ["r0", "r1", "r2"].iter().zip(given) {
                    if let Some(v) = v {
                        return Err(invalid(
                            name,
                            v,
                            "no value: r0, r1 and r2 are only used with reward = \"custom\"",
                        ));
                    }
                }
                Ok(if self.reward == RewardKind::Standard {
                    (1e-3, 0.5, 2.0)
                } else {
                    (1e-4, 1.0, 3.0)
                })
            }
            RewardKind::Custom => {
                let mut out = [0.0; 3];
                for (i, (name, v)) in ["r0", "r1", "r2"].iter().zip(given).enumerate() {
                    let v = v.ok_or_else(|| {
                        invalid(
                            name,
                            "unset",
                            "a number: reward = \"custom\" needs r0, r1 and r2",
                        )
                    })?;
                    let ok = v.is_finite() && if i == 0 { v > 0.0 } else { v >= 0.0 };
                    if !ok {
                        return Err(invalid(
                            name,
                            v,
                            if i == 0 {
                                "a finite number > 0 (every state's reward must be positive)"
                            } else {
                                "a finite number >= 0"
                            },
                        ));
                    }
                    out[i] = v;
                }
                Ok((out[0], out[1], out[2]))
            }
        }
    }

    /// Checks every field; the error names the field, the value and the allowed range.
    pub fn validate(&self) -> Result<()> {
        if self.dim == 0 {
            return Err(invalid("dim", self.dim, "an integer >= 1"));
        }
        if self.side < 2 || self.side > i32::MAX as usize {
            return Err(invalid("side", self.side, "an integer in 2..=2147483647"));
        }
        if self
            .dim
            .checked_mul(self.side)
            .is_none_or(|f| f > MAX_FEATURES)
        {
            return Err(invalid(
                "side",
                self.side,
                &format!("dim * side (the feature size) to be at most {MAX_FEATURES}"),
            ));
        }
        self.constants().map(|_| ())
    }
}

/// The hypergrid environment.
#[derive(Clone, Debug)]
pub struct Hypergrid {
    config: HypergridConfig,
    spec: EnvSpec,
    r0: f64,
    r1: f64,
    r2: f64,
    /// Per coordinate value: `|x/(H-1) - 0.5| > 0.25`.
    outer: Vec<bool>,
    /// Per coordinate value: `0.3 < |x/(H-1) - 0.5| < 0.4`.
    band: Vec<bool>,
    num_states: Option<u64>,
}

impl Hypergrid {
    /// Builds a validated hypergrid.
    pub fn new(config: HypergridConfig) -> Result<Self> {
        config.validate()?;
        let (r0, r1, r2) = config.constants()?;
        let (d, h) = (config.dim, config.side);
        let denom = (h - 1) as f64;
        let a = |x: usize| (x as f64 / denom - 0.5).abs();
        let outer = (0..h).map(|x| a(x) > 0.25).collect();
        let band = (0..h).map(|x| a(x) > 0.3 && a(x) < 0.4).collect();
        let num_states = (0..d).try_fold(1u64, |acc, _| acc.checked_mul(h as u64));
        Ok(Self {
            spec: EnvSpec {
                name: "hypergrid".into(),
                state_width: d,
                num_actions: d + 1,
                num_backward_actions: d,
                feature_dim: d * h,
                max_trajectory_length: d * (h - 1) + 1,
                exit_action: Some(d as u32),
            },
            config,
            r0,
            r1,
            r2,
            outer,
            band,
            num_states,
        })
    }

    /// Builds from JSON parameters (missing keys take their defaults).
    pub fn from_params(params: &serde_json::Value) -> Result<Self> {
        Self::new(parse_params("hypergrid", params)?)
    }

    /// The configuration.
    pub fn config(&self) -> &HypergridConfig {
        &self.config
    }

    fn check_row(&self, s: &[StateValue]) -> Result<()> {
        let h = self.config.side as StateValue;
        if s.iter().any(|&x| x < 0 || x >= h) {
            return Err(CoreError::InvalidState {
                env: "hypergrid".into(),
                state: s.to_vec(),
                reason: format!("coordinates must lie in 0..{h}"),
            });
        }
        Ok(())
    }

    fn rows(&self, what: &str, states: &[StateValue]) -> Result<usize> {
        self.spec.rows_of(what, states)
    }

    /// The reward of one state (not in log space).
    pub fn reward(&self, s: &[StateValue]) -> f64 {
        let mut all_outer = true;
        let mut all_band = true;
        for &x in s {
            all_outer &= self.outer[x as usize];
            all_band &= self.band[x as usize];
        }
        self.r0 + if all_outer { self.r1 } else { 0.0 } + if all_band { self.r2 } else { 0.0 }
    }
}

impl Environment for Hypergrid {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).unwrap_or(serde_json::Value::Null)
    }

    fn initial_state(&self, out: &mut [StateValue]) {
        out.fill(0);
    }

    fn forward_masks(&self, states: &[StateValue], out: &mut [bool]) -> Result<()> {
        let d = self.config.dim;
        let rows = self.rows("states of forward_masks", states)?;
        self.spec
            .check_len("forward mask buffer", rows, d + 1, out.len())?;
        let top = (self.config.side - 1) as StateValue;
        for (s, m) in states.chunks_exact(d).zip(out.chunks_exact_mut(d + 1)) {
            self.check_row(s)?;
            for (mi, &x) in m.iter_mut().zip(s) {
                *mi = x < top;
            }
            m[d] = true;
        }
        Ok(())
    }

    fn backward_masks(&self, states: &[StateValue], out: &mut [bool]) -> Result<()> {
        let rows = self.rows("states of backward_masks", states)?;
        self.spec
            .check_len("backward mask buffer", rows, self.config.dim, out.len())?;
        self.check_row(states)?;
        for (o, &x) in out.iter_mut().zip(states) {
            *o = x > 0;
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
        let d = self.config.dim;
        let rows = self.rows("states of step", states)?;
        self.spec
            .check_len("actions of step", rows, 1, actions.len())?;
        self.spec
            .check_len("next-state buffer of step", rows, d, next.len())?;
        self.spec.check_len(
            "backward-action buffer of step",
            rows,
            1,
            backward_actions.len(),
        )?;
        let top = (self.config.side - 1) as StateValue;
        for (r, &a) in actions.iter().enumerate() {
            let s = &states[r * d..(r + 1) * d];
            self.check_row(s)?;
            let ai = a as usize;
            if ai >= d || s[ai] >= top {
                return Err(CoreError::InvalidAction {
                    env: "hypergrid".into(),
                    state: s.to_vec(),
                    action: a,
                    reason: if ai == d {
                        "the exit action ends the trajectory and has no next state".into()
                    } else if ai > d {
                        format!("actions are 0..={d}")
                    } else {
                        format!("coordinate {ai} is already at the boundary {top}")
                    },
                });
            }
            let n = &mut next[r * d..(r + 1) * d];
            n.copy_from_slice(s);
            n[ai] += 1;
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
        let d = self.config.dim;
        let rows = self.rows("states of backward_step", states)?;
        self.spec.check_len(
            "backward actions of backward_step",
            rows,
            1,
            backward_actions.len(),
        )?;
        self.spec
            .check_len("parent buffer of backward_step", rows, d, prev.len())?;
        self.spec.check_len(
            "forward-action buffer of backward_step",
            rows,
            1,
            forward_actions.len(),
        )?;
        for (r, &b) in backward_actions.iter().enumerate() {
            let s = &states[r * d..(r + 1) * d];
            self.check_row(s)?;
            let bi = b as usize;
            if bi >= d || s[bi] == 0 {
                return Err(CoreError::InvalidAction {
                    env: "hypergrid".into(),
                    state: s.to_vec(),
                    action: b,
                    reason: format!(
                        "backward action {b} needs coordinate {b} > 0 (actions are 0..{d})"
                    ),
                });
            }
            let p = &mut prev[r * d..(r + 1) * d];
            p.copy_from_slice(s);
            p[bi] -= 1;
            forward_actions[r] = b;
        }
        Ok(())
    }

    fn log_reward(&self, states: &[StateValue], out: &mut [f64]) -> Result<()> {
        let d = self.config.dim;
        let rows = self.rows("states of log_reward", states)?;
        self.spec
            .check_len("log-reward buffer", rows, 1, out.len())?;
        for (s, o) in states.chunks_exact(d).zip(out.iter_mut()) {
            self.check_row(s)?;
            *o = self.reward(s).ln();
        }
        Ok(())
    }

    fn encode(&self, states: &[StateValue], out: &mut [f32]) -> Result<()> {
        let (d, h) = (self.config.dim, self.config.side);
        let rows = self.rows("states of encode", states)?;
        self.spec
            .check_len("feature buffer", rows, d * h, out.len())?;
        out.fill(0.0);
        for (s, o) in states.chunks_exact(d).zip(out.chunks_exact_mut(d * h)) {
            self.check_row(s)?;
            for (k, &x) in s.iter().enumerate() {
                o[k * h + x as usize] = 1.0;
            }
        }
        Ok(())
    }

    fn as_enumerable(&self) -> Option<&dyn Enumerable> {
        self.num_states.map(|_| self as &dyn Enumerable)
    }

    fn as_readable(&self) -> Option<&dyn Readable> {
        Some(self)
    }
}

/// The coordinates: `(3, 0, 5)`.
impl Readable for Hypergrid {
    fn readable(&self, state: &[StateValue]) -> Result<String> {
        self.spec
            .check_len("state", 1, self.spec.state_width, state.len())?;
        self.check_row(state)?;
        let coords: Vec<String> = state.iter().map(|x| x.to_string()).collect();
        Ok(format!("({})", coords.join(", ")))
    }
}

impl Enumerable for Hypergrid {
    fn num_states(&self) -> u64 {
        self.num_states.unwrap_or(u64::MAX)
    }

    fn state_index(&self, states: &[StateValue], out: &mut [u64]) -> Result<()> {
        let d = self.config.dim;
        let rows = self.rows("states of state_index", states)?;
        self.spec.check_len("index buffer", rows, 1, out.len())?;
        let h = self.config.side as u64;
        for (s, o) in states.chunks_exact(d).zip(out.iter_mut()) {
            self.check_row(s)?;
            // Fits by construction: every coordinate < H and H^D <= u64::MAX.
            *o = s.iter().rev().fold(0u64, |acc, &x| acc * h + x as u64);
        }
        Ok(())
    }

    fn states_from_index(&self, indices: &[u64], out: &mut [StateValue]) -> Result<()> {
        let d = self.config.dim;
        self.spec.check_len(
            "state buffer of states_from_index",
            indices.len(),
            d,
            out.len(),
        )?;
        let h = self.config.side as u64;
        let n = self.num_states();
        for (&i, row) in indices.iter().zip(out.chunks_exact_mut(d)) {
            if i >= n {
                return Err(CoreError::InvalidState {
                    env: "hypergrid".into(),
                    state: vec![],
                    reason: format!("index {i} is outside 0..{n}"),
                });
            }
            let mut x = i;
            for v in row.iter_mut() {
                *v = (x % h) as StateValue;
                x /= h;
            }
        }
        Ok(())
    }
}

// The environment, registered for binaries that link this crate and, built with `--features
// dynamic`, exported as a run-time plugin (`softgfn --plugin`).
softgfn_plugin::environments!("hypergrid" => Hypergrid(HypergridConfig): "D-dimensional grid of side H; exit at every state; standard/hard/custom rewards");

#[cfg(test)]
mod tests {
    use super::*;
    use softgfn_core::EnvironmentExt;

    #[test]
    fn readable_form_is_the_coordinates() {
        let env = Hypergrid::new(HypergridConfig {
            dim: 3,
            side: 8,
            ..Default::default()
        })
        .unwrap();
        let r = env.as_readable().unwrap();
        assert_eq!(r.readable(&[3, 0, 7]).unwrap(), "(3, 0, 7)");
        assert_eq!(
            softgfn_core::readable_state(&env, &env.initial_row()).unwrap(),
            "(0, 0, 0)"
        );
        assert!(r.readable(&[3, 0, 8]).is_err());
        assert!(r.readable(&[3, 0]).is_err());
    }

    #[test]
    fn rewards_of_the_presets() {
        let env = Hypergrid::new(HypergridConfig {
            dim: 2,
            side: 8,
            ..Default::default()
        })
        .unwrap();
        // H = 8: a(x) = |x/7 - 0.5|; outer for x in {0, 1, 6, 7}; band for x in {1, 6}
        // (a = 0.357), not 0 or 7 (a = 0.5).
        let cases: [([i32; 2], f64); 4] = [
            ([0, 0], 1e-3 + 0.5),
            ([1, 6], 1e-3 + 0.5 + 2.0),
            ([3, 3], 1e-3),
            ([0, 3], 1e-3),
        ];
        for (s, r) in cases {
            assert!(
                (env.log_reward_of(&s).unwrap() - f64::ln(r)).abs() < 1e-12,
                "{s:?}"
            );
        }
        let hard = Hypergrid::new(HypergridConfig {
            dim: 2,
            side: 8,
            reward: RewardKind::Hard,
            ..Default::default()
        })
        .unwrap();
        assert!((hard.reward(&[1, 6]) - 4.0001).abs() < 1e-12);
    }

    #[test]
    fn custom_rewards_need_all_constants() {
        let c = HypergridConfig {
            reward: RewardKind::Custom,
            r0: Some(0.1),
            r1: Some(1.0),
            ..Default::default()
        };
        let e = Hypergrid::new(c).unwrap_err().to_string();
        assert!(e.contains("r2"), "{e}");
        let c = HypergridConfig {
            r0: Some(0.1),
            ..Default::default()
        };
        assert!(
            Hypergrid::new(c)
                .unwrap_err()
                .to_string()
                .contains("custom")
        );
        let c = HypergridConfig {
            reward: RewardKind::Custom,
            r0: Some(0.0),
            r1: Some(1.0),
            r2: Some(1.0),
            ..Default::default()
        };
        assert!(Hypergrid::new(c).unwrap_err().to_string().contains("> 0"));
    }

    #[test]
    fn huge_grids_do_not_overflow_indices() {
        // 64^11 = 2^66 states: not enumerable, but stepping and encoding still work.
        let env = Hypergrid::new(HypergridConfig {
            dim: 11,
            side: 64,
            ..Default::default()
        })
        .unwrap();
        assert!(env.as_enumerable().is_none());
        let s0 = env.initial_row();
        let (s1, b) = env.step_one(&s0, 3).unwrap();
        assert_eq!(s1[3], 1);
        assert_eq!(b, 3);
        // 2^63 states: enumerable, and the largest index is exact.
        let env = Hypergrid::new(HypergridConfig {
            dim: 63,
            side: 2,
            ..Default::default()
        })
        .unwrap();
        let en = env.as_enumerable().unwrap();
        assert_eq!(en.num_states(), 1u64 << 63);
        let mut idx = [0u64];
        en.state_index(&[1; 63], &mut idx).unwrap();
        assert_eq!(idx[0], (1u64 << 63) - 1);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let env = Hypergrid::new(HypergridConfig {
            dim: 2,
            side: 4,
            ..Default::default()
        })
        .unwrap();
        assert!(env.step_one(&[3, 0], 0).is_err());
        assert!(env.step_one(&[0, 0], 2).is_err());
        assert!(env.backward_step_one(&[0, 1], 0).is_err());
        assert!(env.log_reward_of(&[5, 0]).is_err());
        let mut out = [0.0];
        assert!(env.log_reward(&[0, 0, 0], &mut out).is_err());
        assert!(
            Hypergrid::from_params(&serde_json::json!({"dims": 2}))
                .unwrap_err()
                .to_string()
                .contains("unknown field `dims`")
        );
    }
}
