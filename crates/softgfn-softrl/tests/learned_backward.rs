//! The naive learned-`P_B` mode of the soft agents (`backward_policy = "learned"`,
//! `naive_learned_backward = true`): the `log Z` estimators and `log p(x)` use the agent's
//! learned backward head, not the uniform policy. On the hypergrid D=2, H=8, for SoftDQN,
//! M-DQN and SAC: the `P_B` tables are the head's (valid distributions, far from uniform), the
//! exact ELBO and EUBO by dynamic programming with them bracket `log Z`, and the sampled ELBO
//! and EUBO of the trainer's estimators agree with those exact values within their 95%
//! intervals while the exact ELBO under the uniform `P_B` lies far outside.
//! Run in release mode.

use softgfn_core::exact::StateGraph;
use softgfn_core::math::logsumexp;
use softgfn_core::rng::{Stream, stream};
use softgfn_train::estimate::{log_z_estimates, policy_tables};
use softgfn_train::{Trainer, apply_override, resolve};

use softgfn_hypergrid as _;
use softgfn_softrl as _;

fn trainer(algo: &str, iterations: u64) -> Trainer {
    let mut table = toml::Table::new();
    for kv in [
        "env.dim=2",
        "env.side=8",
        "seed=3",
        "algo.backward_policy=\"learned\"",
        "algo.naive_learned_backward=true",
    ] {
        apply_override(&mut table, kv).unwrap();
    }
    apply_override(&mut table, &format!("algo.name=\"{algo}\"")).unwrap();
    apply_override(&mut table, &format!("iterations={iterations}")).unwrap();
    let (config, env) = resolve(table).unwrap();
    let mut t = Trainer::new(config, env).unwrap();
    for _ in 0..iterations {
        t.train_iteration().unwrap();
    }
    t
}

fn check(algo: &str, iterations: u64) {
    let mut t = trainer(algo, iterations);
    let env = softgfn_core::build_env("hypergrid", &t.env().params()).unwrap();
    let graph = StateGraph::build(env.as_ref(), 1 << 20).unwrap();
    let target = graph.target();
    let nb = graph.num_backward_actions;
    let (log_pf, log_pb) = policy_tables(env.as_ref(), &graph, t.algorithm_mut()).unwrap();

    // The tables are distributions over the valid backward actions, and not the uniform one.
    let mut uniform = vec![f64::NEG_INFINITY; log_pb.len()];
    let mut far = 0.0f64;
    for s in 0..graph.num_states() {
        let mask = &graph.backward_masks[s * nb..(s + 1) * nb];
        let valid = mask.iter().filter(|&&m| m).count();
        if valid == 0 {
            continue;
        }
        let row = &log_pb[s * nb..(s + 1) * nb];
        assert!(logsumexp(row).abs() < 1e-9, "{algo}: state {s}: {row:?}");
        for b in 0..nb {
            if mask[b] {
                uniform[s * nb + b] = -(valid as f64).ln();
                far = far.max((row[b] - uniform[s * nb + b]).abs());
            } else {
                assert_eq!(row[b], f64::NEG_INFINITY);
            }
        }
    }
    assert!(far > 0.05, "{algo}: learned P_B within {far} of uniform");

    let learned = graph.log_z_bounds(&log_pf, &log_pb).unwrap();
    let uni = graph.log_z_bounds(&log_pf, &uniform).unwrap();
    let log_z = target.log_z;
    assert!(learned.elbo <= log_z + 1e-9 && log_z <= learned.eubo + 1e-9);

    // The sampled estimators (as the trainer's records compute them) follow the learned P_B.
    let mut rng = stream(11, Stream::Estimators);
    let est = log_z_estimates(
        env.as_ref(),
        t.algorithm_mut(),
        Some((&graph, &target)),
        4096,
        &mut rng,
    )
    .unwrap();
    let eubo = est.eubo.unwrap();
    eprintln!(
        "{algo}: max |log P_B - uniform| {far:.3}; exact ELBO learned {:.4} (uniform {:.4}), sampled {:.4} +- {:.4}; exact EUBO learned {:.4} (uniform {:.4}), sampled {:.4} +- {:.4}; log Z {log_z:.4}",
        learned.elbo,
        uni.elbo,
        est.elbo.value,
        est.elbo.ci,
        learned.eubo,
        uni.eubo,
        eubo.value,
        eubo.ci
    );
    assert!(
        (est.elbo.value - learned.elbo).abs() <= est.elbo.ci,
        "{algo}: sampled ELBO {} +- {} vs exact {}",
        est.elbo.value,
        est.elbo.ci,
        learned.elbo
    );
    assert!(
        (eubo.value - learned.eubo).abs() <= eubo.ci,
        "{algo}: sampled EUBO {} +- {} vs exact {}",
        eubo.value,
        eubo.ci,
        learned.eubo
    );
    assert!(
        (est.elbo.value - uni.elbo).abs() > 3.0 * est.elbo.ci,
        "{algo}: the sampled ELBO {} +- {} cannot tell the learned P_B from the uniform one ({})",
        est.elbo.value,
        est.elbo.ci,
        uni.elbo
    );

    // The trainer's own record uses the same tables.
    let rec = t.evaluate().unwrap();
    assert!((rec.exact_log_z_elbo.unwrap() - learned.elbo).abs() < 1e-9);
    assert!((rec.exact_log_z_eubo.unwrap() - learned.eubo).abs() < 1e-9);
}

#[test]
fn soft_dqn_estimators_use_the_learned_backward_policy() {
    check("soft_dqn", 200);
}

#[test]
fn munchausen_dqn_estimators_use_the_learned_backward_policy() {
    check("munchausen_dqn", 200);
}

#[test]
fn sac_estimators_use_the_learned_backward_policy() {
    check("sac", 200);
}
