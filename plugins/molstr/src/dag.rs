//! The prepend/append string DAG shared by `qm9str` and `sehstr`.
//!
//! A state is a string of at most `L` blocks drawn from `K` building blocks. Its row has `L + 1`
//! values: the length `n`, then the `L` slots `s_0 .. s_{L-1}`, where `s_j` is the block id
//! (`0..K`) of position `j` for `j < n` and [`StringDag::empty`] (= `K`) for `j >= n`.
//!
//! Forward actions (`2K + 1`): `c` in `0..K` prepends block `c`, `K + c` appends block `c`, and
//! `2K` is the stop (exit) action. Stop is valid only at length `L`, where it is the only valid
//! action; at the empty string only prepend is valid, so that a string of length 1 has exactly
//! one parent edge. Backward actions (2): `0` removes the first block, `1` the last one; at length
//! 1 only "remove first" is valid, at length `>= 2` both are (even where they lead to the same
//! parent, as for `aaa`). `step` returns the backward action undoing it (prepend -> remove first,
//! append -> remove last) and `backward_step` the forward action redoing it.

use softgfn_core::{CoreError, EnvSpec, Result, StateValue};

/// Symbols of blocks in the printed form of a string (`0123456789abc...`), as in the data files.
pub const SYMBOLS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// The string DAG of one environment instance (shapes, masks, steps, features and indices).
#[derive(Clone, Debug)]
pub(crate) struct StringDag {
    name: &'static str,
    k: usize,
    l: usize,
    spec: EnvSpec,
    /// `offsets[n]` = number of strings shorter than `n`, for `n` in `0..=L+1` (checked).
    offsets: Option<Vec<u64>>,
}

impl StringDag {
    /// A DAG over strings of at most `l` of `k` blocks.
    pub(crate) fn new(name: &'static str, k: usize, l: usize) -> Result<Self> {
        if k == 0 || k >= (i32::MAX as usize) / 2 {
            return Err(CoreError::Environment {
                env: name.into(),
                message: format!(
                    "{k} building blocks: expected between 1 and {}",
                    i32::MAX / 2
                ),
            });
        }
        if l == 0 || l >= i32::MAX as usize {
            return Err(CoreError::Environment {
                env: name.into(),
                message: format!("maximum string length {l}: expected at least 1"),
            });
        }
        let mut offsets = Some(vec![0u64]);
        let mut pow = Some(1u64);
        for n in 0..=l {
            offsets = match (offsets, pow) {
                (Some(mut o), Some(p)) => o[n].checked_add(p).map(|next| {
                    o.push(next);
                    o
                }),
                _ => None,
            };
            pow = pow.and_then(|p| p.checked_mul(k as u64));
        }
        let feature_dim = l.checked_mul(k + 1).ok_or_else(|| CoreError::Environment {
            env: name.into(),
            message: format!("feature size {l} * {} overflows", k + 1),
        })?;
        Ok(Self {
            name,
            k,
            l,
            spec: EnvSpec {
                name: name.into(),
                state_width: l + 1,
                num_actions: 2 * k + 1,
                num_backward_actions: 2,
                feature_dim,
                max_trajectory_length: l + 1,
                exit_action: Some(2 * k as u32),
            },
            offsets,
        })
    }

    /// The spec.
    pub(crate) fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    /// Maximum (and terminal) string length `L`.
    pub(crate) fn max_len(&self) -> usize {
        self.l
    }

    /// The slot value of an empty position (`K`).
    pub(crate) fn empty(&self) -> StateValue {
        self.k as StateValue
    }

    /// Number of states (strings of length `0..=L`), if it fits in `u64`.
    pub(crate) fn num_states(&self) -> Option<u64> {
        self.offsets.as_ref().map(|o| o[self.l + 1])
    }

    fn width(&self) -> usize {
        self.l + 1
    }

    pub(crate) fn rows(&self, what: &str, states: &[StateValue]) -> Result<usize> {
        self.spec.rows_of(what, states)
    }

    fn invalid_state(&self, s: &[StateValue], reason: String) -> CoreError {
        CoreError::InvalidState {
            env: self.name.into(),
            state: s.to_vec(),
            reason,
        }
    }

    fn invalid_action(&self, s: &[StateValue], action: u32, reason: String) -> CoreError {
        CoreError::InvalidAction {
            env: self.name.into(),
            state: s.to_vec(),
            action,
            reason,
        }
    }

