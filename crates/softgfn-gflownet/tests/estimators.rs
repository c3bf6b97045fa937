//! The `log Z` estimators on the hypergrid D=2, H=8 (standard reward), untrained and after
//! SubTB training (seed 7): the exact ELBO and EUBO of the dynamic program equal a brute-force
//! sum over every trajectory and bracket `log Z`; the sampled ELBO and EUBO agree with the exact
//! ones within their intervals; the importance-weighted estimate approaches `log Z` as the
//! number of samples grows; `log p(x)` estimates match the exact terminal distribution.
//! Run in release mode.

use softgfn_core::Environment;
use softgfn_core::exact::StateGraph;
use softgfn_core::rng::{Stream, stream};
use softgfn_train::estimate::{
    forward_log_weights, log_mean_exp_ci, log_px_estimates, log_z_estimates, mean_ci, policy_tables,
};
use softgfn_train::{EvalRecord, Trainer, apply_override, resolve};

use softgfn_gflownet as _;
use softgfn_hypergrid as _;

fn trainer(iterations: u64) -> Trainer {
    let mut table = toml::Table::new();
    for kv in [
        "env.name=\"hypergrid\"",
        "env.dim=2",
        "env.side=8",
        "env.reward=\"standard\"",
        "seed=7",
        "algo.name=\"subtb\"",
        "eval.interval=500",
    ] {
        apply_override(&mut table, kv).unwrap();
    }
    apply_override(&mut table, &format!("iterations={iterations}")).unwrap();
    let (config, env) = resolve(table).unwrap();
    Trainer::new(config, env).unwrap()
}

/// ELBO and EUBO by enumerating every complete trajectory (depth-first over the graph).
fn brute_force_bounds(graph: &StateGraph, log_pf: &[f64], log_pb: &[f64]) -> (f64, f64) {
    let log_z = graph.target().log_z;
    let (na, nb) = (graph.num_actions, graph.num_backward_actions);
    let mut elbo = 0.0;
    let mut eubo = 0.0;
    // (state, sum log P_F, sum log P_B)
    let mut stack = vec![(graph.initial as usize, 0.0f64, 0.0f64)];
    let mut paths = 0usize;
    while let Some((s, lpf, lpb)) = stack.pop() {
        if graph.can_exit(s) {
            let e = graph.exit_action.unwrap() as usize;
            let lpf = lpf + log_pf[s * na + e];
            let lw = graph.log_reward[s] + lpb - lpf;
            elbo += lpf.exp() * lw;
            eubo += (graph.log_reward[s] - log_z + lpb).exp() * lw;
            paths += 1;
        }
        for k in graph.child_offsets[s]..graph.child_offsets[s + 1] {
            let c = graph.child_index[k] as usize;
            stack.push((
                c,
                lpf + log_pf[s * na + graph.child_action[k] as usize],
                lpb + log_pb[c * nb + graph.child_backward_action[k] as usize],
            ));
        }
    }
    assert_eq!(paths, 12_869, "C(16, 8) - 1 trajectories");
    (elbo, eubo)
}

