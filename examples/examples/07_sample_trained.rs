//! Use what was trained: train SubTB on a small hypergrid into a run directory, load it back
//! with `Trained::load`, draw objects from the policy, estimate their `log p(x)`, and evaluate
//! the model again (exact metrics and the `log Z` estimators).
//!
//! Run: `cargo run --release -p softgfn-examples --example 07_sample_trained -- [iterations]`

use softgfn_core::rng::{Stream, stream};
use softgfn_train::record::{CONFIG_FILE, SUMMARY_FILE};
use softgfn_train::{EvalRecord, RunDir, Trained, Trainer, apply_override, resolve};

// Linking these crates registers the hypergrid environment and the balance algorithms.
use softgfn_gflownet as _;
use softgfn_hypergrid as _;

fn main() -> anyhow::Result<()> {
    let iterations: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1000);
    let dir = std::env::temp_dir().join(format!("softgfn-example-07-{}", std::process::id()));

    // What `softgfn train --out DIR` does: a run directory with the config, the records, the
    // final parameters and the summary.
    let mut table = toml::Table::new();
    for kv in [
        "env.name=hypergrid",
        "env.dim=2",
        "env.side=8",
        "algo.name=subtb",
        "seed=7",
    ] {
        apply_override(&mut table, kv)?;
    }
    apply_override(&mut table, &format!("iterations={iterations}"))?;
    let (config, env) = resolve(table)?;
    let text = config.to_toml()?;
    let mut trainer = Trainer::new(config, env)?;
    let mut run = RunDir::create(&dir, true)?;
    run.write_file(CONFIG_FILE, text.as_bytes())?;
    let summary = trainer.run(&mut run, &mut ())?;
    trainer.algorithm().save(&dir)?;
    run.write_file(SUMMARY_FILE, serde_json::to_string(&summary)?.as_bytes())?;

    // ANCHOR: sample
    let mut trained = Trained::load(&dir)?;
    let mut rng = stream(0, Stream::Sampling);
    let objects = trained.sample(8, &mut rng)?;
    let rows: Vec<i32> = objects.iter().flat_map(|x| x.state.clone()).collect();
    let log_px = trained.log_px(&rows, 64, &mut rng)?;
    for (x, lp) in objects.iter().zip(&log_px) {
        println!(
            "{:<8} log R = {:>7.3}  log P_F(tau) = {:>7.3}  log p(x) ~ {:>7.3}",
            x.readable, x.log_reward, x.log_pf, lp
        );
    }
    // ANCHOR_END: sample

    // ANCHOR: eval
    let r: EvalRecord = trained.evaluate()?;
    println!(
        "exact_l1 {:.4}; log Z {:.4}: exact ELBO {:.4} <= log Z <= exact EUBO {:.4}",
        r.exact_l1.unwrap_or(f64::NAN),
        r.log_z_true.unwrap_or(f64::NAN),
        r.exact_log_z_elbo.unwrap_or(f64::NAN),
        r.exact_log_z_eubo.unwrap_or(f64::NAN),
    );
    println!(
        "sampled: ELBO {:.4}, importance-weighted {:.4} ± {:.4}, EUBO {:.4}",
        r.log_z_elbo.unwrap_or(f64::NAN),
        r.log_z_iw.unwrap_or(f64::NAN),
        r.log_z_iw_ci.unwrap_or(f64::NAN),
        r.log_z_eubo.unwrap_or(f64::NAN),
    );
    // ANCHOR_END: eval
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