    /// Validates one row and returns its length.
    pub(crate) fn check_row(&self, s: &[StateValue]) -> Result<usize> {
        let (k, l) = (self.k as StateValue, self.l);
        let n = s[0];
        if n < 0 || n as usize > l {
            return Err(
                self.invalid_state(s, format!("the length (first value) must lie in 0..={l}"))
            );
        }
        let n = n as usize;
        for (j, &b) in s[1..].iter().enumerate() {
            let ok = if j < n { (0..k).contains(&b) } else { b == k };
            if !ok {
                return Err(self.invalid_state(
                    s,
                    if j < n {
                        format!("slot {j} holds {b}; the blocks of a string are 0..{k}")
                    } else {
                        format!(
                            "slot {j} is past the length {n} and must hold the empty marker {k}"
                        )
                    },
                ));
            }
        }
        Ok(n)
    }

    /// The blocks of one complete state row (`what` names the caller in errors): a buffer of
    /// another length or an incomplete string is an error.
    pub(crate) fn complete_state<'a>(
        &self,
        state: &'a [StateValue],
        what: &str,
    ) -> Result<&'a [StateValue]> {
        let w = self.spec().state_width;
        self.spec().check_len(what, 1, w, state.len())?;
        self.complete_blocks(state, what)
    }

    /// The blocks of a complete (length `L`) string, for rewards: other lengths are errors.
    pub(crate) fn complete_blocks<'a>(
        &self,
        s: &'a [StateValue],
        what: &str,
    ) -> Result<&'a [StateValue]> {
        let n = self.check_row(s)?;
        if n != self.l {
            return Err(self.invalid_state(
                s,
                format!(
                    "{what} is defined only for complete strings of length {} (this one has length {n})",
                    self.l
                ),
            ));
        }
        Ok(&s[1..])
    }

    /// Index of a complete string among the `K^L` strings of length `L` (base `K`, first block
    /// most significant: the row order of the data files).
    pub(crate) fn terminal_index(&self, blocks: &[StateValue]) -> usize {
        blocks
            .iter()
            .fold(0usize, |acc, &b| acc * self.k + b as usize)
    }

    /// Writes `s0` (the empty string).
    pub(crate) fn initial_state(&self, out: &mut [StateValue]) {
        out.fill(self.empty());
        if let Some(first) = out.first_mut() {
            *first = 0;
        }
    }

    pub(crate) fn forward_masks(&self, states: &[StateValue], out: &mut [bool]) -> Result<()> {
        let rows = self.rows("states of forward_masks", states)?;
        let na = self.spec.num_actions;
        self.spec
            .check_len("forward mask buffer", rows, na, out.len())?;
        let k = self.k;
        for (s, m) in states
            .chunks_exact(self.width())
            .zip(out.chunks_exact_mut(na))
        {
            let n = self.check_row(s)?;
            if n == self.l {
                m.fill(false);
                m[2 * k] = true;
            } else {
                m[..k].fill(true);
                m[k..2 * k].fill(n > 0);
                m[2 * k] = false;
            }
        }
        Ok(())
    }

    pub(crate) fn backward_masks(&self, states: &[StateValue], out: &mut [bool]) -> Result<()> {
        let rows = self.rows("states of backward_masks", states)?;
        self.spec
            .check_len("backward mask buffer", rows, 2, out.len())?;
        for (s, m) in states
            .chunks_exact(self.width())
            .zip(out.chunks_exact_mut(2))
        {
            let n = self.check_row(s)?;
            m[0] = n >= 1;
            m[1] = n >= 2;
        }
        Ok(())
    }

    pub(crate) fn step(
        &self,
        states: &[StateValue],
        actions: &[u32],
        next: &mut [StateValue],
        backward_actions: &mut [u32],
    ) -> Result<()> {
        let w = self.width();
        let rows = self.rows("states of step", states)?;
        self.spec
            .check_len("actions of step", rows, 1, actions.len())?;
        self.spec
            .check_len("next-state buffer of step", rows, w, next.len())?;
        self.spec.check_len(
            "backward-action buffer of step",
            rows,
            1,
            backward_actions.len(),
        )?;
        let k = self.k;
        for (r, &a) in actions.iter().enumerate() {
            let s = &states[r * w..(r + 1) * w];
            let n = self.check_row(s)?;
            let ai = a as usize;
            let reason = if ai > 2 * k {
                Some(format!("forward actions are 0..={}", 2 * k))
            } else if ai == 2 * k {
                Some("the stop action ends the trajectory and has no next state".into())
            } else if n == self.l {
                Some(format!(
                    "the string is complete (length {}): only stop is valid",
                    self.l
                ))
            } else if ai >= k && n == 0 {
                Some(
                    "append is masked at the empty string (prepend instead), so that every \
                     string of length 1 has one parent edge"
                        .into(),
                )
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(self.invalid_action(s, a, reason));
            }
            let o = &mut next[r * w..(r + 1) * w];
            o.fill(self.empty());
            o[0] = (n + 1) as StateValue;
            let blocks = &s[1..=n];
            if ai < k {
                o[1] = a as StateValue;
                o[2..n + 2].copy_from_slice(blocks);
                backward_actions[r] = 0;
            } else {
                o[1..=n].copy_from_slice(blocks);
                o[n + 1] = (ai - k) as StateValue;
                backward_actions[r] = 1;
            }
        }
        Ok(())
    }

    pub(crate) fn backward_step(
        &self,
        states: &[StateValue],
        backward_actions: &[u32],
        prev: &mut [StateValue],
        forward_actions: &mut [u32],
    ) -> Result<()> {
        let w = self.width();
        let rows = self.rows("states of backward_step", states)?;
        self.spec.check_len(
            "backward actions of backward_step",
            rows,
            1,
            backward_actions.len(),
        )?;
        self.spec
            .check_len("parent buffer of backward_step", rows, w, prev.len())?;
        self.spec.check_len(
            "forward-action buffer of backward_step",
            rows,
            1,
            forward_actions.len(),
        )?;
        for (r, &b) in backward_actions.iter().enumerate() {
            let s = &states[r * w..(r + 1) * w];
            let n = self.check_row(s)?;
            let reason = if b > 1 {
                Some("backward actions are 0 (remove first) and 1 (remove last)".to_string())
            } else if n == 0 {
                Some("the empty string has no parent".into())
            } else if b == 1 && n == 1 {
                Some(
                    "remove last is masked at length 1: the single parent edge of a one-block \
                     string is remove first"
                        .into(),
                )
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(self.invalid_action(s, b, reason));
            }
            let o = &mut prev[r * w..(r + 1) * w];
            o.fill(self.empty());
            o[0] = (n - 1) as StateValue;
            if b == 0 {
                o[1..n].copy_from_slice(&s[2..=n]);
                forward_actions[r] = s[1] as u32;
            } else {
                o[1..n].copy_from_slice(&s[1..n]);
                forward_actions[r] = (self.k + s[n] as usize) as u32;
            }
        }
        Ok(())
    }

    pub(crate) fn encode(&self, states: &[StateValue], out: &mut [f32]) -> Result<()> {
        let rows = self.rows("states of encode", states)?;
        let f = self.spec.feature_dim;
        self.spec.check_len("feature buffer", rows, f, out.len())?;
        out.fill(0.0);
        let k1 = self.k + 1;
        for (s, o) in states
            .chunks_exact(self.width())
            .zip(out.chunks_exact_mut(f))
        {
            self.check_row(s)?;
            for (j, &b) in s[1..].iter().enumerate() {
                o[j * k1 + b as usize] = 1.0;
            }
        }
        Ok(())
    }

    fn offsets(&self) -> Result<&[u64]> {
        self.offsets
            .as_deref()
            .ok_or_else(|| CoreError::Unsupported {
                env: self.name.into(),
                capability: "enumeration (the number of states overflows u64)".into(),
            })
    }

    pub(crate) fn state_index(&self, states: &[StateValue], out: &mut [u64]) -> Result<()> {
        let rows = self.rows("states of state_index", states)?;
        self.spec.check_len("index buffer", rows, 1, out.len())?;
        let offsets = self.offsets()?;
        let k = self.k as u64;
        for (s, o) in states.chunks_exact(self.width()).zip(out.iter_mut()) {
            let n = self.check_row(s)?;
            // Fits: the rank is below K^n and offsets[n] + K^n = offsets[n + 1] fits in u64.
            let rank = s[1..=n].iter().fold(0u64, |acc, &b| acc * k + b as u64);
            *o = offsets[n] + rank;
        }
        Ok(())
    }

    pub(crate) fn states_from_index(&self, indices: &[u64], out: &mut [StateValue]) -> Result<()> {
        let w = self.width();
        self.spec.check_len(
            "state buffer of states_from_index",
            indices.len(),
            w,
            out.len(),
        )?;
        let offsets = self.offsets()?;
        let total = offsets[self.l + 1];
        let k = self.k as u64;
        for (&i, row) in indices.iter().zip(out.chunks_exact_mut(w)) {
            if i >= total {
                return Err(self.invalid_state(&[], format!("index {i} is outside 0..{total}")));
            }
            // The largest n with offsets[n] <= i.
            let n = offsets.partition_point(|&o| o <= i) - 1;
            let mut rank = i - offsets[n];
            row.fill(self.empty());
            row[0] = n as StateValue;
            for j in (0..n).rev() {
                row[1 + j] = (rank % k) as StateValue;
                rank /= k;
            }
        }
        Ok(())
    }

    /// The printed form of a state (`""` for `s0`, e.g. `"0a3"`), one symbol per block.
    pub(crate) fn string_of(&self, s: &[StateValue]) -> Result<String> {
        if s.len() != self.width() {
            return Err(self.invalid_state(s, format!("a state row has {} values", self.width())));
        }
        let n = self.check_row(s)?;
        if self.k > SYMBOLS.len() {
            return Err(self.invalid_state(
                s,
                format!("no printed form with more than {} blocks", SYMBOLS.len()),
            ));
        }
        Ok(s[1..=n]
            .iter()
            .map(|&b| SYMBOLS[b as usize] as char)
            .collect())
    }

    /// The readable form of a state: the printed form when every block has a symbol, else the
    /// block indices separated by `.` (`"3.41.7"`).
    pub(crate) fn readable_of(&self, s: &[StateValue]) -> Result<String> {
        if self.k <= SYMBOLS.len() {
            return self.string_of(s);
        }
        if s.len() != self.width() {
            return Err(self.invalid_state(s, format!("a state row has {} values", self.width())));
        }
        let n = self.check_row(s)?;
        let blocks: Vec<String> = s[1..=n].iter().map(|b| b.to_string()).collect();
        Ok(blocks.join("."))
    }

    /// The state row of a printed string (inverse of [`StringDag::string_of`]).
    pub(crate) fn parse(&self, text: &str) -> Result<Vec<StateValue>> {
        let bad = |reason: String| CoreError::InvalidState {
            env: self.name.into(),
            state: vec![],
            reason,
        };
        if text.len() > self.l {
            return Err(bad(format!(
                "string {text:?} is longer than {} blocks",
                self.l
            )));
        }
        let symbols = &SYMBOLS[..self.k.min(SYMBOLS.len())];
        let mut row = vec![self.empty(); self.width()];
        row[0] = text.len() as StateValue;
        for (j, c) in text.bytes().enumerate() {
            let b = symbols.iter().position(|&y| y == c).ok_or_else(|| {
                bad(format!(
                    "string {text:?}: symbol {:?} is not one of the {} block symbols {:?}",
                    c as char,
                    symbols.len(),
                    String::from_utf8_lossy(symbols)
                ))
            })?;
            row[1 + j] = b as StateValue;
        }
        Ok(row)
    }
}

