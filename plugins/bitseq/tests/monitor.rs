//! The bitseq [`Monitor`]: `modes_found` (threshold inclusive, cumulative, saved and restored)
//! and `spearman` (against hand-made policies whose `log p̂` is a known function of `log R`).

use std::cell::Cell;

use softgfn_bitseq::{Bitseq, BitseqConfig, BitseqMonitor, MODES_FOUND, SPEARMAN};
use softgfn_core::rng::{Stream, stream};
use softgfn_core::{Environment, EnvironmentExt, Monitor, StateValue};

/// A small instance: `n = 12`, `k = 3`, 3 modes of 4-bit blocks.
fn small() -> BitseqConfig {
    BitseqConfig {
        n: 12,
        k: 3,
        num_modes: 3,
        block_len: 4,
        alphabet: ["0000", "1111", "1100", "0011"].map(String::from).to_vec(),
        mode_threshold: 2,
        ..Default::default()
    }
}

fn metrics_of(m: &mut dyn Monitor, log_pf: &mut softgfn_core::LogPf<'_>) -> (f64, f64) {
    let out = m.evaluate(log_pf).unwrap();
    let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, [MODES_FOUND, SPEARMAN]);
    (out[0].1, out[1].1)
}

/// A policy that gives every step log-probability -1 (the value does not matter for modes).
fn flat(_: &[StateValue], _: &[u32], out: &mut [f64]) -> softgfn_core::Result<()> {
    out.fill(-1.0);
    Ok(())
}

/// Mode `i` of `env` with its first `flips` bits flipped, as a state row.
fn flipped(env: &Bitseq, i: usize, flips: usize) -> Vec<StateValue> {
    let mut bits = env.modes().bits(i);
    for b in &mut bits[..flips] {
        *b ^= 1;
    }
    env.state_of_bits(&bits).unwrap()
}

