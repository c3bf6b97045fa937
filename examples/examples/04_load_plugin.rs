//! Load an environment plugin at run time and use it from the library API: print the plugin's
//! manifest, run `check_env` on each of its environments through the C ABI, and train trajectory
//! balance on the first one (see the Plugins chapter of the book).
//!
//! Run: `cargo run --release -p softgfn-examples --example 04_load_plugin -- [PLUGIN] [ITERATIONS]`
//! (arguments in any order: a number is the budget, default 1000 iterations; anything else is the
//! plugin library, default `target/plugins/release/libsoftgfn_sets.so`, which
//! `bash scripts/build-plugins.sh` builds).

use std::path::{Path, PathBuf};

use softgfn_plugin::host;
use softgfn_train::{EvalRecord, Trainer, apply_override, resolve};

// Linking this crate registers trajectory balance; the environment comes from the plugin.
use softgfn_gflownet as _;

fn main() -> anyhow::Result<()> {
    let mut library: Option<PathBuf> = None;
    let mut iterations: u64 = 1000;
    for arg in std::env::args().skip(1) {
        match arg.parse() {
            Ok(n) => iterations = n,
            Err(_) => library = Some(arg.into()),
        }
    }
    let library = library.unwrap_or_else(|| {
        // The sets plugin, built into the workspace's target/plugins by scripts/build-plugins.sh.
        let lib = host::library_file_name("softgfn-sets");
        let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugins/release");
        if !default.join(&lib).exists() {
            eprintln!(
                "error: the example plugin target/plugins/release/{lib} is missing: build the \
                 plugin libraries first with `bash scripts/build-plugins.sh`, or pass the path \
                 of a plugin library"
            );
            std::process::exit(1);
        }
        default.join(lib)
    });
    if !library.exists() {
        eprintln!(
            "error: the plugin library {} does not exist",
            library.display()
        );
        std::process::exit(1);
    }

    // ANCHOR: load
    // Checks the ABI version and the manifest, and registers every environment of the plugin in
    // softgfn-core's registry as `<plugin>/<env>` (and `<env>` while that name is free).
    let plugin = host::load(&library)?;
    let manifest = plugin.manifest();
    println!("loaded {}", plugin.source());
    println!("{}", serde_json::to_string_pretty(manifest)?);
    // ANCHOR_END: load

    // ANCHOR: check
    // Each environment with its default parameters, called through the plugin's C ABI.
    for e in &manifest.environments {
        let env = plugin.create(&e.name, &e.default_params)?;
        let report = softgfn_core::check_env(&env)?;
        println!("{}: {report}", env.qualified_name());
    }
    // ANCHOR_END: check

    // ANCHOR: train
    // A run config names the plugin's environment like any other: by its qualified name.
    let name = format!("{}/{}", manifest.name, manifest.environments[0].name);
    let mut table = toml::Table::new();
    apply_override(
        &mut table,
        &format!("env.name={}", toml::Value::String(name)),
    )?;
    for kv in ["algo.name=tb", "algo.hidden_dim=64", "seed=1"] {
        apply_override(&mut table, kv)?;
    }
    apply_override(&mut table, &format!("iterations={iterations}"))?;
    apply_override(
        &mut table,
        &format!("eval.interval={}", (iterations / 4).max(1)),
    )?;
    let (config, env) = resolve(table)?;
    let mut trainer = Trainer::new(config, env)?;
    let mut records: Vec<EvalRecord> = Vec::new();
    trainer.run(&mut records, &mut ())?;
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
    // ANCHOR_END: train
    Ok(())
}
