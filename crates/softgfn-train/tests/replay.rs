//! Replay buffers: segment trees, the FIFO ring, prioritized sampling frequencies and importance
//! weights, beta annealing, input validation and exact serde round trips.

use softgfn_core::NO_BACKWARD_ACTION;
use softgfn_core::rng::{Rng, Stream, stream};
use softgfn_train::{
    MinTree, PerConfig, ReplayBuffer, ReplayShape, SampledBatch, Sampling, SumTree, TrainError,
    TransitionRecord,
};

const SHAPE: ReplayShape = ReplayShape {
    state_width: 2,
    num_actions: 3,
    num_backward_actions: 2,
};

/// An owned transition whose every column encodes its id, so sampled rows can be checked.
struct Owned {
    state: Vec<i32>,
    next_state: Vec<i32>,
    action: u32,
    backward_action: u32,
    terminal_log_reward: f64,
    done: bool,
    exit: bool,
}

impl Owned {
    /// Transition number `id`: every third one is an exit.
    fn new(id: i32) -> Self {
        let exit = id % 3 == 2;
        Self {
            state: vec![id, -id],
            next_state: if exit { vec![id, -id] } else { vec![id + 1, 7] },
            action: if exit { 2 } else { (id % 2) as u32 },
            backward_action: if exit {
                NO_BACKWARD_ACTION
            } else {
                (id % 2) as u32
            },
            terminal_log_reward: if exit { 0.1 * id as f64 } else { 0.0 },
            done: exit,
            exit,
        }
    }

    fn record(&self) -> TransitionRecord<'_> {
        TransitionRecord {
            state: &self.state,
            next_state: &self.next_state,
            action: self.action,
            backward_action: self.backward_action,
            terminal_log_reward: self.terminal_log_reward,
            done: self.done,
            exit: self.exit,
        }
    }
}

fn per(alpha: f64, beta: f64) -> PerConfig {
    PerConfig {
        alpha,
        beta,
        beta_final: 1.0,
        beta_horizon: 0,
        eps: 1e-8,
    }
}

fn rng(seed: u64) -> Rng {
    stream(seed, Stream::Algorithm)
}

/// Row `k` of `b` is exactly transition `Owned::new(id)` with `id = states[2k]`; masks are not
/// stored, so the mask columns stay empty until `fill_masks`.
fn assert_rows_consistent(b: &SampledBatch) {
    let w = SHAPE.state_width;
    assert_eq!(b.weights.len(), b.len());
    assert_eq!(b.states.len(), b.len() * w);
    assert!(b.forward_masks.is_empty() && b.next_forward_masks.is_empty());
    assert!(b.next_backward_masks.is_empty());
    for k in 0..b.len() {
        let o = Owned::new(b.states[k * w]);
        assert_eq!(&b.states[k * w..(k + 1) * w], o.state.as_slice());
        assert_eq!(&b.next_states[k * w..(k + 1) * w], o.next_state.as_slice());
        assert_eq!(b.actions[k], o.action);
        assert_eq!(b.backward_actions[k], o.backward_action);
        assert_eq!(b.terminal_log_rewards[k], o.terminal_log_reward);
        assert_eq!(b.done[k], o.done);
        assert_eq!(b.exit[k], o.exit);
    }
}

/// Sampled counts per slot.
fn counts(b: &SampledBatch, slots: usize) -> Vec<u64> {
    let mut c = vec![0u64; slots];
    for &i in &b.indices {
        c[i] += 1;
    }
    c
}

/// Pearson's chi-square statistic of `observed` counts against probabilities `expected`.
fn chi_square(observed: &[u64], expected: &[f64]) -> f64 {
    let n: u64 = observed.iter().sum();
    observed
        .iter()
        .zip(expected)
        .map(|(&o, &p)| {
            let e = p * n as f64;
            (o as f64 - e).powi(2) / e
        })
        .sum()
}