/// Implements `Environment` and `Enumerable` for a type with fields `dag: StringDag` and
/// `config` (serializable), and inherent `fn log_reward_of_blocks(&self, &[StateValue]) -> f64`
/// and `fn modes_monitor(&self) -> ModesMonitor`.
macro_rules! string_environment {
    ($ty:ty) => {
        impl softgfn_core::Environment for $ty {
            fn spec(&self) -> &softgfn_core::EnvSpec {
                self.dag.spec()
            }

            fn params(&self) -> serde_json::Value {
                serde_json::to_value(&self.config).unwrap_or(serde_json::Value::Null)
            }

            fn initial_state(&self, out: &mut [softgfn_core::StateValue]) {
                self.dag.initial_state(out)
            }

            fn forward_masks(
                &self,
                states: &[softgfn_core::StateValue],
                out: &mut [bool],
            ) -> softgfn_core::Result<()> {
                self.dag.forward_masks(states, out)
            }

            fn backward_masks(
                &self,
                states: &[softgfn_core::StateValue],
                out: &mut [bool],
            ) -> softgfn_core::Result<()> {
                self.dag.backward_masks(states, out)
            }

            fn step(
                &self,
                states: &[softgfn_core::StateValue],
                actions: &[u32],
                next: &mut [softgfn_core::StateValue],
                backward_actions: &mut [u32],
            ) -> softgfn_core::Result<()> {
                self.dag.step(states, actions, next, backward_actions)
            }

            fn backward_step(
                &self,
                states: &[softgfn_core::StateValue],
                backward_actions: &[u32],
                prev: &mut [softgfn_core::StateValue],
                forward_actions: &mut [u32],
            ) -> softgfn_core::Result<()> {
                self.dag
                    .backward_step(states, backward_actions, prev, forward_actions)
            }

            fn log_reward(
                &self,
                states: &[softgfn_core::StateValue],
                out: &mut [f64],
            ) -> softgfn_core::Result<()> {
                let rows = self.dag.rows("states of log_reward", states)?;
                self.dag
                    .spec()
                    .check_len("log-reward buffer", rows, 1, out.len())?;
                let w = self.dag.spec().state_width;
                for (s, o) in states.chunks_exact(w).zip(out.iter_mut()) {
                    let blocks = self.dag.complete_blocks(s, "log_reward")?;
                    *o = self.log_reward_of_blocks(blocks);
                }
                Ok(())
            }

            fn encode(
                &self,
                states: &[softgfn_core::StateValue],
                out: &mut [f32],
            ) -> softgfn_core::Result<()> {
                self.dag.encode(states, out)
            }

            fn as_enumerable(&self) -> Option<&dyn softgfn_core::Enumerable> {
                self.dag
                    .num_states()
                    .map(|_| self as &dyn softgfn_core::Enumerable)
            }

            fn monitor(&self) -> Option<Box<dyn softgfn_core::Monitor>> {
                Some(Box::new(self.modes_monitor()))
            }

            fn as_readable(&self) -> Option<&dyn softgfn_core::Readable> {
                Some(self)
            }
        }

        /// The molecule string, one symbol per block (`"0ah3"`; `""` for the empty string).
        impl softgfn_core::Readable for $ty {
            fn readable(&self, state: &[softgfn_core::StateValue]) -> softgfn_core::Result<String> {
                self.dag.readable_of(state)
            }
        }

        impl softgfn_core::Enumerable for $ty {
            fn num_states(&self) -> u64 {
                self.dag.num_states().unwrap_or(u64::MAX)
            }

            fn state_index(
                &self,
                states: &[softgfn_core::StateValue],
                out: &mut [u64],
            ) -> softgfn_core::Result<()> {
                self.dag.state_index(states, out)
            }

            fn states_from_index(
                &self,
                indices: &[u64],
                out: &mut [softgfn_core::StateValue],
            ) -> softgfn_core::Result<()> {
                self.dag.states_from_index(indices, out)
            }
        }
    };
}

