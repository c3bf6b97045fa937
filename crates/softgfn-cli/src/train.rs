//! `softgfn train`: resolve a run config, train, write the run directory.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use softgfn_train::record::{CONFIG_FILE, SUMMARY_FILE};
use softgfn_train::{EvalRecord, Observer, RunDir, Trainer, apply_override, resolve};

use crate::toml_str;

/// Arguments of `softgfn train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Run config file (TOML); flags below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Environment name (`env.name`).
    #[arg(long)]
    env: Option<String>,
    /// Algorithm name (`algo.name`).
    #[arg(long)]
    algo: Option<String>,
    /// Override a config key, e.g. `--set env.dim=2 --set algo.learning_rate=0.01`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Number of training iterations.
    #[arg(long)]
    iterations: Option<u64>,
    /// Seed of every random stream (0 to 2^63 - 1).
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=i64::MAX as u64))]
    seed: Option<u64>,
    /// Device (`cpu`).
    #[arg(long)]
    device: Option<String>,
    /// Output directory (default: runs/<env>-<algo>-s<seed>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Overwrite an existing run in the output directory.
    #[arg(long)]
    force: bool,
    /// Worker threads for tensor math (one is fastest for small networks).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Write a full-state checkpoint every N iterations (and at the end) into OUT/checkpoint.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    checkpoint_every: Option<u64>,
    /// Continue the run in RUN_DIR from its latest checkpoint (with its own config; only
    /// --iterations may change, to extend the budget).
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["config", "env", "algo", "set", "seed", "device", "out", "force"])]
    resume: Option<PathBuf>,
    /// Also write every record as TensorBoard scalars into OUT/tb (`log.tensorboard = true`);
    /// view with `tensorboard --logdir OUT`.
    #[arg(long)]
    tensorboard: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Stop when the process that started this one exits (used by `softgfn bench run` workers).
    #[arg(long, hide = true)]
    exit_with_parent: bool,
}

/// Exits this process when its parent goes away (so a killed benchmark runner leaves no worker
/// behind to race with a resumed run).
fn exit_with_parent() {
    #[cfg(unix)]
    {
        let parent = std::os::unix::process::parent_id();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_millis(100));
                if std::os::unix::process::parent_id() != parent {
                    eprintln!("error: the process that started this run is gone; stopping");
                    std::process::exit(3);
                }
            }
        });
    }
}

fn build_table(args: &TrainArgs) -> Result<toml::Table> {
    let mut table = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read the config file {}", p.display()))?;
            softgfn_train::config::parse_toml(&text, &p.display().to_string())?
        }
        None => toml::Table::new(),
    };
    if let Some(e) = &args.env {
        apply_override(&mut table, &format!("env.name={}", toml_str(e)))?;
    }
    if let Some(a) = &args.algo {
        apply_override(&mut table, &format!("algo.name={}", toml_str(a)))?;
    }
    if let Some(n) = args.iterations {
        apply_override(&mut table, &format!("iterations={n}"))?;
    }
    if let Some(s) = args.seed {
        apply_override(&mut table, &format!("seed={s}"))?;
    }
    if let Some(d) = &args.device {
        apply_override(&mut table, &format!("device={}", toml_str(d)))?;
    }
    for kv in &args.set {
        apply_override(&mut table, kv)?;
    }
    if args.tensorboard {
        apply_override(&mut table, "log.tensorboard=true")?;
    }
    Ok(table)
}

struct Progress {
    bar: Option<ProgressBar>,
}

impl Observer for Progress {
    fn on_start(&mut self, total: u64) {
        if let Some(b) = &self.bar {
            b.set_length(total);
        }
    }

    fn on_iteration(&mut self, iteration: u64, _loss: f64) {
        if let Some(b) = &self.bar {
            b.set_position(iteration);
        }
    }

    fn on_eval(&mut self, r: &EvalRecord) {
        if let Some(b) = &self.bar {
            b.set_message(status_line(r));
        }
    }
}

fn fmt_opt(v: Option<f64>, prec: usize) -> String {
    v.map(|x| format!("{x:.prec$}"))
        .unwrap_or_else(|| "-".into())
}

fn status_line(r: &EvalRecord) -> String {
    let mut line = format!(
        "loss {} | log Z {} / {} | exact_l1 {} | emp_kl {}",
        fmt_opt(r.loss, 4),
        fmt_opt(r.log_z_learned, 3),
        fmt_opt(r.log_z_true, 3),
        fmt_opt(r.exact_l1, 4),
        fmt_opt(r.emp_kl, 3),
    );
    // Environment metrics (e.g. bitseq's `modes_found` and `spearman`).
    for (name, value) in &r.env_metrics {
        let prec = if value.is_some_and(|v| v.fract() == 0.0) {
            0
        } else {
            4
        };
        line.push_str(&format!(" | {name} {}", fmt_opt(*value, prec)));
    }
    line
}

