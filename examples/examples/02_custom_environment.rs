//! A custom environment in one screen of code: words of `length` slots (default 3) over {a, b},
//! filled in any order. A word with `k` filled slots is reached by `k!` orders, so the state
//! graph is a DAG, not a tree. The exit is allowed once at least one slot is filled; a full word
//! has no valid action at all and ends the trajectory by itself (an implicit end). Both kinds of
//! terminal states are objects `x` with `log R(x) = 0.7 #a + 0.3 #b`.
//!
//! The example runs `check_env` on it, computes the exact target `R/Z` and `log Z`, registers it
//! (so that run configs can name it `slots`) and trains trajectory balance on it through the
//! library.
//!
//! Run: `cargo run --release -p softgfn-examples --example 02_custom_environment -- [iterations]`

use softgfn_core::exact::StateGraph;
use softgfn_core::{
    CoreError, Enumerable, EnvSpec, Environment, Result, StateValue, UniformBackward,
};
use softgfn_train::{EvalRecord, Trainer, apply_override, resolve};

// Linking the balance algorithms registers `tb`, `db` and `subtb`.
use softgfn_gflownet as _;

// ANCHOR: env
/// Slot `i` holds 0 (blank), 1 (a) or 2 (b). Forward action `2i + c` writes letter `c + 1` into
/// the blank slot `i`; action `2 * length` is the exit. Backward action `i` clears slot `i`.
struct Slots {
    spec: EnvSpec,
}

impl Slots {
    fn new(length: usize) -> Self {
        let spec = EnvSpec {
            name: "slots".into(),
            state_width: length,
            num_actions: 2 * length + 1,
            num_backward_actions: length,
            feature_dim: 3 * length,
            max_trajectory_length: length + 1,
            exit_action: Some(2 * length as u32),
        };
        Self { spec }
    }

    fn invalid(&self, s: &[StateValue], action: u32, reason: &str) -> CoreError {
        CoreError::InvalidAction {
            env: "slots".into(),
            state: s.to_vec(),
            action,
            reason: reason.into(),
        }
    }
}

