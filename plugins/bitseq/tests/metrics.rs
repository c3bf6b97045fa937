//! Spearman's rank correlation and the `log p̂` importance-sampling estimate.

use std::cell::Cell;

use softgfn_bitseq::{
    Bitseq, BitseqConfig, DEFAULT_LOG_P_HAT_ROUNDS, LOG_P_HAT_BATCH, average_ranks, spearman,
};
use softgfn_core::exact::StateGraph;
use softgfn_core::math::logsumexp;
use softgfn_core::rng::{Stream, below, stream};
use softgfn_core::{CoreError, Environment, UniformBackward};

fn small(n: usize, k: usize) -> Bitseq {
    Bitseq::new(BitseqConfig {
        n,
        k,
        num_modes: 3,
        block_len: 4,
        alphabet: ["0000", "1111", "1100", "0011"].map(String::from).to_vec(),
        mode_threshold: 2,
        ..Default::default()
    })
    .unwrap()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn spearman_known_answers() {
    let a = [1.0, 2.0, 3.0, 4.0, 5.0];
    assert!(close(
        spearman(&a, &[2.0, 4.0, 8.0, 16.0, 32.0]).unwrap(),
        1.0,
        1e-15
    ));
    assert!(close(
        spearman(&a, &[5.0, 4.0, 3.0, 2.0, 1.0]).unwrap(),
        -1.0,
        1e-15
    ));
    // Ties share the mean rank: ranks [1, 2.5, 2.5, 4] against [1, 2, 3, 4] give
    // 4.5 / sqrt(4.5 * 5) (scipy.stats.spearmanr: 0.9486832980505138).
    let r = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    assert!(close(r, 0.9486832980505138, 1e-15), "{r}");
    // Ranks [1, 2, 3.5, 5, 3.5]: 8 / sqrt(10 * 9.5) (scipy: 0.8207826816681233).
    let r = spearman(&a, &[5.0, 6.0, 7.0, 8.0, 7.0]).unwrap();
    assert!(close(r, 0.8207826816681233, 1e-15), "{r}");
    // Symmetric and invariant under monotone maps; -inf ranks lowest.
    let x = [0.3, -1.0, 2.5, 0.0, 7.0, 0.3];
    let y = [1.0, 0.5, -2.0, 3.0, 4.0, f64::NEG_INFINITY];
    let r = spearman(&x, &y).unwrap();
    assert!(close(r, spearman(&y, &x).unwrap(), 1e-15));
    let ex: Vec<f64> = x.iter().map(|v| v.exp()).collect();
    assert!(close(r, spearman(&ex, &y).unwrap(), 1e-15));
    assert!(r.abs() < 1.0);
    assert_eq!(
        average_ranks(&[2.0, 2.0, 1.0, 2.0]).unwrap(),
        [3.0, 3.0, 1.0, 3.0]
    );
}

#[test]
fn spearman_degenerate_inputs() {
    assert!(
        spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0])
            .unwrap()
            .is_nan()
    );
    assert!(spearman(&[1.0, 2.0], &[1.0]).is_err());
    assert!(spearman(&[1.0], &[1.0]).is_err());
    let e = spearman(&[1.0, f64::NAN], &[1.0, 2.0]).unwrap_err();
    assert!(e.to_string().contains("NaN"), "{e}");
}

#[test]
fn log_p_hat_of_the_flow_policy_is_exact() {
    for (n, k) in [(8, 2), (12, 4)] {
        let env = small(n, k);
        let en = env.as_enumerable().unwrap();
        let graph = StateGraph::build(&env, 1 << 20).unwrap();
        let flows = graph.flows(&UniformBackward);
        let p = graph.terminal_distribution(&flows.log_pf).unwrap();
        let terminals: Vec<usize> = (0..graph.num_states())
            .filter(|&s| graph.terminal[s])
            .collect();
        let xs: Vec<i32> = terminals
            .iter()
            .flat_map(|&s| graph.state(s).to_vec())
            .collect();
        let na = env.spec().num_actions;
        let mut calls = 0;
        let mut log_pf = |states: &[i32], actions: &[u32], out: &mut [f64]| {
            calls += 1;
            // Every action is valid in its state.
            let mut masks = vec![false; actions.len() * na];
            env.forward_masks(states, &mut masks)?;
            let mut idx = vec![0u64; actions.len()];
            en.state_index(states, &mut idx)?;
            for (i, (&s, &a)) in idx.iter().zip(actions).enumerate() {
                assert!(masks[i * na + a as usize]);
                out[i] = flows.log_pf_of(s as usize)[a as usize];
            }
            Ok(())
        };
        let mut rng = stream(5, Stream::Eval);
        let est = env
            .log_p_hat(&xs, DEFAULT_LOG_P_HAT_ROUNDS, &mut rng, &mut log_pf)
            .unwrap();
        // All 2^n strings x 10 rounds x n/k steps, in batches of whole trajectories.
        let per_call = LOG_P_HAT_BATCH / (n / k);
        assert_eq!(calls, (terminals.len() * 10).div_ceil(per_call));
        assert_eq!(est.len(), terminals.len());
        for (&s, &e) in terminals.iter().zip(&est) {
            let exact = p[s].ln();
            assert!(
                close(e + env.log_num_orders(), exact, 1e-9),
                "n = {n}, k = {k}, state {:?}: {} vs {exact}",
                graph.state(s),
                e + env.log_num_orders()
            );
        }
    }
}

