//! SoftDQN, Munchausen DQN and SAC learn the hypergrid D=2, H=8 (standard reward): exact L1
//! <= 0.05 and V(s0) within 0.1 of log Z, from an untrained agent far from both.
//! Run in release mode (`cargo test --release`).

use softgfn_train::{EvalRecord, Trainer, apply_override, resolve};

use softgfn_hypergrid as _;
use softgfn_softrl as _;

fn train(algo: &str, iterations: u64, extra: &[&str]) -> Vec<EvalRecord> {
    let mut table = toml::Table::new();
    for kv in ["env.dim=2", "env.side=8", "seed=7", "eval.interval=250"]
        .iter()
        .chain(extra)
    {
        apply_override(&mut table, kv).unwrap();
    }
    apply_override(&mut table, &format!("algo.name=\"{algo}\"")).unwrap();
    apply_override(&mut table, &format!("iterations={iterations}")).unwrap();
    let (config, env) = resolve(table).unwrap();
    let mut trainer = Trainer::new(config, env).unwrap();
    let mut records: Vec<EvalRecord> = Vec::new();
    trainer.run(&mut records, &mut ()).unwrap();
    records
}

fn check(algo: &str, iterations: u64) {
    let records = train(algo, iterations, &[]);
    let (first, last) = (&records[0], records.last().unwrap());
    let log_z = last.log_z_true.unwrap();
    let (l1_0, v0_0) = (first.exact_l1.unwrap(), first.log_z_learned.unwrap());
    let (l1, v0) = (last.exact_l1.unwrap(), last.log_z_learned.unwrap());
    eprintln!(
        "{algo}: exact_l1 {l1_0:.3} -> {l1:.4}; V(s0) {v0_0:.3} -> {v0:.4} (log Z {log_z:.4})"
    );
    assert!(l1_0 > 0.3, "{algo}: untrained exact L1 {l1_0}");
    assert!(
        (v0_0 - log_z).abs() > 0.5,
        "{algo}: untrained V(s0) {v0_0} already near log Z"
    );
    assert!(l1 <= 0.05, "{algo}: exact L1 {l1}");
    assert!(
        (v0 - log_z).abs() <= 0.1,
        "{algo}: V(s0) {v0} vs log Z {log_z}"
    );
}

#[test]
fn soft_dqn_learns_hypergrid_2x8() {
    check("soft_dqn", 1000);
}

#[test]
fn munchausen_dqn_learns_hypergrid_2x8() {
    check("munchausen_dqn", 1000);
}

#[test]
fn sac_learns_hypergrid_2x8() {
    check("sac", 3000);
}

#[test]
fn learned_backward_policy_is_refused_unless_naive() {
    let mut table = toml::Table::new();
    for kv in [
        "env.dim=2",
        "env.side=4",
        "algo.name=soft_dqn",
        "algo.backward_policy=learned",
    ] {
        apply_override(&mut table, kv).unwrap();
    }
    let e = resolve(table.clone())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("fixed P_B") && e.contains("naive_learned_backward"),
        "{e}"
    );
    apply_override(&mut table, "algo.naive_learned_backward=true").unwrap();
    apply_override(&mut table, "iterations=40").unwrap();
    let (config, env) = resolve(table).unwrap();
    let mut trainer = Trainer::new(config, env).unwrap();
    let mut records: Vec<EvalRecord> = Vec::new();
    trainer.run(&mut records, &mut ()).unwrap();
    assert!(records.last().unwrap().loss.is_some_and(f64::is_finite));
}

#[test]
fn variants_run() {
    for extra in [
        &["algo.dueling=true"][..],
        &["algo.double=true", "algo.loss=\"mse\""][..],
        &[
            "algo.replay=\"uniform\"",
            "algo.tau=1.0",
            "algo.target_update_interval=5",
        ][..],
        &[
            "algo.per_new_priority=\"max\"",
            "algo.per_apply_weights=true",
            "algo.leaf_coef=2.0",
        ][..],
        &[
            "algo.epsilon=0.5",
            "algo.epsilon_horizon=20",
            "algo.backward_policy=\"tree\"",
        ][..],
    ] {
        let mut args = vec!["iterations=40", "eval.interval=20"];
        args.extend_from_slice(extra);
        let r = train("munchausen_dqn", 40, &args);
        assert!(
            r.last().unwrap().loss.is_some_and(f64::is_finite),
            "{extra:?}"
        );
    }
}