#[test]
fn a_mode_is_found_at_distance_30_but_not_31() {
    // The paper's shape with a single mode: nothing else can be within reach.
    let env = Bitseq::new(BitseqConfig {
        num_modes: 1,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(env.config().mode_threshold, 30);
    let x31 = flipped(&env, 0, 31);
    let x30 = flipped(&env, 0, 30);
    assert_eq!(env.log_reward_of(&x31).unwrap(), -2.0 * 31.0);
    assert_eq!(env.log_reward_of(&x30).unwrap(), -2.0 * 30.0);
    let mut m = env.monitor().unwrap();
    m.observe(&x31).unwrap();
    assert_eq!(metrics_of(m.as_mut(), &mut flat).0, 0.0);
    m.observe(&[x31.clone(), x30.clone()].concat()).unwrap();
    assert_eq!(metrics_of(m.as_mut(), &mut flat).0, 1.0);

    // On the paper's 60 modes the same boundary holds for mode 0, and the count is exactly the
    // number of modes within distance 30 of the observed strings.
    let env = Bitseq::new(BitseqConfig::default()).unwrap();
    let modes = env.modes();
    for (flips, found) in [(31, false), (30, true)] {
        let x = flipped(&env, 0, flips);
        assert_eq!(modes.distance(0, &x[1..]), flips as u32);
        let mut m = BitseqMonitor::new(&env);
        m.observe(&x).unwrap();
        assert_eq!(m.tracker().found_mask()[0], found, "{flips} flips");
        let want = (0..modes.len())
            .filter(|&i| modes.distance(i, &x[1..]) <= 30)
            .count();
        assert_eq!(metrics_of(&mut m, &mut flat).0, want as f64);
    }
}

#[test]
fn modes_found_is_cumulative() {
    let env = Bitseq::new(small()).unwrap();
    let modes = env.modes();
    let mut m = BitseqMonitor::new(&env);
    let mut seen: Vec<Vec<StateValue>> = Vec::new();
    let expected = |seen: &[Vec<StateValue>]| {
        (0..modes.len())
            .filter(|&i| seen.iter().any(|x| modes.distance(i, &x[1..]) <= 2))
            .count() as f64
    };
    let mut last = 0.0;
    let mut rng = stream(3, Stream::Sampling);
    for batch in 0..6 {
        // Batch 0: mode 0 itself; later batches: random strings, then mode 2 at distance 2.
        let rows: Vec<Vec<StateValue>> = match batch {
            0 => vec![modes.state_row(0)],
            4 => vec![flipped(&env, 2, 2)],
            _ => (0..3)
                .map(|_| {
                    let bits: Vec<u8> = (0..12)
                        .map(|_| softgfn_core::rng::below(&mut rng, 2) as u8)
                        .collect();
                    env.state_of_bits(&bits).unwrap()
                })
                .collect(),
        };
        m.observe(&rows.concat()).unwrap();
        seen.extend(rows);
        let (found, _) = metrics_of(&mut m, &mut flat);
        assert_eq!(found, expected(&seen), "batch {batch}");
        assert!(found >= last, "modes found never decreases");
        last = found;
    }
    assert!(m.tracker().found_mask()[0] && m.tracker().found_mask()[2]);
    assert_eq!(m.tracker().observed(), 1 + 1 + 4 * 3);
    // Evaluating does not change the count; an empty batch neither.
    m.observe(&[]).unwrap();
    assert_eq!(metrics_of(&mut m, &mut flat).0, last);
    // A malformed batch is an error and counts nothing.
    let partial = env.state_from_bit_string("000---111000").unwrap();
    assert!(m.observe(&[modes.state_row(1), partial].concat()).is_err());
    assert_eq!(metrics_of(&mut m, &mut flat).0, last);
}

#[test]
fn save_and_restore_round_trip() {
    let env = Bitseq::new(small()).unwrap();
    let mut a = BitseqMonitor::new(&env);
    a.observe(&[env.modes().state_row(1), flipped(&env, 2, 1)].concat())
        .unwrap();
    let bytes = a.save();
    let mut b = env.monitor().unwrap();
    b.restore(&bytes).unwrap();
    assert_eq!(b.save(), bytes);
    assert_eq!(
        metrics_of(b.as_mut(), &mut flat).0,
        metrics_of(&mut a, &mut flat).0
    );
    // Both continue identically.
    let more = env.modes().state_row(0);
    a.observe(&more).unwrap();
    b.observe(&more).unwrap();
    assert_eq!(a.save(), b.save());
    assert_eq!(a.tracker().found(), 3);

    // Another instance (other modes, other threshold) or corrupt bytes are errors, and leave the
    // monitor as it was.
    for other in [
        BitseqConfig {
            mode_seed: 9,
            ..small()
        },
        BitseqConfig {
            mode_threshold: 3,
            ..small()
        },
    ] {
        let mut c = BitseqMonitor::new(&Bitseq::new(other).unwrap());
        let e = c.restore(&bytes).unwrap_err().to_string();
        assert!(e.contains("another bitseq instance"), "{e}");
        assert_eq!(c.tracker().found(), 0);
    }
    let mut c = BitseqMonitor::new(&env);
    for bad in [
        &bytes[..10],
        &bytes[..bytes.len() - 1],
        b"not a monitor state at all".as_slice(),
    ] {
        assert!(c.restore(bad).is_err(), "{} bytes", bad.len());
    }
    let mut flag = bytes.clone();
    *flag.last_mut().unwrap() = 7;
    assert!(
        c.restore(&flag)
            .unwrap_err()
            .to_string()
            .contains("corrupt")
    );
    // The Spearman settings do not belong to the saved state.
    let mut d = BitseqMonitor::new(
        &Bitseq::new(BitseqConfig {
            spearman_rounds: 2,
            spearman_strings: 5,
            ..small()
        })
        .unwrap(),
    );
    d.restore(&bytes).unwrap();
    assert_eq!(d.tracker().found(), 2);
}

/// A policy whose log-probability is 0 everywhere except at the last step of a trajectory, where
/// the completed string `x` is known: there it is `g(log R(x))`. So `log p̂(x) = g(log R(x))`
/// for every construction order.
fn last_step_policy<'a>(
    env: &'a Bitseq,
    g: impl Fn(f64) -> f64 + 'a,
    rows: &'a Cell<usize>,
) -> impl FnMut(&[StateValue], &[u32], &mut [f64]) -> softgfn_core::Result<()> + 'a {
    let w = env.spec().state_width;
    move |states, actions, out| {
        rows.set(rows.get() + actions.len());
        for ((s, &a), o) in states.chunks_exact(w).zip(actions).zip(out.iter_mut()) {
            let empties = s[1..].iter().filter(|&&t| t == env.empty_token()).count();
            *o = if empties == 1 {
                let (x, _) = env.step_one(s, a)?;
                g(env.log_reward_of(&x)?)
            } else {
                0.0
            };
        }
        Ok(())
    }
}