#[test]
fn log_p_hat_of_the_uniform_policy_is_uniform_over_strings() {
    // A uniformly random valid action: every string has probability 2^-n whatever the order.
    let env = small(12, 3);
    let base = 8.0f64;
    let l = 4;
    let mut log_pf = |states: &[i32], _: &[u32], out: &mut [f64]| {
        for (s, o) in states.chunks_exact(l + 1).zip(out.iter_mut()) {
            let empties = s[1..].iter().filter(|&&t| t == 8).count() as f64;
            *o = -(empties * base).ln();
        }
        Ok(())
    };
    let ts = env.test_set();
    let est = env
        .log_p_hat(&ts.states, 3, &mut stream(1, Stream::Eval), &mut log_pf)
        .unwrap();
    for e in est {
        assert!(close(e + env.log_num_orders(), -12.0 * 2f64.ln(), 1e-12));
    }
}

/// An order-dependent "policy": the log-probability of writing at position `p` as step `t` is
/// `-(t + 1) * p / 10`, so the sum over a trajectory depends on its construction order.
fn order_dependent(states: &[i32], actions: &[u32], out: &mut [f64], l: usize, base: u32) {
    for ((s, &a), o) in states.chunks_exact(l + 1).zip(actions).zip(out.iter_mut()) {
        let filled = s[1..].iter().filter(|&&t| t != base as i32).count() as f64;
        let p = f64::from(a / base);
        *o = -(filled + 1.0) * p / 10.0;
    }
}

#[test]
fn log_p_hat_follows_the_documented_orders_and_batches_do_not_matter() {
    let env = small(12, 3);
    let (l, base) = (4usize, 8u32);
    let ts = env.test_set();
    let xs = &ts.states[..7 * (l + 1)];
    let rounds = 3;

    // Independent re-derivation of the documented draws and formula.
    let mut rng = stream(11, Stream::Eval);
    let mut want = Vec::new();
    for _ in 0..7 {
        let mut lps = Vec::new();
        for _ in 0..rounds {
            let mut order: Vec<usize> = (1..=l).collect();
            for i in (1..l).rev() {
                let j = below(&mut rng, (i + 1) as u64) as usize;
                order.swap(i, j);
            }
            lps.push(
                order
                    .iter()
                    .enumerate()
                    .map(|(t, &p)| -((t + 1) as f64) * p as f64 / 10.0)
                    .sum::<f64>(),
            );
        }
        want.push(logsumexp(&lps) - (rounds as f64).ln());
    }

    let mut results = Vec::new();
    for max_rows in [1, 4, 7, 1 << 16] {
        let calls = Cell::new(0);
        let mut f = |s: &[i32], a: &[u32], o: &mut [f64]| {
            calls.set(calls.get() + 1);
            assert!(a.len() <= max_rows.max(l), "{} rows", a.len());
            assert_eq!(a.len() % l, 0, "whole trajectories");
            order_dependent(s, a, o, l, base);
            Ok(())
        };
        let mut rng = stream(11, Stream::Eval);
        let est = env
            .log_p_hat_batched(xs, rounds, &mut rng, &mut f, max_rows)
            .unwrap();
        let per_call = (max_rows / l).max(1);
        assert_eq!(calls.get(), (7 * rounds).div_ceil(per_call), "{max_rows}");
        results.push(est);
    }
    for r in &results {
        assert_eq!(r, &results[0]);
    }
    for (e, w) in results[0].iter().zip(&want) {
        assert!(close(*e, *w, 1e-12), "{e} vs {w}");
    }
    // The orders vary: the estimate is not the value of a single fixed order.
    let fixed: f64 = (1..=l).map(|p| -(p as f64) * p as f64 / 10.0).sum();
    assert!(results[0].iter().any(|e| !close(*e, fixed, 1e-9)));
}

#[test]
fn log_p_hat_rejects_bad_inputs() {
    let env = small(8, 2);
    let x = env.modes().state_row(0);
    let mut ok = |_: &[i32], _: &[u32], o: &mut [f64]| {
        o.fill(-1.0);
        Ok(())
    };
    let mut rng = stream(0, Stream::Eval);
    assert!(env.log_p_hat(&x, 0, &mut rng, &mut ok).is_err());
    let partial = env.state_from_bit_string("0101----").unwrap();
    let e = env.log_p_hat(&partial, 2, &mut rng, &mut ok).unwrap_err();
    assert!(e.to_string().contains("complete strings"), "{e}");
    assert!(env.log_p_hat(&x[..3], 2, &mut rng, &mut ok).is_err());
    let mut nan = |_: &[i32], _: &[u32], o: &mut [f64]| {
        o.fill(f64::NAN);
        Ok(())
    };
    assert!(env.log_p_hat(&x, 2, &mut rng, &mut nan).is_err());
    let mut failing = |_: &[i32], _: &[u32], _: &mut [f64]| {
        Err(CoreError::Environment {
            env: "policy".into(),
            message: "network failed".into(),
        })
    };
    let e = env.log_p_hat(&x, 2, &mut rng, &mut failing).unwrap_err();
    assert!(e.to_string().contains("network failed"), "{e}");
    // A zero-probability step gives log p̂ = -inf, not an error.
    let mut zero = |_: &[i32], _: &[u32], o: &mut [f64]| {
        o.fill(f64::NEG_INFINITY);
        Ok(())
    };
    let est = env.log_p_hat(&x, 2, &mut rng, &mut zero).unwrap();
    assert_eq!(est, [f64::NEG_INFINITY]);
}