pub(crate) use string_environment;

#[cfg(test)]
mod tests {
    use super::*;

    fn dag() -> StringDag {
        StringDag::new("test", 3, 3).unwrap()
    }

    fn step(d: &StringDag, s: &[StateValue], a: u32) -> Result<(Vec<StateValue>, u32)> {
        let mut next = vec![0; d.width()];
        let mut b = [0u32];
        d.step(s, &[a], &mut next, &mut b)?;
        Ok((next, b[0]))
    }

    fn back(d: &StringDag, s: &[StateValue], b: u32) -> Result<(Vec<StateValue>, u32)> {
        let mut prev = vec![0; d.width()];
        let mut a = [0u32];
        d.backward_step(s, &[b], &mut prev, &mut a)?;
        Ok((prev, a[0]))
    }

    #[test]
    fn prepend_and_append_build_strings() {
        let d = dag();
        let s0 = d.parse("").unwrap();
        assert_eq!(s0, vec![0, 3, 3, 3]);
        let (s1, b) = step(&d, &s0, 2).unwrap();
        assert_eq!((d.string_of(&s1).unwrap().as_str(), b), ("2", 0));
        let (s2, b) = step(&d, &s1, 3).unwrap(); // append block 0
        assert_eq!((d.string_of(&s2).unwrap().as_str(), b), ("20", 1));
        let (s3, b) = step(&d, &s2, 1).unwrap(); // prepend block 1
        assert_eq!((d.string_of(&s3).unwrap().as_str(), b), ("120", 0));
        assert_eq!(s3, vec![3, 1, 2, 0]);
        // Complete: only stop, and step rejects everything.
        let mut m = vec![false; 7];
        d.forward_masks(&s3, &mut m).unwrap();
        assert_eq!(m, [false, false, false, false, false, false, true]);
        for a in 0..7 {
            assert!(step(&d, &s3, a).is_err(), "action {a}");
        }
        // Backward steps redo the right forward actions.
        assert_eq!(back(&d, &s3, 0).unwrap(), (d.parse("20").unwrap(), 1));
        assert_eq!(back(&d, &s3, 1).unwrap(), (d.parse("12").unwrap(), 3));
    }