#[test]
fn spearman_is_one_for_a_monotone_and_minus_one_for_an_anti_monotone_policy() {
    let env = Bitseq::new(small()).unwrap();
    let rows = Cell::new(0);
    let mut m = env.monitor().unwrap();
    // 3 modes x 12 strings x 10 rounds x 4 steps.
    let (_, rho) = metrics_of(m.as_mut(), &mut last_step_policy(&env, |lr| lr, &rows));
    assert!((rho - 1.0).abs() < 1e-12, "{rho}");
    assert_eq!(rows.get(), 36 * 10 * 4);
    // Any increasing function of log R ranks the same way (ties included).
    let (_, rho) = metrics_of(
        m.as_mut(),
        &mut last_step_policy(&env, |lr| 0.5 * lr.exp() - 3.0, &rows),
    );
    assert!((rho - 1.0).abs() < 1e-12, "{rho}");
    let (_, rho) = metrics_of(m.as_mut(), &mut last_step_policy(&env, |lr| -lr, &rows));
    assert!((rho + 1.0).abs() < 1e-12, "{rho}");
    // A constant estimate has no rank correlation: NaN (the trainer writes null).
    let (_, rho) = metrics_of(m.as_mut(), &mut last_step_policy(&env, |_| -2.0, &rows));
    assert!(rho.is_nan());
    // Errors of the policy pass through.
    let mut failing = |_: &[StateValue], _: &[u32], _: &mut [f64]| {
        Err(softgfn_core::CoreError::Metric {
            metric: "log_pf".into(),
            details: "the network failed".into(),
        })
    };
    let e = m.evaluate(&mut failing).unwrap_err().to_string();
    assert!(e.contains("the network failed"), "{e}");
}

#[test]
fn spearman_uses_the_configured_strings_and_rounds_and_the_same_orders_every_time() {
    let config = BitseqConfig {
        spearman_rounds: 3,
        spearman_strings: 20,
        ..small()
    };
    let env = Bitseq::new(config.clone()).unwrap();
    let m = BitseqMonitor::new(&env);
    assert_eq!((m.num_test_strings(), m.rounds()), (20, 3));
    assert_eq!(m.test_states(), &env.test_set().states[..20 * 5]);

    // An order-dependent policy: the log-probability of writing at position p as step t is
    // -(t + 1) * p / 10, so log p̂ depends on the orders drawn.
    let rows = Cell::new(0);
    let mut policy = |states: &[StateValue], actions: &[u32], out: &mut [f64]| {
        rows.set(rows.get() + actions.len());
        for ((s, &a), o) in states.chunks_exact(5).zip(actions).zip(out.iter_mut()) {
            let filled = s[1..].iter().filter(|&&t| t != 8).count() as f64;
            *o = -(filled + 1.0) * f64::from(a / 8) / 10.0 - f64::from(a % 8) / 7.0;
        }
        Ok(())
    };
    let a = m.spearman(&mut policy).unwrap();
    assert_eq!(rows.get(), 20 * 3 * 4);
    let b = m.spearman(&mut policy).unwrap();
    assert_eq!(
        a.to_bits(),
        b.to_bits(),
        "every evaluation uses the same orders"
    );
    // The orders continue stream(mode_seed, Eval) after the test set's draws.
    let mut rng = stream(config.mode_seed, Stream::Eval);
    let _ = env.modes().test_set(&mut rng);
    let ts = env.test_set();
    let log_p_hat = env
        .log_p_hat(&ts.states[..20 * 5], 3, &mut rng, &mut policy)
        .unwrap();
    let log_r: Vec<f64> = ts.states[..20 * 5]
        .chunks_exact(5)
        .map(|x| env.log_reward_of(x).unwrap())
        .collect();
    let want = softgfn_bitseq::spearman(&log_r, &log_p_hat).unwrap();
    assert_eq!(a.to_bits(), want.to_bits());
    assert!(a.is_finite() && a.abs() < 1.0, "{a}");
}

