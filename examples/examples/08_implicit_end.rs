//! An environment with no exit action: words of exactly `length` letters over {a, b}, written
//! left to right. Every trajectory ends by itself when the word is full (an implicit end): a
//! full word has no valid forward action, and it is the only kind of terminal state. The
//! forward actions are the two letters, nothing else: `num_actions` is 2, and `exit_action` is
//! `None` (an exit that does not exist is not counted). With `log R(x) = 0.7 #a + 0.3 #b` the
//! partition function is `Z = (e^0.7 + e^0.3)^length`.
//!
//! The example runs `check_env` on it, compares the exact `log Z` of the enumerated DAG with the
//! closed form, registers it (as `full-words`) and trains trajectory balance on it.
//!
//! Run: `cargo run --release -p softgfn-examples --example 08_implicit_end -- [iterations]`

use softgfn_core::exact::StateGraph;
use softgfn_core::{CoreError, Enumerable, EnvSpec, Environment, Result, StateValue};
use softgfn_train::{Trainer, apply_override, resolve};

// Linking the balance algorithms registers `tb`, `db` and `subtb`.
use softgfn_gflownet as _;

/// Log-rewards of the letters a and b.
const LOG_R: [f64; 2] = [0.7, 0.3];

// ANCHOR: spec
/// Slot `i` holds 0 (blank), 1 (a) or 2 (b); the slots fill from the left. Forward action `c`
/// (0 or 1) writes letter `c + 1` into the first blank slot; the one backward action, 0, clears
/// the last filled slot. There is no exit: a full word ends the trajectory by itself.
struct FullWords {
    spec: EnvSpec,
}

impl FullWords {
    fn new(length: usize) -> Self {
        let spec = EnvSpec {
            name: "full-words".into(),
            state_width: length,
            num_actions: 2,    // the two letters; no exit action, so none is counted
            exit_action: None, // every trajectory ends implicitly, at a full word
            num_backward_actions: 1,
            feature_dim: 3 * length,
            max_trajectory_length: length, // `length` letters, no exit step after them
        };
        Self { spec }
    }
}
// ANCHOR_END: spec

impl FullWords {
    /// The number of filled slots of a row, checking that the row is a word filled from the left.
    fn filled(&self, s: &[StateValue]) -> Result<usize> {
        let k = s.iter().take_while(|&&v| v != 0).count();
        if s[..k].iter().any(|&v| !(1..=2).contains(&v)) || s[k..].iter().any(|&v| v != 0) {
            return Err(CoreError::InvalidState {
                env: self.spec.name.clone(),
                state: s.to_vec(),
                reason: "slots must be 1 (a) or 2 (b) followed by blanks (0)".into(),
            });
        }
        Ok(k)
    }

    fn invalid(&self, s: &[StateValue], action: u32, reason: &str) -> CoreError {
        CoreError::InvalidAction {
            env: self.spec.name.clone(),
            state: s.to_vec(),
            action,
            reason: reason.into(),
        }
    }
}

