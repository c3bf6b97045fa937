//! `check_env` on `sehfrag` (with its declared equivalence), a planted wrong parent that it
//! catches, and the paper's `P_B` over every construction order of small block libraries.

mod common;

use std::collections::BTreeMap;

use softgfn_core::{
    BackwardPolicy, CheckOptions, CoreError, EnvSpec, Environment, EnvironmentExt, Result,
    StateEquivalence, StateValue, UniformBackward, check_env, check_env_with,
};
use softgfn_sehfrag::{Sehfrag, SehfragConfig, flat_action, split_action};

fn small(blocks: &[usize], max_blocks: usize) -> Sehfrag {
    Sehfrag::new(SehfragConfig {
        blocks: blocks.to_vec(),
        max_blocks,
        ..SehfragConfig::default()
    })
    .unwrap()
}

#[test]
fn check_env_passes_on_the_paper_instance_and_a_small_library() {
    let env = Sehfrag::new(SehfragConfig::default()).unwrap();
    let report = check_env_with(
        &env,
        &CheckOptions {
            rollouts: 24,
            ..CheckOptions::default()
        },
    )
    .unwrap();
    assert!(report.states_checked > 50, "{report}");
    let q1 = Sehfrag::new(SehfragConfig {
        stale_parent_count: true,
        ..SehfragConfig::default()
    })
    .unwrap();
    check_env_with(
        &q1,
        &CheckOptions {
            rollouts: 24,
            seed: 3,
            ..CheckOptions::default()
        },
    )
    .unwrap();
    check_env(&small(&[1, 2, 14], 4)).unwrap();
}

/// `sehfrag` with one thing changed.
struct Planted {
    inner: Sehfrag,
    /// Drop the declared equivalence.
    no_equivalence: bool,
    /// Re-add a removed earlier block through the next stem (a wrong parent action).
    wrong_stem: bool,
}

impl Environment for Planted {
    fn spec(&self) -> &EnvSpec {
        self.inner.spec()
    }
    fn params(&self) -> serde_json::Value {
        self.inner.params()
    }
    fn initial_state(&self, out: &mut [StateValue]) {
        self.inner.initial_state(out)
    }
    fn forward_masks(&self, s: &[StateValue], out: &mut [bool]) -> Result<()> {
        self.inner.forward_masks(s, out)
    }
    fn backward_masks(&self, s: &[StateValue], out: &mut [bool]) -> Result<()> {
        self.inner.backward_masks(s, out)
    }
    fn step(&self, s: &[StateValue], a: &[u32], n: &mut [StateValue], b: &mut [u32]) -> Result<()> {
        self.inner.step(s, a, n, b)
    }
    fn backward_step(
        &self,
        s: &[StateValue],
        b: &[u32],
        p: &mut [StateValue],
        a: &mut [u32],
    ) -> Result<()> {
        self.inner.backward_step(s, b, p, a)?;
        if self.wrong_stem && s[0] >= 3 && (b[0] as i32) < s[0] - 1 {
            let (stem, block) = split_action(a[0]);
            let stems = self.inner.parse(p)?.stems(self.inner.table()).len();
            a[0] = flat_action((stem + 1) % stems, block);
        }
        Ok(())
    }
    fn log_reward(&self, s: &[StateValue], out: &mut [f64]) -> Result<()> {
        self.inner.log_reward(s, out)
    }
    fn encode(&self, s: &[StateValue], out: &mut [f32]) -> Result<()> {
        self.inner.encode(s, out)
    }
    fn as_state_equivalence(&self) -> Option<&dyn StateEquivalence> {
        if self.no_equivalence {
            None
        } else {
            Some(&self.inner)
        }
    }
}

fn property_of(e: CoreError) -> &'static str {
    match e {
        CoreError::CheckFailed { property, .. } => property,
        other => panic!("expected a check failure, got {other}"),
    }
}

#[test]
fn check_env_catches_a_wrong_parent_and_needs_the_equivalence() {
    let opts = CheckOptions {
        rollouts: 8,
        ..CheckOptions::default()
    };
    let wrong = Planted {
        inner: small(&[1, 2, 14], 4),
        no_equivalence: false,
        wrong_stem: true,
    };
    let e = check_env_with(&wrong, &opts).unwrap_err();
    assert!(e.to_string().contains("not equivalent"), "{e}");
    assert_eq!(property_of(e), "step inverts backward_step");
    // Without the declared equivalence the paper's parents fail the exact check.
    let bare = Planted {
        inner: small(&[1, 2, 14], 4),
        no_equivalence: true,
        wrong_stem: false,
    };
    assert_eq!(
        property_of(check_env_with(&bare, &opts).unwrap_err()),
        "step inverts backward_step"
    );
}

