//! TB, DB, SubTB and FM learn the hypergrid D=2, H=8 (standard reward) to exact L1 <= 0.05.
//! Run in release mode (`cargo test --release`); each takes seconds on one core.

use softgfn_train::{EvalRecord, Trainer, apply_override, resolve};

use softgfn_gflownet as _;
use softgfn_hypergrid as _;

fn train(algo: &str, iterations: u64, extra: &[&str]) -> Vec<EvalRecord> {
    let mut table = toml::Table::new();
    for kv in [
        "env.name=\"hypergrid\"",
        "env.dim=2",
        "env.side=8",
        "env.reward=\"standard\"",
        "seed=7",
        "eval.interval=250",
    ]
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
    let first = &records[0];
    let last = records.last().unwrap();
    let l1_0 = first.exact_l1.unwrap();
    let l1 = last.exact_l1.unwrap();
    eprintln!(
        "{algo}: exact_l1 {l1_0:.3} -> {l1:.4}, log_z {:.3} (true {:.3}), {} its, median {:.2} ms/it",
        last.log_z_learned.unwrap(),
        last.log_z_true.unwrap(),
        last.iteration,
        last.ms_per_iteration.unwrap()
    );
    assert!(
        l1_0 > 0.3,
        "{algo}: the untrained policy is already close: {l1_0}"
    );
    assert!(
        l1 <= 0.05,
        "{algo}: exact L1 {l1} after {iterations} iterations"
    );
}

#[test]
fn tb_learns_hypergrid_2x8() {
    check("tb", 2000);
}

#[test]
fn db_learns_hypergrid_2x8() {
    check("db", 2000);
}

#[test]
fn subtb_learns_hypergrid_2x8() {
    check("subtb", 2000);
}

#[test]
fn fm_learns_hypergrid_2x8() {
    check("fm", 3000);
}

#[test]
fn same_seed_same_numbers() {
    let a = train("tb", 60, &["eval.interval=30"]);
    let b = train("tb", 60, &["eval.interval=30"]);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.exact_l1, y.exact_l1);
        assert_eq!(x.loss, y.loss);
        assert_eq!(x.log_z_learned, y.log_z_learned);
    }
    let c = train("tb", 60, &["eval.interval=30", "seed=8"]);
    assert_ne!(a.last().unwrap().exact_l1, c.last().unwrap().exact_l1);
}