    #[test]
    fn masks_at_the_boundaries() {
        let d = dag();
        let mut m = vec![false; 7];
        d.forward_masks(&d.parse("").unwrap(), &mut m).unwrap();
        assert_eq!(m, [true, true, true, false, false, false, false]);
        assert!(step(&d, &d.parse("").unwrap(), 4).is_err());
        d.forward_masks(&d.parse("1").unwrap(), &mut m).unwrap();
        assert_eq!(m, [true, true, true, true, true, true, false]);
        let mut bm = vec![false; 2];
        for (s, want) in [
            ("", [false, false]),
            ("2", [true, false]),
            ("22", [true, true]),
            ("222", [true, true]),
        ] {
            d.backward_masks(&d.parse(s).unwrap(), &mut bm).unwrap();
            assert_eq!(bm, want, "{s:?}");
        }
        assert!(back(&d, &d.parse("2").unwrap(), 1).is_err());
        assert!(back(&d, &d.parse("").unwrap(), 0).is_err());
        assert!(back(&d, &d.parse("22").unwrap(), 2).is_err());
        // "aaa": both edges lead to the same parent, with different forward actions.
        let s = d.parse("111").unwrap();
        assert_eq!(back(&d, &s, 0).unwrap(), (d.parse("11").unwrap(), 1));
        assert_eq!(back(&d, &s, 1).unwrap(), (d.parse("11").unwrap(), 4));
    }