/// Every complete trajectory from `s0`: `(terminal row, product of the uniform P_B over it)`.
fn construction_orders(env: &Sehfrag) -> Vec<(Vec<StateValue>, f64)> {
    fn walk(env: &Sehfrag, s: Vec<StateValue>, w: f64, out: &mut Vec<(Vec<StateValue>, f64)>) {
        let m = env.forward_mask_of(&s).unwrap();
        if m[0] || !m.iter().any(|&v| v) {
            out.push((s.clone(), w));
        }
        for a in (1..m.len()).filter(|&a| m[a]) {
            let (next, b) = env.step_one(&s, a as u32).unwrap();
            let pb = UniformBackward
                .log_prob(&env.backward_mask_of(&next).unwrap(), b)
                .exp();
            walk(env, next, w * pb, out);
        }
    }
    let mut out = Vec::new();
    walk(env, env.initial_row(), 1.0, &mut out);
    out
}

/// Per molecule (canonical key with stems, so one reward each): `W(x) = sum over construction
/// orders of prod P_B`, and `R(x)`.
fn weights(env: &Sehfrag) -> BTreeMap<Vec<StateValue>, (f64, f64)> {
    let mut w: BTreeMap<Vec<StateValue>, (f64, f64)> = BTreeMap::new();
    for (s, p) in construction_orders(env) {
        let r = env.log_reward_of(&s).unwrap().exp();
        let e = w
            .entry(env.canonical_key_with_stems(&s).unwrap())
            .or_insert((0.0, r));
        assert!((e.1 - r).abs() <= 1e-9 * r, "one reward per molecule");
        e.0 += p;
    }
    w
}

/// Total variation between the sampler the paper's `P_B` trains (`x ~ W(x) R(x)`) and `R / Z`.
fn tv(w: &BTreeMap<Vec<StateValue>, (f64, f64)>) -> f64 {
    let z: f64 = w.values().map(|v| v.1).sum();
    let zw: f64 = w.values().map(|v| v.0 * v.1).sum();
    0.5 * w
        .values()
        .map(|v| (v.0 * v.1 / zw - v.1 / z).abs())
        .sum::<f64>()
}

/// `(molecules, molecules with W = 1, min W, max W, TV)` of a library.
fn summary(env: &Sehfrag) -> (usize, usize, f64, f64, f64) {
    let w = weights(env);
    let ws: Vec<f64> = w.values().map(|v| v.0).collect();
    let exact = ws.iter().filter(|x| (*x - 1.0).abs() < 1e-12).count();
    let (lo, hi) = ws
        .iter()
        .fold((f64::MAX, 0.0f64), |(a, b), &x| (a.min(x), b.max(x)));
    (w.len(), exact, lo, hi, tv(&w))
}

#[test]
fn the_paper_p_b_over_every_construction_order_of_small_libraries() {
    // F, N, cyclopropane (one attachment atom each), up to 3 blocks: every molecule ends by
    // itself at 2 blocks with its first block's atom 0 marked (quirk Q3), so "F then N" and
    // "N then F" are two molecules of one construction order each, both with 2 leaves.
    let (n, exact, lo, hi, tv) = summary(&small(&[25, 26, 67], 3));
    eprintln!(
        "F/N/C1CC1, 3 blocks: {n} molecules, W = 1 for {exact}, W in [{lo}, {hi}], TV = {tv:.4}"
    );
    assert_eq!((n, exact), (9, 0));
    assert!((lo - 0.5).abs() < 1e-12 && (hi - 0.5).abs() < 1e-12 && tv < 1e-12);
    // CO through C (block 1), CO through O with three stems on C (block 2), CC (block 14),
    // up to 3 blocks.
    let (n, exact, lo, hi, tv) = summary(&small(&[1, 2, 14], 3));
    eprintln!(
        "CO/CO/CC, 3 blocks: {n} molecules, W = 1 for {exact}, W in [{lo}, {hi}], TV = {tv:.6}"
    );
    assert_eq!((n, exact), (60, 6));
    assert!((lo - 0.25).abs() < 1e-12 && (hi - 3.0).abs() < 1e-12);
    // The sampler the paper's P_B trains (x ~ W(x) R(x)) is then far from R / Z.
    assert!(tv > 0.25 && tv < 0.3, "{tv}");
}

#[test]
fn readable_form_lists_blocks_and_junctions() {
    let env = Sehfrag::new(SehfragConfig::default()).unwrap();
    let r = env.as_readable().unwrap();
    let s0 = env.initial_row();
    assert_eq!(r.readable(&s0).unwrap(), "(no blocks)");
    // Block 0 first, then block 1 on its first stem.
    let s1 = env.step_one(&s0, flat_action(0, 0)).unwrap().0;
    let one = r.readable(&s1).unwrap();
    assert!(one.starts_with("blocks #0 "), "{one}");
    assert!(!one.contains("junctions"), "{one}");
    let s2 = env.step_one(&s1, flat_action(0, 1)).unwrap().0;
    let two = r.readable(&s2).unwrap();
    assert!(two.starts_with(&one), "{two}");
    assert!(
        two.contains(" #1 ") && two.contains("; junctions #1:"),
        "{two}"
    );
    assert!(two.contains("-#0:"), "{two}");
    assert!(r.readable(&s2[1..]).is_err());
}