impl Environment for Slots {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({ "length": self.spec.state_width })
    }

    fn initial_state(&self, out: &mut [StateValue]) {
        out.fill(0);
    }

    fn forward_masks(&self, states: &[StateValue], out: &mut [bool]) -> Result<()> {
        let (w, na) = (self.spec.state_width, self.spec.num_actions);
        for (s, m) in states.chunks_exact(w).zip(out.chunks_exact_mut(na)) {
            for (i, &v) in s.iter().enumerate() {
                (m[2 * i], m[2 * i + 1]) = (v == 0, v == 0);
            }
            let filled = s.iter().filter(|&&v| v != 0).count();
            m[2 * w] = filled > 0 && filled < w; // exit; a full word ends by itself
        }
        Ok(())
    }

    fn backward_masks(&self, states: &[StateValue], out: &mut [bool]) -> Result<()> {
        for (o, &v) in out.iter_mut().zip(states) {
            *o = v != 0;
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
        for (r, &a) in actions.iter().enumerate() {
            let (s, slot) = (&states[r * w..(r + 1) * w], a as usize / 2);
            if slot >= w || s[slot] != 0 {
                return Err(self.invalid(s, a, "the slot is filled, or this is the exit"));
            }
            next[r * w..(r + 1) * w].copy_from_slice(s);
            next[r * w + slot] = 1 + (a % 2) as StateValue;
            back[r] = slot as u32;
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
        for (r, &b) in back.iter().enumerate() {
            let (s, slot) = (&states[r * w..(r + 1) * w], b as usize);
            if slot >= w || s[slot] == 0 {
                return Err(self.invalid(s, b, "the slot is blank"));
            }
            prev[r * w..(r + 1) * w].copy_from_slice(s);
            prev[r * w + slot] = 0;
            fwd[r] = (2 * slot) as u32 + (s[slot] - 1) as u32;
        }
        Ok(())
    }

    fn log_reward(&self, states: &[StateValue], out: &mut [f64]) -> Result<()> {
        let w = self.spec.state_width;
        for (s, o) in states.chunks_exact(w).zip(out.iter_mut()) {
            *o = s.iter().map(|&v| [0.0, 0.7, 0.3][v as usize]).sum();
        }
        Ok(())
    }

    fn encode(&self, states: &[StateValue], out: &mut [f32]) -> Result<()> {
        out.fill(0.0);
        for (k, &v) in states.iter().enumerate() {
            out[3 * k + v as usize] = 1.0; // one-hot of every slot
        }
        Ok(())
    }

    fn as_enumerable(&self) -> Option<&dyn Enumerable> {
        Some(self)
    }
}

/// Index of a word: its slots read as a base-3 number (a bijection onto `0..3^length`).
impl Enumerable for Slots {
    fn num_states(&self) -> u64 {
        3u64.pow(self.spec.state_width as u32)
    }

    fn state_index(&self, states: &[StateValue], out: &mut [u64]) -> Result<()> {
        for (s, o) in states
            .chunks_exact(self.spec.state_width)
            .zip(out.iter_mut())
        {
            *o = s.iter().rev().fold(0, |acc, &v| 3 * acc + v as u64);
        }
        Ok(())
    }

    fn states_from_index(&self, indices: &[u64], out: &mut [StateValue]) -> Result<()> {
        for (&i, row) in indices
            .iter()
            .zip(out.chunks_exact_mut(self.spec.state_width))
        {
            let mut x = i;
            for v in row.iter_mut() {
                (*v, x) = ((x % 3) as StateValue, x / 3);
            }
        }
        Ok(())
    }
}
// ANCHOR_END: env

// ANCHOR: register
softgfn_core::inventory::submit! {
    softgfn_core::EnvRegistration {
        name: "slots",
        summary: "words of `length` slots over {a, b}, filled in any order (example 02)",
        source: "softgfn-examples",
        default_params: || serde_json::json!({ "length": 3 }),
        build: |params| {
            let length = params.get("length").and_then(|v| v.as_u64()).unwrap_or(3);
            if !(1..=8).contains(&length) {
                return Err(CoreError::InvalidParameter {
                    env: "slots".into(),
                    field: "length".into(),
                    value: params["length"].to_string(),
                    expected: "an integer in 1..=8".into(),
                });
            }
            Ok(Box::new(Slots::new(length as usize)))
        },
    }
}
// ANCHOR_END: register

fn word(s: &[StateValue]) -> String {
    s.iter().map(|&v| ['_', 'a', 'b'][v as usize]).collect()
}

fn main() -> anyhow::Result<()> {
    let iterations: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1000);

    // ANCHOR: check
    let env = Slots::new(3);
    println!("{}", softgfn_core::check_env(&env)?);
    let graph = StateGraph::build(&env, 1_000)?;
    let target = graph.target();
    let flows = graph.flows(&UniformBackward);
    println!(
        "{} states, {} terminal; log Z = {:.6}; log F(s0) with a uniform P_B = {:.6}",
        graph.num_states(),
        graph.num_terminal,
        target.log_z,
        flows.log_z
    );
    let mut objects: Vec<usize> = (0..graph.num_states())
        .filter(|&i| graph.terminal[i])
        .collect();
    objects.sort_by(|&a, &b| target.probs[b].total_cmp(&target.probs[a]));
    for &i in objects.iter().take(4) {
        println!(
            "  R(x)/Z = {:.4} for x = {}",
            target.probs[i],
            word(graph.state(i))
        );
    }
    // ANCHOR_END: check

    // ANCHOR: train
    let mut table = toml::Table::new();
    for kv in [
        "env.name=slots",
        "algo.name=tb",
        "algo.hidden_dim=64", // a small network is plenty for 27 states
        "eval.interval=100",
        "seed=1",
    ] {
        apply_override(&mut table, kv)?;
    }
    apply_override(&mut table, &format!("iterations={iterations}"))?;
    let (config, env) = resolve(table)?;
    let mut trainer = Trainer::new(config, env)?;
    let mut records: Vec<EvalRecord> = Vec::new();
    let summary = trainer.run(&mut records, &mut ())?;
    let last = &summary.last;
    println!(
        "TB after {} iterations: exact_l1 {:.4}, log Z learned {:.4} (true {:.4})",
        last.iteration,
        last.exact_l1.unwrap_or(f64::NAN),
        last.log_z_learned.unwrap_or(f64::NAN),
        last.log_z_true.unwrap_or(f64::NAN),
    );
    // ANCHOR_END: train
    Ok(())
}
