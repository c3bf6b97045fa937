//! Small environments for softgfn's own tests (feature `testing`).
//!
//! - [`SetEnv`]: subsets of `{0..k-1}` built by adding elements, with an exit at every non-empty
//!   set; a DAG (a set of size `m` has `m!` construction orders), `log R(S) = sum_{i in S} w_i`.
//! - [`SlotEnv`]: `n` slots filled with bits in any order, ending implicitly when full (a tiny
//!   non-autoregressive bit sequence without an exit action).
//! - [`BrokenEnv`]: a [`SetEnv`] with one deliberate contract violation, for `check_env` tests
//!   (it forwards the optional capabilities, `sequence_layout` and `monitor`, to its inner env).

use crate::env::{Enumerable, EnvSpec, Environment, SequenceLayout, StateValue};
use crate::error::{CoreError, Result};
use crate::monitor::Monitor;

fn bad_action(env: &str, s: &[StateValue], a: u32, why: &str) -> CoreError {
    CoreError::InvalidAction {
        env: env.into(),
        state: s.to_vec(),
        action: a,
        reason: why.into(),
    }
}

/// Subsets of `{0..k-1}` built by adding one element at a time; exit at any non-empty set.
#[derive(Clone, Debug)]
pub struct SetEnv {
    spec: EnvSpec,
    weights: Vec<f64>,
}

impl SetEnv {
    /// A set environment over `weights.len()` elements with `log R(S) = sum_{i in S} weights[i]`.
    pub fn new(weights: Vec<f64>) -> Self {
        let k = weights.len();
        Self {
            spec: EnvSpec {
                name: "set".into(),
                state_width: k,
                num_actions: k + 1,
                num_backward_actions: k,
                feature_dim: k,
                max_trajectory_length: k + 1,
                exit_action: Some(k as u32),
            },
            weights,
        }
    }
}