#[test]
fn spearman_parameters_are_validated() {
    let field = |config: BitseqConfig| match Bitseq::new(config) {
        Err(softgfn_core::CoreError::InvalidParameter {
            field, expected, ..
        }) => (field, expected),
        other => panic!("expected an invalid parameter, got {other:?}"),
    };
    for rounds in [0, 10_001] {
        let (f, _) = field(BitseqConfig {
            spearman_rounds: rounds,
            ..small()
        });
        assert_eq!(f, "spearman_rounds");
    }
    for strings in [1, 37] {
        let (f, expected) = field(BitseqConfig {
            spearman_strings: strings,
            ..small()
        });
        assert_eq!(f, "spearman_strings");
        assert!(expected.contains("2..=36"), "{expected}");
    }
    for strings in [0, 2, 36] {
        Bitseq::new(BitseqConfig {
            spearman_strings: strings,
            ..small()
        })
        .unwrap();
    }
    // The new keys parse from parameters and have their documented defaults.
    let env = Bitseq::from_params(&serde_json::json!({"spearman_strings": 720})).unwrap();
    assert_eq!(env.config().spearman_strings, 720);
    assert_eq!(env.config().spearman_rounds, 10);
    assert_eq!(env.params()["spearman_rounds"], 10);
    assert_eq!(BitseqMonitor::new(&env).num_test_strings(), 720);
    assert_eq!(
        BitseqMonitor::new(&Bitseq::new(BitseqConfig::default()).unwrap()).num_test_strings(),
        7_200
    );
}

/// The names of the metrics of one evaluation.
fn names_of(m: &mut dyn Monitor) -> Vec<String> {
    let out = m.evaluate(&mut flat).unwrap();
    out.into_iter().map(|(n, _)| n).collect()
}

#[test]
fn spearman_every_computes_it_once_per_interval_of_training_strings_and_after_a_resume() {
    let env = Bitseq::new(BitseqConfig {
        spearman_every: 4,
        ..small()
    })
    .unwrap();
    let x = flipped(&env, 0, 1);
    let observe = |m: &mut dyn Monitor, strings: usize| {
        for _ in 0..strings {
            m.observe(&x).unwrap();
        }
    };
    let both = vec![MODES_FOUND.to_string(), SPEARMAN.to_string()];
    let modes = vec![MODES_FOUND.to_string()];
    let mut m = env.monitor().unwrap();
    // Evaluations after 0, 2, 4, 5, 7, 8 and 13 strings: spearman at the first one, then at the
    // first one in each new block of 4 strings (4, 8, 13), never twice in one block.
    let mut seen = Vec::new();
    for strings in [0, 2, 2, 1, 2, 1, 5] {
        observe(m.as_mut(), strings);
        seen.push(names_of(m.as_mut()));
    }
    let want = [&both, &modes, &both, &modes, &modes, &both, &both];
    assert_eq!(seen.iter().collect::<Vec<_>>(), want);

    // A monitor restored from a state saved after the evaluation at 5 strings continues the
    // same schedule: no spearman at 7, then at 8.
    let mut a = env.monitor().unwrap();
    observe(a.as_mut(), 5);
    let saved = a.save();
    let mut b = env.monitor().unwrap();
    b.restore(&saved).unwrap();
    observe(b.as_mut(), 2);
    assert_eq!(names_of(b.as_mut()), modes);
    observe(b.as_mut(), 1);
    assert_eq!(names_of(b.as_mut()), both);

    // 0 (the default) computes it at every evaluation.
    let mut every = Bitseq::new(small()).unwrap().monitor().unwrap();
    assert_eq!(names_of(every.as_mut()), both);
    assert_eq!(names_of(every.as_mut()), both);
    let parsed = Bitseq::from_params(&serde_json::json!({"spearman_every": 160000})).unwrap();
    assert_eq!(parsed.config().spearman_every, 160_000);
}
