//! Run configs round-trip: resolve a config from `--set`-style overrides, print the resolved TOML
//! (every default filled in), parse that text back and resolve it again: the result is the same
//! config. A misspelled key is an error that names it and lists the valid keys.
//!
//! Run: `cargo run --release -p softgfn-examples --example 05_config_roundtrip -- [algorithm]`
//! (`tb`, `db`, `subtb`, `soft_dqn`, `munchausen_dqn` or `sac`; default `subtb`).

use softgfn_train::config::parse_toml;
use softgfn_train::{apply_override, resolve};

// Linking these crates registers the hypergrid and every algorithm.
use softgfn_gflownet as _;
use softgfn_hypergrid as _;
use softgfn_softrl as _;

fn main() -> anyhow::Result<()> {
    let algo = std::env::args().nth(1).unwrap_or_else(|| "subtb".into());

    // ANCHOR: resolve
    let mut table = toml::Table::new();
    for kv in [
        "env.name=hypergrid",
        "env.dim=3",
        "env.reward=hard",
        &format!("algo.name={algo}"),
        "algo.learning_rate=0.0005",
        "iterations=1000",
        "seed=7",
    ] {
        apply_override(&mut table, kv)?;
    }
    let (config, _env) = resolve(table)?;
    let text = config.to_toml()?;
    println!("# the resolved config\n{text}");
    // ANCHOR_END: resolve

    // ANCHOR: roundtrip
    let (again, _env) = resolve(parse_toml(&text, "the resolved config")?)?;
    let text_again = again.to_toml()?;
    assert_eq!(text, text_again, "a resolved config resolves to itself");
    println!(
        "parsed back and resolved again: the same config ({} bytes of TOML)",
        text.len()
    );
    // ANCHOR_END: roundtrip

    // ANCHOR: typo
    for typo in ["algo.learning_rat=0.01", "env.dimm=3", "eval.intervall=10"] {
        let mut table = toml::Table::new();
        apply_override(&mut table, &format!("algo.name={algo}"))?;
        apply_override(&mut table, typo)?;
        match resolve(table) {
            Ok(_) => anyhow::bail!("`{typo}` should have been refused"),
            Err(e) => println!("--set {typo}\n  error: {e}"),
        }
    }
    // ANCHOR_END: typo
    Ok(())
}