fn field_of(e: &TrainError) -> &str {
    match e {
        TrainError::InvalidValue { field, .. } => field,
        other => panic!("expected an invalid-value error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Segment trees
// ---------------------------------------------------------------------------------------------

#[test]
fn sum_tree_totals_and_prefix_boundaries() {
    let mut t = SumTree::new(5); // not a power of two: padded to 8 leaves
    assert_eq!(t.len(), 5);
    assert_eq!(t.total(), 0.0);
    for (i, v) in [1.0, 2.0, 0.0, 3.0, 4.0].into_iter().enumerate() {
        t.set(i, v);
    }
    assert_eq!(t.total(), 10.0);
    assert_eq!(t.get(3), 3.0);
    // Smallest i with prefix_sum(0..=i) > mass; prefix sums are 1, 3, 3, 6, 10.
    let cases = [
        (0.0, 0),
        (0.999, 0),
        (1.0, 1),
        (2.999, 1),
        (3.0, 3), // the zero leaf 2 is skipped
        (5.999, 3),
        (6.0, 4),
        (9.999, 4),
        (10.0, 4), // mass == total (rounding): last positive leaf, never a padding leaf
        (1e9, 4),
    ];
    for (mass, want) in cases {
        assert_eq!(t.find_prefix(mass), want, "mass {mass}");
    }

    // Updates are visible in the total, the leaves and the search.
    t.set(2, 5.0);
    assert_eq!(t.total(), 15.0);
    assert_eq!(t.get(2), 5.0);
    assert_eq!(t.find_prefix(3.0), 2);
    assert_eq!(t.find_prefix(7.999), 2);
    assert_eq!(t.find_prefix(8.0), 3);
    t.set(4, 0.0);
    assert_eq!(t.total(), 11.0);
    assert_eq!(t.find_prefix(10.5), 3);
    assert_eq!(t.find_prefix(11.0), 3);
}

#[test]
fn sum_tree_matches_a_linear_scan() {
    // Integer-valued leaves keep every sum exact, so the tree must agree with a linear scan.
    let mut r = rng(11);
    for n in [1usize, 2, 3, 7, 16, 33] {
        let mut t = SumTree::new(n);
        let mut leaves = vec![0.0; n];
        for _ in 0..4 * n {
            let i = softgfn_core::rng::below(&mut r, n as u64) as usize;
            let v = softgfn_core::rng::below(&mut r, 4) as f64; // zeros included
            t.set(i, v);
            leaves[i] = v;
        }
        let total: f64 = leaves.iter().sum();
        assert_eq!(t.total(), total);
        if total == 0.0 {
            continue;
        }
        for k in 0..(2 * total as usize) {
            let mass = k as f64 * 0.5;
            let mut acc = 0.0;
            let want = leaves
                .iter()
                .position(|&v| {
                    acc += v;
                    acc > mass
                })
                .unwrap_or_else(|| leaves.iter().rposition(|&v| v > 0.0).unwrap());
            let got = t.find_prefix(mass);
            assert_eq!(got, want, "n {n}, mass {mass}, leaves {leaves:?}");
            assert!(leaves[got] > 0.0);
        }
    }
}

#[test]
fn min_tree_tracks_the_minimum_through_updates() {
    let mut t = MinTree::new(6);
    assert_eq!(t.len(), 6);
    assert_eq!(t.min(), f64::INFINITY);
    for (i, v) in [5.0, 3.0, 8.0, 4.0, 9.0, 6.0].into_iter().enumerate() {
        t.set(i, v);
    }
    assert_eq!(t.min(), 3.0);
    t.set(4, 0.5); // lower
    assert_eq!(t.min(), 0.5);
    assert_eq!(t.get(4), 0.5);
    t.set(4, 10.0); // raise the minimum back
    assert_eq!(t.min(), 3.0);
    t.set(1, 7.0);
    assert_eq!(t.min(), 4.0);
    t.set(3, f64::INFINITY); // clear
    assert_eq!(t.min(), 5.0);
}

#[test]
fn trees_round_trip_through_json() {
    let mut s = SumTree::new(3);
    s.set(0, 0.1);
    s.set(2, 0.7_f64.sqrt());
    let s2: SumTree = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(s2.total().to_bits(), s.total().to_bits());
    assert_eq!(s2.find_prefix(0.3), s.find_prefix(0.3));

    let mut m = MinTree::new(3); // leaves 1 and 2 stay +inf, which JSON floats cannot hold
    m.set(0, 0.3_f64.ln().abs());
    let m2: MinTree = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
    assert_eq!(m2.min().to_bits(), m.min().to_bits());
    assert_eq!(m2.get(1), f64::INFINITY);

    let bad = r#"{"len":2,"leaves_bits":[0]}"#;
    assert!(serde_json::from_str::<SumTree>(bad).is_err());
}

// ---------------------------------------------------------------------------------------------
// FIFO ring
// ---------------------------------------------------------------------------------------------

#[test]
fn fifo_keeps_the_last_capacity_transitions_in_slot_order() {
    let mut b = ReplayBuffer::new(SHAPE, 4, Sampling::Uniform).unwrap();
    assert!(b.is_empty());
    let mut slots = Vec::new();
    for id in 0..7 {
        slots.push(b.push(&Owned::new(id).record(), None).unwrap());
    }
    assert_eq!(slots, [0, 1, 2, 3, 0, 1, 2]);
    assert_eq!(b.len(), 4);
    assert_eq!(b.capacity(), 4);

    let mut out = SampledBatch::default();
    b.sample(4000, 0, &mut rng(1), &mut out).unwrap();
    assert_eq!(out.len(), 4000);
    assert_rows_consistent(&out);
    // Slot -> id: 0..2 were overwritten by 4..6, slot 3 still holds 3.
    let mut id_of_slot = [None; 4];
    for (k, &slot) in out.indices.iter().enumerate() {
        let id = out.states[2 * k];
        assert_eq!(*id_of_slot[slot].get_or_insert(id), id);
    }
    assert_eq!(id_of_slot, [Some(4), Some(5), Some(6), Some(3)]);
    assert!(out.weights.iter().all(|&w| w == 1.0));

    // Uniform frequencies over the 4 slots.
    let c = counts(&out, 4);
    assert!(chi_square(&c, &[0.25; 4]) < 16.27, "counts {c:?}"); // chi2(3) 0.999 quantile
}

#[test]
fn partial_fill_samples_only_filled_slots() {
    for sampling in [Sampling::Uniform, Sampling::Prioritized(per(0.6, 0.4))] {
        let mut b = ReplayBuffer::new(SHAPE, 100, sampling).unwrap();
        for id in 0..3 {
            b.push(&Owned::new(id).record(), None).unwrap();
        }
        let mut out = SampledBatch::default();
        b.sample(3000, 0, &mut rng(2), &mut out).unwrap();
        assert!(out.indices.iter().all(|&i| i < 3));
        assert_eq!(counts(&out, 3).iter().filter(|&&c| c > 0).count(), 3);
        assert_rows_consistent(&out);
    }
}

#[test]
fn sampling_reuses_the_batch_buffers() {
    let mut b = ReplayBuffer::new(SHAPE, 8, Sampling::Prioritized(per(0.6, 0.4))).unwrap();
    for id in 0..8 {
        b.push(&Owned::new(id).record(), Some(id as f64)).unwrap();
    }
    let mut out = SampledBatch::default();
    let mut r = rng(3);
    b.sample(64, 0, &mut r, &mut out).unwrap();
    let ptrs = (
        out.states.as_ptr(),
        out.weights.as_ptr(),
        out.indices.as_ptr(),
    );
    b.sample(64, 1, &mut r, &mut out).unwrap();
    assert_eq!(
        ptrs,
        (
            out.states.as_ptr(),
            out.weights.as_ptr(),
            out.indices.as_ptr()
        )
    );
    b.sample(0, 2, &mut r, &mut out).unwrap();
    assert!(out.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Prioritized sampling
// ---------------------------------------------------------------------------------------------

#[test]
fn per_frequencies_match_stored_priorities() {
    let alpha = 0.5;
    let eps = 1e-8;
    let mut b = ReplayBuffer::new(SHAPE, 8, Sampling::Prioritized(per(alpha, 0.4))).unwrap();
    for id in 0..8 {
        let slot = b
            .push(&Owned::new(id).record(), Some(id as f64 + 1.0))
            .unwrap();
        assert_eq!(slot, id as usize);
    }
    let stored: Vec<f64> = (0..8).map(|i| (i as f64 + 1.0 + eps).powf(alpha)).collect();
    for (i, &s) in stored.iter().enumerate() {
        assert!((b.stored_priority(i) - s).abs() < 1e-15);
    }
    let total: f64 = stored.iter().sum();
    let expected: Vec<f64> = stored.iter().map(|s| s / total).collect();

    let mut out = SampledBatch::default();
    b.sample(200_000, 0, &mut rng(42), &mut out).unwrap();
    assert_rows_consistent(&out);
    let c = counts(&out, 8);
    let stat = chi_square(&c, &expected);
    assert!(
        stat < 24.32,
        "chi2 {stat} >= 24.32 (chi2(7) 0.999 quantile), counts {c:?}"
    );

    // The test has power: the (wrong) uniform expectation is rejected overwhelmingly.
    let wrong = chi_square(&c, &[1.0 / 8.0; 8]);
    assert!(wrong > 1000.0, "uniform chi2 only {wrong}");
}

#[test]
fn is_weights_match_hand_computation() {
    let (alpha, beta, eps) = (0.6, 0.4, 1e-8);
    let raw = [1.0, 4.0, 0.25, 9.0];
    let mut b = ReplayBuffer::new(SHAPE, 4, Sampling::Prioritized(per(alpha, beta))).unwrap();
    for (id, &p) in raw.iter().enumerate() {
        b.push(&Owned::new(id as i32).record(), Some(p)).unwrap();
    }
    let stored: Vec<f64> = raw.iter().map(|p| (p + eps).powf(alpha)).collect();
    let p_min = stored.iter().cloned().fold(f64::INFINITY, f64::min);
    let mut out = SampledBatch::default();
    b.sample(2000, 0, &mut rng(5), &mut out).unwrap();
    let mut seen = [false; 4];
    for (&i, &w) in out.indices.iter().zip(&out.weights) {
        let want = (stored[i] / p_min).powf(-beta);
        assert!((w - want).abs() <= 1e-12 * want, "slot {i}: {w} vs {want}");
        seen[i] = true;
    }
    assert_eq!(seen, [true; 4]);
    // The slot of the smallest priority (slot 2) has weight exactly 1; larger ones less.
    let w_of = |slot: usize| out.weights[out.indices.iter().position(|&i| i == slot).unwrap()];
    assert_eq!(w_of(2), 1.0);
    assert!(w_of(3) < w_of(1) && w_of(1) < w_of(0) && w_of(0) < 1.0);
}

#[test]
fn beta_is_annealed_over_its_own_horizon() {
    let cfg = PerConfig {
        alpha: 0.6,
        beta: 0.4,
        beta_final: 1.0,
        beta_horizon: 1000,
        eps: 1e-8,
    };
    let mut b = ReplayBuffer::new(SHAPE, 4, Sampling::Prioritized(cfg)).unwrap();
    assert_eq!(b.beta(0), 0.4);
    assert!((b.beta(500) - 0.7).abs() < 1e-12);
    assert_eq!(b.beta(1000), 1.0);
    assert_eq!(b.beta(2000), 1.0);
    assert_eq!(b.beta(u64::MAX), 1.0);

    // The weights use the beta of the iteration asked for.
    b.push(&Owned::new(0).record(), Some(1.0)).unwrap();
    b.push(&Owned::new(1).record(), Some(4.0)).unwrap();
    let s = [(1.0f64 + 1e-8).powf(0.6), (4.0f64 + 1e-8).powf(0.6)];
    let mut out = SampledBatch::default();
    for (iteration, beta) in [(0, 0.4), (500, 0.7), (2000, 1.0)] {
        b.sample(200, iteration, &mut rng(6), &mut out).unwrap();
        let k = out.indices.iter().position(|&i| i == 1).unwrap();
        let want = (s[1] / s[0]).powf(-beta);
        assert!(
            (out.weights[k] - want).abs() < 1e-12,
            "iteration {iteration}"
        );
    }

    let constant = ReplayBuffer::new(
        SHAPE,
        4,
        Sampling::Prioritized(PerConfig {
            beta_horizon: 0,
            ..cfg
        }),
    )
    .unwrap();
    for it in [0, 500, 1000, 1_000_000] {
        assert_eq!(constant.beta(it), 0.4);
    }
}

#[test]
fn new_items_get_the_max_or_the_given_priority() {
    let (alpha, eps) = (0.5, 1e-8);
    let stored = |p: f64| (p + eps).powf(alpha);
    let mut b = ReplayBuffer::new(SHAPE, 8, Sampling::Prioritized(per(alpha, 0.4))).unwrap();
    let s0 = b.push(&Owned::new(0).record(), None).unwrap();
    assert_eq!(b.stored_priority(s0), stored(1.0)); // initial max is 1.0
    let s1 = b.push(&Owned::new(1).record(), Some(9.0)).unwrap();
    assert_eq!(b.stored_priority(s1), stored(9.0));
    let s2 = b.push(&Owned::new(2).record(), None).unwrap();
    assert_eq!(b.stored_priority(s2), stored(9.0)); // max raised by the given priority
    let s3 = b.push(&Owned::new(3).record(), Some(0.25)).unwrap();
    assert_eq!(b.stored_priority(s3), stored(0.25));
    let s4 = b.push(&Owned::new(4).record(), None).unwrap();
    assert_eq!(b.stored_priority(s4), stored(9.0)); // a smaller one does not lower it

    b.update_priorities(&[0, 3], &[16.0, 0.0]).unwrap();
    assert_eq!(b.stored_priority(0), stored(16.0));
    assert_eq!(b.stored_priority(3), stored(0.0));
    let s5 = b.push(&Owned::new(5).record(), None).unwrap();
    assert_eq!(b.stored_priority(s5), stored(16.0)); // update raised the max
    assert_eq!(b.stored_priority(7), 0.0); // unfilled
}

#[test]
fn update_priorities_changes_sampling_frequencies() {
    let mut b = ReplayBuffer::new(SHAPE, 4, Sampling::Prioritized(per(1.0, 0.4))).unwrap();
    for id in 0..4 {
        b.push(&Owned::new(id).record(), None).unwrap();
    }
    let mut out = SampledBatch::default();
    b.sample(20_000, 0, &mut rng(7), &mut out).unwrap();
    let before = counts(&out, 4);
    assert!(chi_square(&before, &[0.25; 4]) < 16.27, "{before:?}");
    assert!(out.weights.iter().all(|&w| w == 1.0)); // equal priorities

    b.update_priorities(&out.indices[..0], &[]).unwrap();
    b.update_priorities(&[2, 0], &[97.0, 0.0]).unwrap(); // stored ~97, 1e-8, 1, 1
    b.sample(20_000, 0, &mut rng(7), &mut out).unwrap();
    let after = counts(&out, 4);
    let total = 97.0 + 1e-8 + 1.0 + 1.0 + 2e-8;
    let expected = [1e-8 / total, 1.0 / total, 97.0 / total, 1.0 / total];
    assert!(after[2] > 19_000, "{after:?}");
    assert!(after[0] < 5, "{after:?}");
    assert!(after[1] > 0 && after[3] > 0);
    // Chi-square over the slots with non-negligible mass.
    let sub = [after[1], after[2], after[3]];
    let norm = expected[1] + expected[2] + expected[3];
    let p = [expected[1] / norm, expected[2] / norm, expected[3] / norm];
    assert!(chi_square(&sub, &p) < 13.82, "{after:?}"); // chi2(2) 0.999 quantile
}

#[test]
fn uniform_sampling_has_unit_weights_and_ignores_priorities() {
    let mut b = ReplayBuffer::new(SHAPE, 5, Sampling::Uniform).unwrap();
    for id in 0..5 {
        b.push(&Owned::new(id).record(), Some(1e6 * id as f64))
            .unwrap();
    }
    assert_eq!(b.sampling(), Sampling::Uniform);
    assert_eq!(b.shape(), SHAPE);
    assert_eq!(b.beta(10), 0.0);
    assert!((0..5).all(|i| b.stored_priority(i) == 1.0));
    b.update_priorities(&[1, 2], &[5.0, 6.0]).unwrap();
    let mut out = SampledBatch::default();
    b.sample(10_000, 3, &mut rng(8), &mut out).unwrap();
    assert!(out.weights.iter().all(|&w| w == 1.0));
    let c = counts(&out, 5);
    assert!(chi_square(&c, &[0.2; 5]) < 18.47, "{c:?}"); // chi2(4) 0.999 quantile
}

#[test]
fn sampling_is_deterministic_for_a_seed() {
    let mut b = ReplayBuffer::new(SHAPE, 6, Sampling::Prioritized(per(0.7, 0.5))).unwrap();
    for id in 0..6 {
        b.push(&Owned::new(id).record(), Some(0.3 * id as f64))
            .unwrap();
    }
    let (mut x, mut y) = (SampledBatch::default(), SampledBatch::default());
    b.sample(100, 0, &mut rng(9), &mut x).unwrap();
    b.sample(100, 0, &mut rng(9), &mut y).unwrap();
    assert_eq!(x.indices, y.indices);
    b.sample(100, 0, &mut rng(10), &mut y).unwrap();
    assert_ne!(x.indices, y.indices);
}

// ---------------------------------------------------------------------------------------------
// Bad inputs
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_configurations_are_errors() {
    for sampling in [Sampling::Uniform, Sampling::Prioritized(per(0.6, 0.4))] {
        let e = ReplayBuffer::new(SHAPE, 0, sampling).unwrap_err();
        assert_eq!(field_of(&e), "algo.buffer_capacity");
        assert!(e.to_string().contains("expected an integer >= 1"), "{e}");
    }
    let e = ReplayBuffer::new(SHAPE, usize::MAX, Sampling::Uniform).unwrap_err();
    assert_eq!(field_of(&e), "algo.buffer_capacity");

    let base = per(0.6, 0.4);
    let cases = [
        (
            PerConfig {
                alpha: -0.1,
                ..base
            },
            "algo.per_alpha",
        ),
        (
            PerConfig {
                alpha: f64::NAN,
                ..base
            },
            "algo.per_alpha",
        ),
        (
            PerConfig {
                alpha: f64::INFINITY,
                ..base
            },
            "algo.per_alpha",
        ),
        (PerConfig { beta: 1.5, ..base }, "algo.per_beta"),
        (PerConfig { beta: -0.1, ..base }, "algo.per_beta"),
        (
            PerConfig {
                beta: f64::NAN,
                ..base
            },
            "algo.per_beta",
        ),
        (
            PerConfig {
                beta_final: 2.0,
                ..base
            },
            "algo.per_beta_final",
        ),
        (PerConfig { eps: -1e-8, ..base }, "algo.per_eps"),
        (
            PerConfig {
                eps: f64::NAN,
                ..base
            },
            "algo.per_eps",
        ),
    ];
    for (cfg, field) in cases {
        let e = ReplayBuffer::new(SHAPE, 4, Sampling::Prioritized(cfg)).unwrap_err();
        assert_eq!(field_of(&e), field, "{cfg:?}");
        assert!(e.to_string().starts_with("invalid value for"), "{e}");
    }
    // alpha = 0 (uniform priorities) and beta at the ends of [0, 1] are fine.
    ReplayBuffer::new(
        SHAPE,
        4,
        Sampling::Prioritized(PerConfig {
            alpha: 0.0,
            beta: 0.0,
            beta_final: 1.0,
            ..base
        }),
    )
    .unwrap();
}

#[test]
fn bad_priorities_are_errors_and_change_nothing() {
    let mut b = ReplayBuffer::new(SHAPE, 4, Sampling::Prioritized(per(0.6, 0.4))).unwrap();
    b.push(&Owned::new(0).record(), Some(2.0)).unwrap();
    let before = b.stored_priority(0);
    for p in [f64::NAN, -1.0, f64::INFINITY] {
        let e = b.push(&Owned::new(1).record(), Some(p)).unwrap_err();
        assert_eq!(field_of(&e), "priority");
        assert_eq!(b.len(), 1);
        let e = b.update_priorities(&[0], &[p]).unwrap_err();
        assert_eq!(field_of(&e), "priorities");
        assert_eq!(b.stored_priority(0), before);
    }
    // A huge priority whose stored value overflows.
    let mut steep = ReplayBuffer::new(SHAPE, 4, Sampling::Prioritized(per(3.0, 0.4))).unwrap();
    assert!(steep.push(&Owned::new(0).record(), Some(1e200)).is_err());
    assert!(steep.is_empty());

    // update_priorities: mismatched lengths, unfilled slots; nothing applied on error.
    let e = b.update_priorities(&[0], &[1.0, 2.0]).unwrap_err();
    assert_eq!(field_of(&e), "priorities");
    assert!(e.to_string().contains("length 2"), "{e}");
    let e = b.update_priorities(&[0, 3], &[5.0, 5.0]).unwrap_err();
    assert_eq!(field_of(&e), "indices");
    assert_eq!(b.stored_priority(0), before);
    let e = b.update_priorities(&[0, 0], &[5.0, f64::NAN]).unwrap_err();
    assert_eq!(field_of(&e), "priorities");
    assert_eq!(b.stored_priority(0), before);
}

#[test]
fn bad_transitions_are_errors_naming_the_slice() {
    let mut b = ReplayBuffer::new(SHAPE, 4, Sampling::Prioritized(per(0.6, 0.4))).unwrap();
    let good = Owned::new(0);
    let short_state = [1];
    let mut cases: Vec<(TransitionRecord<'_>, &str)> = Vec::new();
    let r = good.record();
    cases.push((
        TransitionRecord {
            state: &short_state,
            ..r
        },
        "transition.state",
    ));
    cases.push((
        TransitionRecord {
            next_state: &short_state,
            ..r
        },
        "transition.next_state",
    ));
    cases.push((TransitionRecord { action: 3, ..r }, "transition.action"));
    cases.push((
        TransitionRecord {
            backward_action: 2,
            ..r
        },
        "transition.backward_action",
    ));
    cases.push((
        TransitionRecord {
            exit: true,
            done: true,
            ..r
        },
        "transition.backward_action",
    ));
    cases.push((
        TransitionRecord {
            exit: true,
            backward_action: NO_BACKWARD_ACTION,
            done: false,
            ..r
        },
        "transition.done",
    ));
    cases.push((
        TransitionRecord {
            terminal_log_reward: f64::NAN,
            ..r
        },
        "transition.terminal_log_reward",
    ));
    for (t, field) in cases {
        let e = b.push(&t, None).unwrap_err();
        assert_eq!(field_of(&e), field);
        assert!(e.to_string().contains("expected"), "{e}");
        assert!(b.is_empty());
    }
    let e = b
        .push(
            &TransitionRecord {
                state: &short_state,
                ..r
            },
            None,
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid value for `transition.state`: a slice of length 1; expected length 2 \
         (state_width)"
    );
    b.push(&r, None).unwrap();
    assert_eq!(b.len(), 1);
}

#[test]
fn sampling_an_empty_buffer_is_an_error() {
    for sampling in [Sampling::Uniform, Sampling::Prioritized(per(0.6, 0.4))] {
        let b = ReplayBuffer::new(SHAPE, 4, sampling).unwrap();
        let mut out = SampledBatch::default();
        let e = b.sample(8, 0, &mut rng(1), &mut out).unwrap_err();
        assert!(
            e.to_string()
                .contains("expected at least one stored transition"),
            "{e}"
        );
        assert!(out.is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// Serde
// ---------------------------------------------------------------------------------------------

fn assert_same_batch(x: &SampledBatch, y: &SampledBatch) {
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(x.indices, y.indices);
    assert_eq!(bits(&x.weights), bits(&y.weights));
    assert_eq!(x.states, y.states);
    assert_eq!(x.next_states, y.next_states);
    assert_eq!(x.forward_masks, y.forward_masks);
    assert_eq!(x.next_forward_masks, y.next_forward_masks);
    assert_eq!(x.next_backward_masks, y.next_backward_masks);
    assert_eq!(x.actions, y.actions);
    assert_eq!(x.backward_actions, y.backward_actions);
    assert_eq!(bits(&x.terminal_log_rewards), bits(&y.terminal_log_rewards));
    assert_eq!(x.done, y.done);
    assert_eq!(x.exit, y.exit);
}

#[test]
fn serde_round_trip_samples_identically() {
    let cfg = PerConfig {
        alpha: 0.6,
        beta: 0.4,
        beta_final: 1.0,
        beta_horizon: 100,
        eps: 1e-8,
    };
    for sampling in [Sampling::Uniform, Sampling::Prioritized(cfg)] {
        let mut b = ReplayBuffer::new(SHAPE, 12, sampling).unwrap();
        for id in 0..15 {
            let p = (0.1 * (id as f64 + 1.0)).sqrt() / 3.0;
            b.push(
                &Owned::new(id).record(),
                if id == 6 { None } else { Some(p) },
            )
            .unwrap();
        }
        b.update_priorities(&[1, 3], &[0.7_f64.ln().abs(), 1.0 / 7.0])
            .unwrap();
        // A raw priority with a long decimal expansion, so that the exactness of the round trip
        // is exercised (the buffer stores floats as bits, whatever the JSON parser does).
        let awkward = (0.0123f64 * 77.0 + cfg.eps).powf(1.0 / 3.0);
        b.update_priorities(&[5], &[awkward]).unwrap();

        let json = serde_json::to_string(&b).unwrap();
        let mut c: ReplayBuffer = serde_json::from_str(&json).unwrap();
        assert_eq!(c.len(), b.len());
        assert_eq!(c.capacity(), b.capacity());
        assert_eq!(c.sampling(), b.sampling());
        for i in 0..12 {
            assert_eq!(
                c.stored_priority(i).to_bits(),
                b.stored_priority(i).to_bits()
            );
        }
        let (mut x, mut y) = (SampledBatch::default(), SampledBatch::default());
        b.sample(500, 50, &mut rng(12), &mut x).unwrap();
        c.sample(500, 50, &mut rng(12), &mut y).unwrap();
        assert_same_batch(&x, &y);
        assert_rows_consistent(&x);

        // Both continue identically: same write position and running maximum priority.
        let sb = b.push(&Owned::new(8).record(), None).unwrap();
        let sc = c.push(&Owned::new(8).record(), None).unwrap();
        assert_eq!(sb, sc);
        assert_eq!(
            c.stored_priority(sc).to_bits(),
            b.stored_priority(sb).to_bits()
        );
        b.sample(500, 200, &mut rng(13), &mut x).unwrap();
        c.sample(500, 200, &mut rng(13), &mut y).unwrap();
        assert_same_batch(&x, &y);
    }
}

#[test]
fn corrupt_serialized_buffers_are_rejected() {
    let mut b = ReplayBuffer::new(SHAPE, 4, Sampling::Prioritized(per(0.6, 0.4))).unwrap();
    for id in 0..3 {
        b.push(&Owned::new(id).record(), Some(1.0)).unwrap();
    }
    let v: serde_json::Value = serde_json::to_value(&b).unwrap();
    let tamper = |key: &str, value: serde_json::Value| {
        let mut w = v.clone();
        w[key] = value;
        serde_json::from_value::<ReplayBuffer>(w)
    };
    assert!(tamper("len", 4.into()).is_err()); // columns too short
    assert!(tamper("len", 9.into()).is_err()); // beyond capacity
    assert!(tamper("cursor", 1.into()).is_err()); // not at the end of a partial fill
    assert!(tamper("capacity", 0.into()).is_err());
    assert!(tamper("actions", serde_json::json!([0, 1, 9])).is_err());
    assert!(tamper("priorities_bits", serde_json::Value::Null).is_err());
    assert!(tamper("priorities_bits", serde_json::json!([0, 0])).is_err());
    let nan = f64::NAN.to_bits();
    assert!(tamper("priorities_bits", serde_json::json!([nan, nan, nan])).is_err());
    assert!(tamper("version", 99.into()).is_err());
    assert!(tamper("len", 3.into()).is_ok());
}

/// A buffer written with layout version 1 (which stored the three mask columns) still loads: its
/// masks are checked for length and dropped; it samples exactly as the version-2 buffer.
#[test]
fn layout_version_1_with_masks_still_loads() {
    let mut b = ReplayBuffer::new(SHAPE, 8, Sampling::Prioritized(per(0.6, 0.4))).unwrap();
    for id in 0..5 {
        b.push(&Owned::new(id).record(), Some(0.1 * f64::from(id + 1)))
            .unwrap();
    }
    let mut v: serde_json::Value = serde_json::to_value(&b).unwrap();
    assert_eq!(v["version"], 2);
    assert_eq!(v["forward_masks"], serde_json::json!([]));
    v["version"] = 1.into();
    // 5 rows x 3 actions = 15 bits (one word), 5 x 2 backward = 10 bits (one word).
    v["forward_masks"] = serde_json::json!([0x7fff]);
    v["next_forward_masks"] = serde_json::json!([0x1234]);
    v["next_backward_masks"] = serde_json::json!([0x3ff]);
    let c: ReplayBuffer = serde_json::from_value(v.clone()).unwrap();
    let (mut x, mut y) = (SampledBatch::default(), SampledBatch::default());
    b.sample(100, 3, &mut rng(4), &mut x).unwrap();
    c.sample(100, 3, &mut rng(4), &mut y).unwrap();
    assert_same_batch(&x, &y);
    // A version-1 mask column of the wrong length is refused.
    v["forward_masks"] = serde_json::json!([]);
    let err = serde_json::from_value::<ReplayBuffer>(v).unwrap_err();
    assert!(err.to_string().contains("forward_masks"), "{err}");
}

/// Masks recomputed for a sampled batch equal those the environment gives for the stored states
/// (all false at the next state of an exit), for every transition of a small set environment.
#[test]
fn fill_masks_recomputes_what_the_environment_gives() {
    use softgfn_core::Environment;
    use softgfn_core::testing::SetEnv;
    let env = SetEnv::new(vec![0.5, -0.25, 1.0]);
    let spec = env.spec().clone();
    let (k, na, nb) = (
        spec.state_width,
        spec.num_actions,
        spec.num_backward_actions,
    );
    let shape = ReplayShape {
        state_width: k,
        num_actions: na,
        num_backward_actions: nb,
    };
    let mut buf = ReplayBuffer::new(shape, 64, Sampling::Uniform).unwrap();
    // Every subset and every valid action from it.
    let mut expected = Vec::new(); // (state, next state, fwd, next fwd, next bwd)
    for bits in 0..(1 << k) {
        let s: Vec<i32> = (0..k).map(|i| (bits >> i) & 1).collect();
        let mut fm = vec![false; na];
        env.forward_masks(&s, &mut fm).unwrap();
        for a in (0..na).filter(|&a| fm[a]) {
            let exit = a == k;
            let (next, back) = if exit {
                (s.clone(), NO_BACKWARD_ACTION)
            } else {
                let mut next = vec![0; k];
                let mut back = [0u32];
                env.step(&s, &[a as u32], &mut next, &mut back).unwrap();
                (next, back[0])
            };
            let mut nfm = vec![false; na];
            let mut nbm = vec![false; nb];
            if !exit {
                env.forward_masks(&next, &mut nfm).unwrap();
                env.backward_masks(&next, &mut nbm).unwrap();
            }
            buf.push(
                &TransitionRecord {
                    state: &s,
                    next_state: &next,
                    action: a as u32,
                    backward_action: back,
                    terminal_log_reward: if exit { 1.0 } else { 0.0 },
                    done: exit,
                    exit,
                },
                None,
            )
            .unwrap();
            expected.push((s.clone(), next, fm.clone(), nfm, nbm));
        }
    }
    let mut b = SampledBatch::default();
    buf.sample(200, 0, &mut rng(9), &mut b).unwrap();
    b.fill_masks(&env).unwrap();
    assert_eq!(b.forward_masks.len(), 200 * na);
    assert_eq!(b.next_backward_masks.len(), 200 * nb);
    for r in 0..200 {
        let slot = b.indices[r];
        let (s, next, fm, nfm, nbm) = &expected[slot];
        assert_eq!(&b.states[r * k..(r + 1) * k], s.as_slice());
        assert_eq!(&b.next_states[r * k..(r + 1) * k], next.as_slice());
        assert_eq!(&b.forward_masks[r * na..(r + 1) * na], fm.as_slice());
        assert_eq!(&b.next_forward_masks[r * na..(r + 1) * na], nfm.as_slice());
        assert_eq!(&b.next_backward_masks[r * nb..(r + 1) * nb], nbm.as_slice());
    }
    // Storage per transition: 2 states of 3 values, 2 actions, a reward and 2 flags.
    assert_eq!(shape.bytes_per_transition(), 2 * 3 * 4 + 8 + 8 + 2);
    assert_eq!(
        shape.bytes_per_transition_with_masks(),
        shape.bytes_per_transition() + 2 * 4 + 3
    );
}