impl Environment for FullWords {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({ "length": self.spec.state_width })
    }

    fn initial_state(&self, out: &mut [StateValue]) {
        out.fill(0);
    }

    // ANCHOR: masks
    fn forward_masks(&self, states: &[StateValue], out: &mut [bool]) -> Result<()> {
        let rows = self.spec.rows_of("forward masks", states)?;
        self.spec.check_len("forward masks", rows, 2, out.len())?;
        let w = self.spec.state_width;
        for (s, m) in states.chunks_exact(w).zip(out.chunks_exact_mut(2)) {
            // Both letters while a slot is blank; a full word has no valid action: it ends here.
            m.fill(self.filled(s)? < w);
        }
        Ok(())
    }
    // ANCHOR_END: masks

    fn backward_masks(&self, states: &[StateValue], out: &mut [bool]) -> Result<()> {
        let rows = self.spec.rows_of("backward masks", states)?;
        self.spec.check_len("backward masks", rows, 1, out.len())?;
        for (s, m) in states
            .chunks_exact(self.spec.state_width)
            .zip(out.iter_mut())
        {
            *m = self.filled(s)? > 0;
        }
        Ok(())
    }

    fn step(
        &self,
        states: &[StateValue],
        actions: &[u32],
        next: &mut [StateValue],
        back: &mut [u32],
    ) -> Result<()> {
        let w = self.spec.state_width;
        let rows = self.spec.rows_of("step", states)?;
        self.spec
            .check_len("step actions", rows, 1, actions.len())?;
        self.spec.check_len("step next", rows, w, next.len())?;
        self.spec
            .check_len("step backward actions", rows, 1, back.len())?;
        for (r, &a) in actions.iter().enumerate() {
            let s = &states[r * w..(r + 1) * w];
            let k = self.filled(s)?;
            if a > 1 || k == w {
                return Err(self.invalid(s, a, "a letter (0 or 1) into a word that is not full"));
            }
            next[r * w..(r + 1) * w].copy_from_slice(s);
            next[r * w + k] = 1 + a as StateValue;
            back[r] = 0;
        }
        Ok(())
    }

    fn backward_step(
        &self,
        states: &[StateValue],
        back: &[u32],
        prev: &mut [StateValue],
        fwd: &mut [u32],
    ) -> Result<()> {
        let w = self.spec.state_width;
        let rows = self.spec.rows_of("backward step", states)?;
        self.spec
            .check_len("backward actions", rows, 1, back.len())?;
        self.spec
            .check_len("backward step prev", rows, w, prev.len())?;
        self.spec
            .check_len("backward step forward actions", rows, 1, fwd.len())?;
        for (r, &b) in back.iter().enumerate() {
            let s = &states[r * w..(r + 1) * w];
            let k = self.filled(s)?;
            if b != 0 || k == 0 {
                return Err(self.invalid(
                    s,
                    b,
                    "action 0 clears the last letter of a non-empty word",
                ));
            }
            prev[r * w..(r + 1) * w].copy_from_slice(s);
            prev[r * w + k - 1] = 0;
            fwd[r] = (s[k - 1] - 1) as u32;
        }
        Ok(())
    }

    fn log_reward(&self, states: &[StateValue], out: &mut [f64]) -> Result<()> {
        let rows = self.spec.rows_of("log rewards", states)?;
        self.spec.check_len("log rewards", rows, 1, out.len())?;
        for (s, o) in states
            .chunks_exact(self.spec.state_width)
            .zip(out.iter_mut())
        {
            self.filled(s)?;
            *o = s
                .iter()
                .filter(|&&v| v != 0)
                .map(|&v| LOG_R[v as usize - 1])
                .sum();
        }
        Ok(())
    }

    fn encode(&self, states: &[StateValue], out: &mut [f32]) -> Result<()> {
        let rows = self.spec.rows_of("features", states)?;
        self.spec
            .check_len("features", rows, self.spec.feature_dim, out.len())?;
        out.fill(0.0);
        for s in states.chunks_exact(self.spec.state_width) {
            self.filled(s)?;
        }
        for (k, &v) in states.iter().enumerate() {
            out[3 * k + v as usize] = 1.0; // one-hot of every slot
        }
        Ok(())
    }

    fn as_enumerable(&self) -> Option<&dyn Enumerable> {
        Some(self)
    }
}

/// Index of a word of `k` letters: `2^k - 1` (the words shorter than it) plus its letters read as
/// a binary number (a before b), a bijection onto `0..2^(length + 1) - 1`.
impl Enumerable for FullWords {
    fn num_states(&self) -> u64 {
        (1u64 << (self.spec.state_width + 1)) - 1
    }

    fn state_index(&self, states: &[StateValue], out: &mut [u64]) -> Result<()> {
        let rows = self.spec.rows_of("state index", states)?;
        self.spec.check_len("state index", rows, 1, out.len())?;
        for (s, o) in states
            .chunks_exact(self.spec.state_width)
            .zip(out.iter_mut())
        {
            let k = self.filled(s)?;
            let bits = s[..k].iter().fold(0u64, |acc, &v| 2 * acc + (v - 1) as u64);
            *o = (1u64 << k) - 1 + bits;
        }
        Ok(())
    }