/// Runs `softgfn train`.
pub fn train(args: TrainArgs) -> Result<()> {
    if args.exit_with_parent {
        exit_with_parent();
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads.max(1))
        .build_global()
        .context("cannot configure the thread pool")?;
    let started = Instant::now();
    let (mut trainer, mut dir, out) = match &args.resume {
        Some(run_dir) => resume(run_dir, args.iterations, args.tensorboard)?,
        None => {
            let table = build_table(&args)?;
            let (config, env) = resolve(table)?;
            let out = args.out.clone().unwrap_or_else(|| {
                Path::new("runs").join(format!(
                    "{}-{}-s{}",
                    config.env.name,
                    algo_name(&config),
                    config.seed
                ))
            });
            // Build (and so validate) everything before touching the output directory.
            let text = config.to_toml()?;
            let trainer = Trainer::new(config, env)?;
            let mut dir = RunDir::create(&out, args.force)?;
            if trainer.config().log.tensorboard {
                dir.enable_tensorboard()?;
            }
            dir.write_file(CONFIG_FILE, text.as_bytes())?;
            (trainer, dir, out)
        }
    };
    if let Some(every) = args.checkpoint_every {
        trainer.set_checkpointing(every, &out);
    }
    let bar = (!args.quiet).then(|| {
        let b = ProgressBar::new(trainer.config().iterations);
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} it ({per_sec}, eta {eta}) {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    });
    let mut progress = Progress { bar };
    let summary = trainer.run(&mut dir, &mut progress)?;
    if let Some(b) = &progress.bar {
        b.finish_and_clear();
    }
    trainer.algorithm().save(dir.path())?;
    let json = serde_json::to_string_pretty(&summary)?;
    dir.write_file(SUMMARY_FILE, json.as_bytes())?;
    let l = &summary.last;
    println!(
        "{} on {} (seed {}): {} iterations, {} trajectories in {:.1} s ({:.2} ms/iteration median)",
        summary.algo,
        summary.env,
        summary.seed,
        l.iteration,
        l.trajectories,
        started.elapsed().as_secs_f64(),
        summary.median_ms_per_iteration
    );
    println!("  {}", status_line(l));
    println!("  written to {}", out.display());
    Ok(())
}

/// Rebuilds a run from its directory and its latest checkpoint.
fn resume(
    run_dir: &Path,
    iterations: Option<u64>,
    tensorboard: bool,
) -> Result<(Trainer, RunDir, PathBuf)> {
    let cfg_path = run_dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&cfg_path).with_context(|| {
        format!(
            "cannot resume {}: no readable {CONFIG_FILE} (is it a run directory?)",
            run_dir.display()
        )
    })?;
    let mut table = softgfn_train::config::parse_toml(&text, &cfg_path.display().to_string())?;
    if let Some(n) = iterations {
        apply_override(&mut table, &format!("iterations={n}"))?;
    }
    if tensorboard {
        apply_override(&mut table, "log.tensorboard=true")?;
    }
    let (config, env) = resolve(table)?;
    let ck = softgfn_train::checkpoint::read(run_dir)?;
    let at = ck.manifest.iteration;
    let total = config.iterations;
    let mut trainer = Trainer::new(config, env)?;
    trainer.restore(ck)?;
    // Opened before the run directory changes, so that a corrupt event file leaves it as it was.
    let tb = trainer
        .config()
        .log
        .tensorboard
        .then(|| softgfn_train::tensorboard::EventWriter::for_run(run_dir))
        .transpose()?;
    eprintln!(
        "resuming {} from iteration {at} (checkpoint in {}), training to {total}",
        run_dir.display(),
        run_dir
            .join(softgfn_train::checkpoint::CHECKPOINT_DIR)
            .display()
    );
    // The run is unfinished again until it ends.
    let _ = std::fs::remove_file(run_dir.join(SUMMARY_FILE));
    let mut dir = RunDir::reopen(run_dir, at)?;
    if let Some(w) = tb {
        dir.attach_tensorboard(w);
    }
    dir.write_file(CONFIG_FILE, trainer.config().to_toml()?.as_bytes())?;
    Ok((trainer, dir, run_dir.to_path_buf()))
}

fn algo_name(config: &softgfn_train::RunConfig) -> &'static str {
    config.algo.typetag_name()
}
