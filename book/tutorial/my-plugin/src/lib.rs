//! `my-plugin`: the plugin written in the Plugins chapter of the softgfn book
//! (book/src/plugins.md). One environment, `words`: words over {a, b} of length at most
//! `max_len`, built by appending one letter at a time, with `log R(x) = a * #a(x) + b * #b(x)`.
//!
//! Build it as a plugin with `cargo build --release --features dynamic` and load it with
//! `softgfn --plugin target/release/libmy_plugin.so ...`.

// ANCHOR: config
use serde::{Deserialize, Serialize};
use softgfn_core::{CoreError, Enumerable, EnvSpec, Environment, Readable, Result, parse_params};

/// The parameters (`env.*` of a run): the longest word and the log-reward of each letter.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WordsConfig {
    /// Longest word, 1..=20.
    pub max_len: usize,
    /// Log-reward of each letter a.
    pub a: f64,
    /// Log-reward of each letter b.
    pub b: f64,
}

impl Default for WordsConfig {
    fn default() -> Self {
        Self {
            max_len: 5,
            a: 1.0,
            b: 0.0,
        }
    }
}
// ANCHOR_END: config

// ANCHOR: env
/// A state is two values, `[len, bits]`: the word's length, and its letters as the low `len` bits
/// of `bits` (bit `j` is letter `j`: 0 for a, 1 for b). Forward actions: 0 appends a, 1 appends
/// b, 2 is the exit (valid at every non-empty word). The one backward action, 0, removes the last
/// letter: every word has one parent, so the DAG is a tree.
pub struct Words {
    config: WordsConfig,
    spec: EnvSpec,
}

impl Words {
    /// Builds a validated environment.
    pub fn new(config: WordsConfig) -> Result<Self> {
        let n = config.max_len;
        if !(1..=20).contains(&n) {
            return Err(CoreError::InvalidParameter {
                env: "words".into(),
                field: "max_len".into(),
                value: n.to_string(),
                expected: "an integer in 1..=20".into(),
            });
        }
        let spec = EnvSpec {
            name: "words".into(),
            state_width: 2,
            num_actions: 3,
            num_backward_actions: 1,
            feature_dim: 2 * n,
            max_trajectory_length: n + 1,
            exit_action: Some(2),
        };
        Ok(Self { config, spec })
    }

    /// Builds from (possibly partial) JSON parameters; missing keys take their defaults.
    pub fn from_params(params: &serde_json::Value) -> Result<Self> {
        Self::new(parse_params("words", params)?)
    }

    /// The `(len, bits)` of each row of a batch, after checking that every buffer `(length,
    /// values per row)` matches the number of rows.
    fn rows<'a>(
        &'a self,
        states: &'a [i32],
        buffers: &[(usize, usize)],
    ) -> Result<impl Iterator<Item = Result<(usize, i32)>> + 'a> {
        let rows = self.spec.rows_of("states", states)?;
        for &(found, per_row) in buffers {
            self.spec.check_len("buffer", rows, per_row, found)?;
        }
        Ok(states.chunks_exact(2).map(|s| {
            let (len, bits) = (s[0], s[1]);
            if (0..=self.config.max_len as i32).contains(&len) && (0..1 << len).contains(&bits) {
                return Ok((len as usize, bits));
            }
            Err(CoreError::InvalidState {
                env: "words".into(),
                state: s.to_vec(),
                reason: "a state is [len, bits] with len <= max_len and bits < 2^len".into(),
            })
        }))
    }
}

/// The error of an action that is not valid at word `(len, bits)`.
fn bad_action((len, bits): (usize, i32), action: u32) -> CoreError {
    CoreError::InvalidAction {
        env: "words".into(),
        state: vec![len as i32, bits],
        action,
        reason: "step takes 0 or 1 below max_len; backward_step takes 0 at a non-empty word".into(),
    }
}

