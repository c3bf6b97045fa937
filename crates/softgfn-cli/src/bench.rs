//! `softgfn bench run | report | merge`: the benchmark harness.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use softgfn_bench::suite::Cell;
use softgfn_bench::{Hardware, Provenance, RunOptions, RunProgress, Shard, Suite};

/// `softgfn bench` subcommands.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Run a suite (each cell in its own worker process) into a results directory.
    Run(RunArgs),
    /// Write report.md and plots (SVG, PNG) for a results directory.
    Report(ReportArgs),
    /// Combine results directories (e.g. shards) into one.
    Merge(MergeArgs),
}

/// Arguments of `softgfn bench run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Suite file (TOML).
    pub suite: PathBuf,
    /// Results directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Worker processes at once (one thread each).
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Continue a killed run: skip finished cells, rerun the others.
    #[arg(long)]
    pub resume: bool,
    /// Run only shard I of N (1-based, e.g. 2/8), for cluster job arrays.
    #[arg(long)]
    pub shard: Option<String>,
    /// Delete an existing results directory first (only one that holds a suite).
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    /// Every cell also writes TensorBoard scalars into its own `tb/` (view the whole suite with
    /// `tensorboard --logdir OUT`: one run per cell).
    #[arg(long)]
    pub tensorboard: bool,
    /// Do not write the report when the run ends.
    #[arg(long)]
    pub no_report: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Arguments of `softgfn bench report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Results directory.
    pub dir: PathBuf,
    /// SVG plots only.
    #[arg(long)]
    pub no_png: bool,
    /// Also report cells that have not finished (a run that spans sittings), marked `unfinished`.
    #[arg(long)]
    pub partial: bool,
    /// Add a table of every metric at these iterations, per environment (e.g.
    /// `--at 10000,30000,50000`).
    #[arg(long, value_delimiter = ',', value_name = "ITERATIONS")]
    pub at: Vec<u64>,
}

/// Arguments of `softgfn bench merge`.
#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Results directories to combine.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Combined results directory.
    #[arg(long)]
    pub out: PathBuf,
}

struct Bar(Option<ProgressBar>);

impl RunProgress for Bar {
    fn start(&mut self, to_run: usize, already_done: usize) {
        if let Some(b) = &self.0 {
            b.set_length(to_run as u64);
            if already_done > 0 {
                b.println(format!("resuming: {already_done} cells already finished"));
            }
        }
    }

    fn cell_done(&mut self, cell: &Cell, ok: bool) {
        if let Some(b) = &self.0 {
            b.inc(1);
            b.set_message(format!(
                "{} {}",
                if ok { "done" } else { "FAILED" },
                cell.id()
            ));
        }
    }
}

/// A plugin path as written in a suite, with the platform's shared-library suffix added when the
/// path has no extension and does not exist as written (`libfoo` -> `libfoo.so`, `.dylib`, `.dll`).
fn with_library_suffix(path: &str) -> String {
    let p = std::path::Path::new(path);
    if p.exists() || p.extension().is_some() {
        return path.to_string();
    }
    format!("{path}{}", std::env::consts::DLL_SUFFIX)
}

/// The provenance of this binary on this machine.
pub fn provenance() -> Provenance {
    Provenance {
        version: env!("CARGO_PKG_VERSION").into(),
        commit: env!("SOFTGFN_GIT_COMMIT").into(),
        hardware: Hardware::detect(),
    }
}

/// Runs a `softgfn bench` subcommand; `global_args` are forwarded to every worker.
pub fn bench(cmd: BenchCommand, global_args: Vec<String>) -> Result<()> {
    match cmd {
        BenchCommand::Run(a) => {
            let text = std::fs::read_to_string(&a.suite)
                .with_context(|| format!("cannot read the suite file {}", a.suite.display()))?;
            let suite = Suite::parse(&text, &a.suite.display().to_string())?;
            let shard = a.shard.as_deref().map(Shard::parse).transpose()?;
            if a.force && a.out.exists() {
                if !a.out.join(softgfn_bench::runner::SUITE_FILE).exists() {
                    anyhow::bail!(
                        "--force: {} exists but is not a results directory (no {}); refusing to delete it",
                        a.out.display(),
                        softgfn_bench::runner::SUITE_FILE
                    );
                }
                std::fs::remove_dir_all(&a.out)
                    .with_context(|| format!("cannot delete {}", a.out.display()))?;
            }
            let mut args = global_args;
            for p in &suite.plugins {
                args.push("--plugin".into());
                args.push(with_library_suffix(p));
            }
            let opts = RunOptions {
                out: a.out.clone(),
                jobs: a.jobs,
                resume: a.resume,
                shard,
                exe: std::env::current_exe().context("cannot locate the softgfn executable")?,
                global_args: args,
                provenance: provenance(),
                tensorboard: a.tensorboard,
            };
            let bar = (!a.quiet).then(|| {
                let b = ProgressBar::new(0);
                b.set_style(
                    ProgressStyle::with_template(
                        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} cells (eta {eta}) {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                b
            });
            let started = std::time::Instant::now();
            let mut progress = Bar(bar);
            let summary = softgfn_bench::run_suite(&suite, &text, &opts, &mut progress);
            if let Some(b) = &progress.0 {
                b.finish_and_clear();
            }
            let summary = summary?;
            println!(
                "suite {}: {} cells run, {} already finished, {:.1} s; results in {}",
                suite.name,
                summary.ran,
                summary.skipped,
                started.elapsed().as_secs_f64(),
                a.out.display()
            );
            if !a.no_report {
                let files = softgfn_bench::write_report(&a.out, true)?;
                println!(
                    "report: {} ({} plots)",
                    files.markdown.display(),
                    files.plots.len()
                );
            }
            Ok(())
        }
        BenchCommand::Report(a) => {
            let files = softgfn_bench::write_report_with(
                &a.dir,
                &softgfn_bench::ReportOptions {
                    png: !a.no_png,
                    partial: a.partial,
                    at: a.at.clone(),
                },
            )?;
            println!(
                "report: {} ({} plots)",
                files.markdown.display(),
                files.plots.len()
            );
            Ok(())
        }
        BenchCommand::Merge(a) => {
            let n = softgfn_bench::merge(&a.inputs, &a.out)?;
            println!("merged {n} cells into {}", a.out.display());
            Ok(())
        }
    }
}