impl Environment for SetEnv {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({ "weights": self.weights })
    }

    fn initial_state(&self, out: &mut [StateValue]) {
        out.fill(0);
    }

    fn forward_masks(&self, states: &[StateValue], out: &mut [bool]) -> Result<()> {
        let k = self.weights.len();
        for (s, m) in states.chunks(k).zip(out.chunks_mut(k + 1)) {
            let mut any = false;
            for i in 0..k {
                m[i] = s[i] == 0;
                any |= s[i] == 1;
            }
            m[k] = any;
        }
        Ok(())
    }

    fn backward_masks(&self, states: &[StateValue], out: &mut [bool]) -> Result<()> {
        for (o, &v) in out.iter_mut().zip(states) {
            *o = v == 1;
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
        let k = self.weights.len();
        for (r, &a) in actions.iter().enumerate() {
            let s = &states[r * k..(r + 1) * k];
            if a as usize >= k || s[a as usize] != 0 {
                return Err(bad_action("set", s, a, "element already present or exit"));
            }
            let n = &mut next[r * k..(r + 1) * k];
            n.copy_from_slice(s);
            n[a as usize] = 1;
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
        let k = self.weights.len();
        for (r, &b) in backward_actions.iter().enumerate() {
            let s = &states[r * k..(r + 1) * k];
            if b as usize >= k || s[b as usize] != 1 {
                return Err(bad_action("set", s, b, "element absent"));
            }
            let p = &mut prev[r * k..(r + 1) * k];
            p.copy_from_slice(s);
            p[b as usize] = 0;
            forward_actions[r] = b;
        }
        Ok(())
    }

    fn log_reward(&self, states: &[StateValue], out: &mut [f64]) -> Result<()> {
        let k = self.weights.len();
        for (s, o) in states.chunks(k).zip(out.iter_mut()) {
            *o = s
                .iter()
                .zip(&self.weights)
                .map(|(&v, &w)| if v == 1 { w } else { 0.0 })
                .sum();
        }
        Ok(())
    }

    fn encode(&self, states: &[StateValue], out: &mut [f32]) -> Result<()> {
        for (o, &v) in out.iter_mut().zip(states) {
            *o = v as f32;
        }
        Ok(())
    }

    fn as_enumerable(&self) -> Option<&dyn Enumerable> {
        Some(self)
    }
}

impl Enumerable for SetEnv {
    fn num_states(&self) -> u64 {
        1u64 << self.weights.len()
    }

    fn state_index(&self, states: &[StateValue], out: &mut [u64]) -> Result<()> {
        let k = self.weights.len();
        for (s, o) in states.chunks(k).zip(out.iter_mut()) {
            *o = s.iter().enumerate().map(|(i, &v)| (v as u64) << i).sum();
        }
        Ok(())
    }

    fn states_from_index(&self, indices: &[u64], out: &mut [StateValue]) -> Result<()> {
        let k = self.weights.len();
        for (&i, row) in indices.iter().zip(out.chunks_mut(k)) {
            for (j, v) in row.iter_mut().enumerate() {
                *v = ((i >> j) & 1) as StateValue;
            }
        }
        Ok(())
    }
}

/// `n` slots, each empty (2) or holding a bit; action `2p + bit` writes `bit` into empty slot `p`.
/// A full string is terminal with no exit action; `log R(x) = sum_p weights[p] * x_p`.
#[derive(Clone, Debug)]
pub struct SlotEnv {
    spec: EnvSpec,
    weights: Vec<f64>,
}

const EMPTY: StateValue = 2;

impl SlotEnv {
    /// A slot environment with one weight per slot.
    pub fn new(weights: Vec<f64>) -> Self {
        let n = weights.len();
        Self {
            spec: EnvSpec {
                name: "slots".into(),
                state_width: n,
                num_actions: 2 * n,
                num_backward_actions: n,
                feature_dim: 3 * n,
                max_trajectory_length: n,
                exit_action: None,
            },
            weights,
        }
    }
}

impl Environment for SlotEnv {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({ "weights": self.weights })
    }

    fn initial_state(&self, out: &mut [StateValue]) {
        out.fill(EMPTY);
    }

    fn forward_masks(&self, states: &[StateValue], out: &mut [bool]) -> Result<()> {
        let n = self.weights.len();
        for (s, m) in states.chunks(n).zip(out.chunks_mut(2 * n)) {
            for p in 0..n {
                m[2 * p] = s[p] == EMPTY;
                m[2 * p + 1] = s[p] == EMPTY;
            }
        }
        Ok(())
    }

    fn backward_masks(&self, states: &[StateValue], out: &mut [bool]) -> Result<()> {
        for (o, &v) in out.iter_mut().zip(states) {
            *o = v != EMPTY;
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
        let n = self.weights.len();
        for (r, &a) in actions.iter().enumerate() {
            let s = &states[r * n..(r + 1) * n];
            let p = (a / 2) as usize;
            if p >= n || s[p] != EMPTY {
                return Err(bad_action("slots", s, a, "slot full or out of range"));
            }
            let o = &mut next[r * n..(r + 1) * n];
            o.copy_from_slice(s);
            o[p] = (a % 2) as StateValue;
            backward_actions[r] = p as u32;
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
        let n = self.weights.len();
        for (r, &b) in backward_actions.iter().enumerate() {
            let s = &states[r * n..(r + 1) * n];
            let p = b as usize;
            if p >= n || s[p] == EMPTY {
                return Err(bad_action("slots", s, b, "slot empty"));
            }
            let o = &mut prev[r * n..(r + 1) * n];
            o.copy_from_slice(s);
            o[p] = EMPTY;
            forward_actions[r] = (2 * p) as u32 + s[p] as u32;
        }
        Ok(())
    }

    fn log_reward(&self, states: &[StateValue], out: &mut [f64]) -> Result<()> {
        let n = self.weights.len();
        for (s, o) in states.chunks(n).zip(out.iter_mut()) {
            *o = s
                .iter()
                .zip(&self.weights)
                .map(|(&v, &w)| if v == 1 { w } else { 0.0 })
                .sum();
        }
        Ok(())
    }

    fn encode(&self, states: &[StateValue], out: &mut [f32]) -> Result<()> {
        out.fill(0.0);
        let n = self.weights.len();
        for (s, o) in states.chunks(n).zip(out.chunks_mut(3 * n)) {
            for p in 0..n {
                o[3 * p + s[p] as usize] = 1.0;
            }
        }
        Ok(())
    }

    fn as_enumerable(&self) -> Option<&dyn Enumerable> {
        Some(self)
    }
}

impl Enumerable for SlotEnv {
    fn num_states(&self) -> u64 {
        3u64.pow(self.weights.len() as u32)
    }

    fn state_index(&self, states: &[StateValue], out: &mut [u64]) -> Result<()> {
        let n = self.weights.len();
        for (s, o) in states.chunks(n).zip(out.iter_mut()) {
            *o = s.iter().rev().fold(0u64, |acc, &v| acc * 3 + v as u64);
        }
        Ok(())
    }

    fn states_from_index(&self, indices: &[u64], out: &mut [StateValue]) -> Result<()> {
        let n = self.weights.len();
        for (&i, row) in indices.iter().zip(out.chunks_mut(n)) {
            let mut x = i;
            for v in row.iter_mut() {
                *v = (x % 3) as StateValue;
                x /= 3;
            }
        }
        Ok(())
    }
}

/// Which contract a [`BrokenEnv`] violates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Breakage {
    /// `backward_step` removes the wrong element.
    WrongInverse,
    /// The backward mask allows removing absent elements.
    LooseBackwardMask,
    /// `log_reward` is NaN for sets of size two.
    NanReward,
    /// `max_trajectory_length` is smaller than the real longest trajectory.
    ShortLengthBound,
    /// The initial state claims a parent.
    InitialHasParent,
    /// The backward mask forbids removing element 0 from a set that holds another element too:
    /// the step that undoes adding 0 last is masked out, so its uniform `log P_B` is `-inf`.
    TightBackwardMask,
}

/// A [`SetEnv`] with one deliberate violation.
#[derive(Clone, Debug)]
pub struct BrokenEnv {
    inner: SetEnv,
    breakage: Breakage,
    spec: EnvSpec,
}

impl BrokenEnv {
    /// Wraps a 3-element set environment.
    pub fn new(breakage: Breakage) -> Self {
        let inner = SetEnv::new(vec![0.1, 0.2, 0.3]);
        let mut spec = inner.spec().clone();
        spec.name = format!("broken-{breakage:?}");
        if breakage == Breakage::ShortLengthBound {
            spec.max_trajectory_length = 2;
        }
        Self {
            inner,
            breakage,
            spec,
        }
    }
}

impl Environment for BrokenEnv {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn params(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    fn initial_state(&self, out: &mut [StateValue]) {
        self.inner.initial_state(out);
    }

    fn forward_masks(&self, states: &[StateValue], out: &mut [bool]) -> Result<()> {
        self.inner.forward_masks(states, out)
    }

    fn backward_masks(&self, states: &[StateValue], out: &mut [bool]) -> Result<()> {
        self.inner.backward_masks(states, out)?;
        match self.breakage {
            Breakage::LooseBackwardMask => {
                // Mark every element removable whenever the set is non-empty.
                for (s, m) in states.chunks(3).zip(out.chunks_mut(3)) {
                    if s.contains(&1) {
                        m.fill(true);
                    }
                }
            }
            Breakage::TightBackwardMask => {
                for (s, m) in states.chunks(3).zip(out.chunks_mut(3)) {
                    if s[0] == 1 && s[1..].contains(&1) {
                        m[0] = false;
                    }
                }
            }
            Breakage::InitialHasParent => {
                for (s, m) in states.chunks(3).zip(out.chunks_mut(3)) {
                    if s.iter().all(|&v| v == 0) {
                        m[0] = true;
                    }
                }
            }
            _ => {}
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
        self.inner.step(states, actions, next, backward_actions)
    }

    fn backward_step(
        &self,
        states: &[StateValue],
        backward_actions: &[u32],
        prev: &mut [StateValue],
        forward_actions: &mut [u32],
    ) -> Result<()> {
        if self.breakage == Breakage::WrongInverse {
            // Removes the lowest present element whatever was asked.
            for (r, _) in backward_actions.iter().enumerate() {
                let s = &states[r * 3..(r + 1) * 3];
                let p = &mut prev[r * 3..(r + 1) * 3];
                p.copy_from_slice(s);
                let i = s.iter().position(|&v| v == 1).unwrap_or(0);
                p[i] = 0;
                forward_actions[r] = i as u32;
            }
            return Ok(());
        }
        self.inner
            .backward_step(states, backward_actions, prev, forward_actions)
    }

    fn log_reward(&self, states: &[StateValue], out: &mut [f64]) -> Result<()> {
        self.inner.log_reward(states, out)?;
        if self.breakage == Breakage::NanReward {
            for (s, o) in states.chunks(3).zip(out.iter_mut()) {
                if s.iter().filter(|&&v| v == 1).count() == 2 {
                    *o = f64::NAN;
                }
            }
        }
        Ok(())
    }

    fn encode(&self, states: &[StateValue], out: &mut [f32]) -> Result<()> {
        self.inner.encode(states, out)
    }

    fn as_enumerable(&self) -> Option<&dyn Enumerable> {
        Some(&self.inner)
    }

    fn sequence_layout(&self) -> Option<SequenceLayout> {
        self.inner.sequence_layout()
    }

    fn graph_layout(&self) -> Option<crate::GraphLayout> {
        self.inner.graph_layout()
    }

    fn monitor(&self) -> Option<Box<dyn Monitor>> {
        self.inner.monitor()
    }
}