    #[test]
    fn indices_are_a_bijection() {
        let d = dag();
        let n = d.num_states().unwrap();
        assert_eq!(n, 1 + 3 + 9 + 27);
        let idx: Vec<u64> = (0..n).collect();
        let mut rows = vec![0; n as usize * 4];
        d.states_from_index(&idx, &mut rows).unwrap();
        let mut back_idx = vec![0u64; n as usize];
        d.state_index(&rows, &mut back_idx).unwrap();
        assert_eq!(back_idx, idx);
        assert_eq!(&rows[..4], &[0, 3, 3, 3]);
        assert_eq!(d.string_of(&rows[4 * 13..4 * 14]).unwrap(), "000");
        assert_eq!(d.string_of(&rows[4 * 39..4 * 40]).unwrap(), "222");
        assert!(d.states_from_index(&[n], &mut [0; 4]).is_err());
        // Huge instances are not enumerable rather than wrapped.
        let big = StringDag::new("big", 1000, 7).unwrap();
        assert!(big.num_states().is_none());
        assert!(big.state_index(&big.parse("").unwrap(), &mut [0]).is_err());
    }

    #[test]
    fn bad_rows_and_buffers_are_errors() {
        let d = dag();
        let mut m = vec![false; 7];
        for bad in [
            [4, 0, 0, 0],
            [-1, 3, 3, 3],
            [1, 3, 3, 3],
            [1, 0, 0, 3],
            [0, 3, 3, 7],
        ] {
            let e = d.forward_masks(&bad, &mut m).unwrap_err().to_string();
            assert!(e.contains("invalid state"), "{bad:?}: {e}");
        }
        assert!(d.forward_masks(&[0, 3, 3], &mut m).is_err());
        assert!(d.forward_masks(&[0, 3, 3, 3], &mut m[..6]).is_err());
        assert!(d.encode(&[0, 3, 3, 3], &mut [0.0; 11]).is_err());
        let mut f = vec![0.0; 12];
        d.encode(&d.parse("21").unwrap(), &mut f).unwrap();
        assert_eq!(
            f,
            [0., 0., 1., 0., 0., 1., 0., 0., 0., 0., 0., 1.],
            "one-hot slots, the empty marker included"
        );
        assert!(d.parse("0123").is_err());
        assert!(d.parse("3").is_err());
        let e = d
            .complete_blocks(&d.parse("21").unwrap(), "log_reward")
            .unwrap_err();
        assert!(e.to_string().contains("length 3"), "{e}");
    }
}
