//! Train trajectory balance on a small hypergrid from the library API and watch the exact L1
//! distance to R/Z fall.
//!
//! Run: `cargo run --release -p softgfn-examples --example 01_hypergrid_tb -- [iterations]`

use softgfn_train::{EvalRecord, Trainer, apply_override, resolve};

// Linking these crates registers the hypergrid environment and the balance algorithms.
use softgfn_gflownet as _;
use softgfn_hypergrid as _;

fn main() -> anyhow::Result<()> {
    let iterations: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(2000);
    // ANCHOR: config
    let mut table = toml::Table::new();
    for kv in [
        "env.name=hypergrid",
        "env.dim=2",
        "env.side=8",
        "algo.name=tb",
        "eval.interval=250",
        "seed=2",
    ] {
        apply_override(&mut table, kv)?;
    }
    apply_override(&mut table, &format!("iterations={iterations}"))?;
    let (config, env) = resolve(table)?;
    // ANCHOR_END: config
    // ANCHOR: train
    let mut trainer = Trainer::new(config, env)?;
    let mut records: Vec<EvalRecord> = Vec::new();
    let summary = trainer.run(&mut records, &mut ())?;
    for r in &records {
        println!(
            "iteration {:>5}  loss {:>8.4}  log Z {:.3} (true {:.3})  exact_l1 {:.4}",
            r.iteration,
            r.loss.unwrap_or(f64::NAN),
            r.log_z_learned.unwrap_or(f64::NAN),
            r.log_z_true.unwrap_or(f64::NAN),
            r.exact_l1.unwrap_or(f64::NAN),
        );
    }
    println!(
        "median {:.2} ms per iteration",
        summary.median_ms_per_iteration
    );
    // ANCHOR_END: train
    Ok(())
}