impl Environment for Words {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).unwrap_or_default()
    }

    fn initial_state(&self, out: &mut [i32]) {
        out.fill(0); // the empty word: [0, 0]
    }

    fn forward_masks(&self, states: &[i32], out: &mut [bool]) -> Result<()> {
        let rows = self.rows(states, &[(out.len(), 3)])?;
        for (w, m) in rows.zip(out.chunks_exact_mut(3)) {
            let len = w?.0;
            let room = len < self.config.max_len;
            m.copy_from_slice(&[room, room, len > 0]);
        }
        Ok(())
    }

    fn backward_masks(&self, states: &[i32], out: &mut [bool]) -> Result<()> {
        for (w, m) in self.rows(states, &[(out.len(), 1)])?.zip(out) {
            *m = w?.0 > 0;
        }
        Ok(())
    }

    fn step(
        &self,
        states: &[i32],
        actions: &[u32],
        next: &mut [i32],
        back: &mut [u32],
    ) -> Result<()> {
        let buffers = [(actions.len(), 1), (next.len(), 2), (back.len(), 1)];
        let rows = self.rows(states, &buffers)?.zip(actions);
        for ((w, &a), (n, b)) in rows.zip(next.chunks_exact_mut(2).zip(back)) {
            let (len, bits) = w?;
            if a >= 2 || len == self.config.max_len {
                return Err(bad_action((len, bits), a));
            }
            n.copy_from_slice(&[len as i32 + 1, bits | (a as i32) << len]);
            *b = 0;
        }
        Ok(())
    }

    fn backward_step(
        &self,
        states: &[i32],
        back: &[u32],
        prev: &mut [i32],
        fwd: &mut [u32],
    ) -> Result<()> {
        let buffers = [(back.len(), 1), (prev.len(), 2), (fwd.len(), 1)];
        let rows = self.rows(states, &buffers)?.zip(back);
        for ((w, &b), (p, a)) in rows.zip(prev.chunks_exact_mut(2).zip(fwd)) {
            let (len, bits) = w?;
            if b != 0 || len == 0 {
                return Err(bad_action((len, bits), b));
            }
            let last = 1 << (len - 1);
            p.copy_from_slice(&[len as i32 - 1, bits & !last]);
            *a = (bits & last != 0) as u32;
        }
        Ok(())
    }

    fn log_reward(&self, states: &[i32], out: &mut [f64]) -> Result<()> {
        for (w, r) in self.rows(states, &[(out.len(), 1)])?.zip(out) {
            let (len, bits) = w?;
            let num_b = bits.count_ones() as f64;
            *r = self.config.a * (len as f64 - num_b) + self.config.b * num_b;
        }
        Ok(())
    }

    /// Features: for each of the `max_len` slots, one-hot `[is a, is b]` (both 0 past the end).
    fn encode(&self, states: &[i32], out: &mut [f32]) -> Result<()> {
        let width = 2 * self.config.max_len;
        let rows = self.rows(states, &[(out.len(), width)])?;
        for (w, f) in rows.zip(out.chunks_exact_mut(width)) {
            let (len, bits) = w?;
            f.fill(0.0);
            for j in 0..len {
                f[2 * j + (bits >> j & 1) as usize] = 1.0;
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
// ANCHOR_END: env

// ANCHOR: enumerable
/// Words of length `len` get the indices `2^len - 1 + bits`: `2^(max_len+1) - 1` states in all.
impl Enumerable for Words {
    fn num_states(&self) -> u64 {
        (1 << (self.config.max_len + 1)) - 1
    }

    fn state_index(&self, states: &[i32], out: &mut [u64]) -> Result<()> {
        for (w, i) in self.rows(states, &[(out.len(), 1)])?.zip(out) {
            let (len, bits) = w?;
            *i = (1 << len) - 1 + bits as u64;
        }
        Ok(())
    }

    fn states_from_index(&self, indices: &[u64], out: &mut [i32]) -> Result<()> {
        self.spec.check_len("states", indices.len(), 2, out.len())?;
        for (&i, s) in indices.iter().zip(out.chunks_exact_mut(2)) {
            if i >= self.num_states() {
                let reason = format!("index {i} is outside 0..{}", self.num_states());
                return Err(CoreError::InvalidState {
                    env: "words".into(),
                    state: vec![],
                    reason,
                });
            }
            let len = (i + 1).ilog2(); // 2^len <= i + 1 < 2^(len + 1)
            s.copy_from_slice(&[len as i32, (i + 1 - (1 << len)) as i32]);
        }
        Ok(())
    }
}
// ANCHOR_END: enumerable

// ANCHOR: readable
/// The word itself, `"abba"` (`""` for the empty word), wherever softgfn shows a state to people.
impl Readable for Words {
    fn readable(&self, state: &[i32]) -> Result<String> {
        let (len, bits) = self.rows(state, &[(1, 1)])?.next().unwrap_or(Ok((0, 0)))?;
        Ok((0..len)
            .map(|j| if bits >> j & 1 == 1 { 'b' } else { 'a' })
            .collect())
    }
}
// ANCHOR_END: readable

// ANCHOR: export
softgfn_plugin::environments!("words" => Words(WordsConfig): "words over {a, b} of length <= max_len built by appending letters; log R = a #a + b #b");
// ANCHOR_END: export

// ANCHOR: test
#[cfg(test)]
mod tests {
    use super::*;
    use softgfn_core::exact::StateGraph;

    #[test]
    fn words_pass_check_env_and_log_z_has_its_closed_form() {
        let config = WordsConfig::default();
        let env = Words::new(config.clone()).unwrap();
        let report = softgfn_core::check_env(&env).unwrap();
        assert!(report.exhaustive, "all 63 states are checked");

        // Z = sum over lengths k = 1..=max_len of (e^a + e^b)^k.
        let q = config.a.exp() + config.b.exp();
        let z: f64 = (1..=config.max_len as i32).map(|k| q.powi(k)).sum();
        let graph = StateGraph::build(&env, 1_000).unwrap();
        assert!((graph.target().log_z - z.ln()).abs() < 1e-9);

        assert!(Words::from_params(&serde_json::json!({ "max_len": 0 })).is_err());
        assert_eq!(env.readable(&[4, 0b0110]).unwrap(), "abba");
        assert!(env.readable(&[4, 0b0110, 0]).is_err());
    }
}
// ANCHOR_END: test