fn check(trainer: &mut Trainer, label: &str) {
    let env = trainer.env().spec().clone();
    let graph = {
        let e: &dyn Environment = trainer.env();
        StateGraph::build(e, 1 << 20).unwrap()
    };
    let target = graph.target();
    // Split borrows: the trainer's environment and its algorithm.
    let (log_pf, log_pb) = {
        let env_box = softgfn_core::build_env("hypergrid", &trainer.env().params()).unwrap();
        policy_tables(env_box.as_ref(), &graph, trainer.algorithm_mut()).unwrap()
    };
    let bounds = graph.log_z_bounds(&log_pf, &log_pb).unwrap();
    let (elbo_bf, eubo_bf) = brute_force_bounds(&graph, &log_pf, &log_pb);
    assert!(
        (bounds.elbo - elbo_bf).abs() < 1e-9,
        "{label}: {bounds:?} vs {elbo_bf}"
    );
    assert!(
        (bounds.eubo - eubo_bf).abs() < 1e-9,
        "{label}: {bounds:?} vs {eubo_bf}"
    );
    assert!(
        bounds.elbo <= target.log_z && target.log_z <= bounds.eubo,
        "{label}: {bounds:?}"
    );
    assert_eq!(env.name, "hypergrid");

    let env_box = softgfn_core::build_env("hypergrid", &trainer.env().params()).unwrap();
    let env = env_box.as_ref();
    let algo = trainer.algorithm_mut();
    let mut rng = stream(11, Stream::Estimators);
    let est = log_z_estimates(env, algo, Some((&graph, &target)), 4096, &mut rng).unwrap();
    let eubo = est.eubo.unwrap();
    eprintln!(
        "{label}: log Z {:.4}; exact ELBO {:.4} EUBO {:.4}; sampled ELBO {:.4} ± {:.4}, EUBO {:.4} ± {:.4}, IW@4096 {:.4} ± {:.4}",
        target.log_z,
        bounds.elbo,
        bounds.eubo,
        est.elbo.value,
        est.elbo.ci,
        eubo.value,
        eubo.ci,
        est.iw.value,
        est.iw.ci
    );
    assert!(
        (est.elbo.value - bounds.elbo).abs() <= est.elbo.ci,
        "{label}: ELBO"
    );
    assert!((eubo.value - bounds.eubo).abs() <= eubo.ci, "{label}: EUBO");
    assert!(est.elbo.value <= est.iw.value, "{label}: Jensen");

    // The importance-weighted estimate approaches log Z: mean error over 16 draws of 16
    // trajectories, against the error of one draw of 4096.
    let small: Vec<f64> = (0..16)
        .map(|_| {
            let lw = forward_log_weights(env, algo, 16, &mut rng).unwrap();
            (log_mean_exp_ci(&lw).value - target.log_z).abs()
        })
        .collect();
    let small = mean_ci(&small).value;
    let large = (est.iw.value - target.log_z).abs();
    eprintln!("{label}: |IW - log Z| at 16 samples {small:.4}, at 4096 {large:.4}");
    assert!(large < small, "{label}: {large} vs {small}");
    assert!(
        large <= 2.0 * est.iw.ci,
        "{label}: {large} vs ci {}",
        est.iw.ci
    );
}

#[test]
fn log_z_bounds_and_estimators_untrained_and_trained() {
    let mut t = trainer(2000);
    check(&mut t, "untrained");
    let mut records: Vec<EvalRecord> = Vec::new();
    t.run(&mut records, &mut ()).unwrap();
    check(&mut t, "trained");
    for r in &records {
        let (lo, z, hi) = (
            r.exact_log_z_elbo.unwrap(),
            r.log_z_true.unwrap(),
            r.exact_log_z_eubo.unwrap(),
        );
        assert!(lo <= z && z <= hi, "{r:?}");
        assert!(r.log_z_elbo.is_some() && r.log_z_iw.is_some() && r.log_z_iw_ci.is_some());
        assert!(r.log_z_eubo.is_some());
    }
}

#[test]
fn log_px_estimates_match_the_exact_terminal_distribution() {
    let mut t = trainer(500);
    t.run(&mut Vec::<EvalRecord>::new(), &mut ()).unwrap();
    let env_box = softgfn_core::build_env("hypergrid", &t.env().params()).unwrap();
    let env = env_box.as_ref();
    let graph = StateGraph::build(env, 1 << 20).unwrap();
    let algo = t.algorithm_mut();
    let (log_pf, _) = policy_tables(env, &graph, algo).unwrap();
    let p = graph.terminal_distribution(&log_pf).unwrap();
    let mut rng = stream(3, Stream::Estimators);
    let objects: Vec<i32> = [[0, 0], [7, 7], [1, 6], [3, 4], [6, 0]]
        .iter()
        .flatten()
        .copied()
        .collect();
    let est = log_px_estimates(env, algo, &objects, 256, &mut rng).unwrap();
    for (k, x) in objects.chunks_exact(2).enumerate() {
        let i = (x[0] * 8 + x[1]) as usize;
        let exact = p[graph_index(&graph, x, i)].ln();
        eprintln!("log p({x:?}): estimate {:.4}, exact {exact:.4}", est[k]);
        assert!(
            (est[k] - exact).abs() < 0.05,
            "{x:?}: {} vs {exact}",
            est[k]
        );
    }
    // Bad input: no backward samples, an object that is not terminal is fine for the hypergrid
    // (every state is), a row of the wrong width is an error.
    assert!(log_px_estimates(env, algo, &objects, 0, &mut rng).is_err());
    assert!(log_px_estimates(env, algo, &objects[..3], 4, &mut rng).is_err());
}

/// The graph index of a state (checked against the row).
fn graph_index(graph: &StateGraph, x: &[i32], guess: usize) -> usize {
    if graph.state(guess) == x {
        return guess;
    }
    (0..graph.num_states())
        .find(|&s| graph.state(s) == x)
        .unwrap()
}