    fn states_from_index(&self, indices: &[u64], out: &mut [StateValue]) -> Result<()> {
        let w = self.spec.state_width;
        self.spec
            .check_len("states from index", indices.len(), w, out.len())?;
        for (&i, row) in indices.iter().zip(out.chunks_exact_mut(w)) {
            if i >= self.num_states() {
                return Err(CoreError::InvalidState {
                    env: self.spec.name.clone(),
                    state: Vec::new(),
                    reason: format!("index {i} is not below {}", self.num_states()),
                });
            }
            let k = (i + 1).ilog2() as usize; // 2^k - 1 <= i < 2^(k+1) - 1
            let bits = i + 1 - (1u64 << k);
            row.fill(0);
            for (j, v) in row[..k].iter_mut().enumerate() {
                *v = 1 + (bits >> (k - 1 - j) & 1) as StateValue;
            }
        }
        Ok(())
    }
}

softgfn_core::inventory::submit! {
    softgfn_core::EnvRegistration {
        name: "full-words",
        summary: "words of exactly 4 letters over {a, b}, no exit action: a full word ends by itself (example 08)",
        source: "softgfn-examples",
        default_params: || serde_json::json!({ "length": 4 }),
        build: |_| Ok(Box::new(FullWords::new(4))),
    }
}

/// The closed form `log Z = length * ln(e^0.7 + e^0.3)`.
fn log_z_closed_form(length: usize) -> f64 {
    length as f64 * (LOG_R[0].exp() + LOG_R[1].exp()).ln()
}

fn main() -> anyhow::Result<()> {
    let iterations: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1000);

    let env = FullWords::new(4);
    println!("{}", softgfn_core::check_env(&env)?);
    // Enumerate at most 1,000 states (an error beyond): 31 here.
    let graph = StateGraph::build(&env, 1_000)?;
    let log_z = graph.target().log_z;
    println!(
        "{} states, {} terminal (the full words); log Z = {log_z:.6}, closed form {:.6}",
        graph.num_states(),
        graph.num_terminal,
        log_z_closed_form(4)
    );
    anyhow::ensure!((log_z - log_z_closed_form(4)).abs() < 1e-9);

    let mut table = toml::Table::new();
    for kv in [
        "env.name=full-words",
        "algo.name=tb",
        "algo.hidden_dim=64",
        "eval.interval=100",
        "seed=1",
    ] {
        apply_override(&mut table, kv)?;
    }
    apply_override(&mut table, &format!("iterations={iterations}"))?;
    let (config, env) = resolve(table)?;
    let mut trainer = Trainer::new(config, env)?;
    let summary = trainer.run(&mut Vec::new(), &mut ())?;
    let last = &summary.last;
    println!(
        "TB after {} iterations: exact_l1 {:.4}, log Z learned {:.4} (true {:.4})",
        last.iteration,
        last.exact_l1.unwrap_or(f64::NAN),
        last.log_z_learned.unwrap_or(f64::NAN),
        last.log_z_true.unwrap_or(f64::NAN),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_words_pass_check_env_and_log_z_has_its_closed_form() {
        for length in 1..=6 {
            let env = FullWords::new(length);
            let report = softgfn_core::check_env(&env).unwrap();
            assert!(report.exhaustive);
            assert_eq!(report.states_checked as u64, env.num_states());
            let graph = StateGraph::build(&env, 1_000).unwrap();
            assert_eq!(graph.num_terminal, 1 << length, "the full words only");
            assert!((graph.target().log_z - log_z_closed_form(length)).abs() < 1e-9);
        }
    }

    #[test]
    fn a_full_word_has_no_valid_action_and_no_exit_is_counted() {
        let env = FullWords::new(3);
        assert_eq!(env.spec().num_actions, 2);
        assert_eq!(env.spec().exit_action, None);
        let mut m = [true; 2];
        env.forward_masks(&[1, 2, 1], &mut m).unwrap();
        assert_eq!(m, [false, false]);
        env.forward_masks(&[1, 2, 0], &mut m).unwrap();
        assert_eq!(m, [true, true]);
        assert!(
            env.forward_masks(&[0, 2, 0], &mut m).is_err(),
            "a gap is no word"
        );
    }
}
