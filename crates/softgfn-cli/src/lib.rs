//! `softgfn`: train GFlowNets and soft-RL agents, list what is registered, check environments.
//!
//! ```text
//! softgfn train --env hypergrid --algo tb --set env.dim=2 --set env.side=8 --iterations 2000 --seed 1 --out runs/x
//! softgfn train --config runs/x/config.toml --out runs/y      # reproduce a run
//! softgfn envs list
//! softgfn algos list
//! softgfn config defaults --algo subtb
//! softgfn check-env --env hypergrid --set env.dim=3
//! ```
//!
//! The command line is a library function, [`main`], so that a binary of your own gets every
//! command with your own algorithms and environments registered: link your crates (their
//! `inventory` registrations) and call it.
//!
//! ```no_run
//! // src/main.rs of your crate, which depends on softgfn-cli and on your algorithm crate.
//! use my_algorithms as _; // links its registrations
//! fn main() {
//!     softgfn_cli::main()
//! }
//! # mod my_algorithms {}
//! ```

mod bench;
mod plugins;
mod train;

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand};
use softgfn_train::{apply_override, resolve};

// Built-in environments and algorithms register themselves when linked.
use softgfn_bitseq as _;
use softgfn_gflownet as _;
use softgfn_hypergrid as _;
use softgfn_molstr as _;
use softgfn_sehfrag as _;
use softgfn_softrl as _;

#[derive(Parser, Debug)]
#[command(
    name = "softgfn",
    version,
    about = "GFlowNets trained by balance objectives or by entropy-regularized RL"
)]
struct Cli {
    #[command(flatten)]
    plugins: plugins::PluginArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train an algorithm on an environment and write a run directory.
    Train(train::TrainArgs),
    /// List the registered environments.
    Envs {
        #[command(subcommand)]
        action: ListAction,
    },
    /// List the registered algorithms.
    Algos {
        #[command(subcommand)]
        action: ListAction,
    },
    /// Print configurations.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Run the conformance checker on an environment.
    CheckEnv(CheckEnvArgs),
    /// Environment plugins: list those found, check one.
    Plugins {
        #[command(subcommand)]
        action: plugins::PluginsAction,
    },
    /// Benchmark harness: run suites, write reports, merge shards.
    Bench {
        #[command(subcommand)]
        action: bench::BenchCommand,
    },
}

#[derive(Subcommand, Debug)]
enum ListAction {
    /// Print names and one-line summaries.
    List,
}

#[derive(Subcommand, Debug)]
enum ConfigAction {
    /// Print a complete default run config (TOML) for an algorithm and an environment.
    Defaults {
        /// Algorithm name.
        #[arg(long, default_value = softgfn_train::config::DEFAULT_ALGO)]
        algo: String,
        /// Environment name.
        #[arg(long, default_value = softgfn_train::config::DEFAULT_ENV)]
        env: String,
    },
}

#[derive(Args, Debug)]
struct CheckEnvArgs {
    /// Environment name.
    #[arg(long)]
    env: String,
    /// Environment parameter overrides, e.g. `--set env.dim=3`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Random rollouts.
    #[arg(long, default_value_t = 64)]
    rollouts: usize,
    /// Seed of the rollouts.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Runs the `softgfn` command line on the process's arguments with every linked algorithm and
/// environment (the workspace's, plus those of the crates the calling binary links), and exits
/// the process with status 1 and the error on stderr when the command fails.
pub fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let found = plugins::load(&cli.plugins, matches!(cli.command, Command::Plugins { .. }))?;
    match cli.command {
        Command::Train(args) => train::train(args),
        Command::Envs { .. } => {
            for r in softgfn_core::registered_envs()? {
                println!("{:<12} {}", r.name, r.summary);
            }
            Ok(())
        }
        Command::Algos { .. } => {
            for r in softgfn_train::registered_algorithms()? {
                println!("{:<12} {}", r.name, r.summary);
            }
            Ok(())
        }
        Command::Config {
            action: ConfigAction::Defaults { algo, env },
        } => {
            let mut table = toml::Table::new();
            apply_override(&mut table, &format!("env.name={}", toml_str(&env)))?;
            apply_override(&mut table, &format!("algo.name={}", toml_str(&algo)))?;
            let (config, _) = resolve(table)?;
            print!("{}", config.to_toml()?);
            Ok(())
        }
        Command::CheckEnv(args) => check_env(args),
        Command::Plugins { action } => plugins::run(action, &found),
        Command::Bench { action } => bench::bench(action, Vec::new()),
    }
}

/// A TOML string literal.
pub(crate) fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn check_env(args: CheckEnvArgs) -> Result<()> {
    let mut table = toml::Table::new();
    apply_override(&mut table, &format!("name={}", toml_str(&args.env)))?;
    for kv in &args.set {
        let Some(rest) = kv.strip_prefix("env.") else {
            bail!("check-env takes environment overrides only (env.KEY=VALUE), got `{kv}`");
        };
        apply_override(&mut table, rest)?;
    }
    table.remove("name");
    let params = serde_json::to_value(&table)?;
    let env = softgfn_core::build_env(&args.env, &params)?;
    let opts = softgfn_core::CheckOptions {
        rollouts: args.rollouts,
        seed: args.seed,
        ..Default::default()
    };
    let report = softgfn_core::check_env_with(env.as_ref(), &opts)?;
    println!("{report}");
    Ok(())
}
